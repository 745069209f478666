//! The portable dump format: a versioned, streaming, binary-safe file of records grouped in
//! sections (one per component and tenant), each section closed by its record count and a
//! BLAKE3 digest, the whole file closed by a digest of everything before it.
//!
//! ```text
//! file    := "CAIRNDMP" version:u16 compression:u8 body       (body zstd-compressed when
//!                                                              compression = 1)
//! body    := header section* end
//! header  := 0x01 len:u32 json                                (DumpHeader as JSON)
//! section := 0x02 component:str8 tenant:str8 record* 0x04 count:u64 digest:[32]
//! record  := 0x03 len:u32 bytes
//! end     := 0x05 sections:u64 digest:[32]
//! str8    := len:u8 utf-8 bytes
//! ```
//!
//! Integers are big-endian. A section's digest is BLAKE3 over its records' `len ‖ bytes`; the
//! end digest is BLAKE3 over every body byte before the end frame. Records are opaque bytes to
//! this module (each component defines its own record encoding); a record holds at most
//! [`MAX_RECORD_BYTES`].
//!
//! [`DumpWriter`] and [`DumpReader`] stream: memory use does not depend on the dump's size.
//! The reader verifies as it goes and fails with `Corruption` on a flipped byte (a digest or
//! count mismatch, a bad tag), a truncated file (no end frame) or bytes after the end, and with
//! `Unsupported` on a newer format version. Both work on blocking `std::io` streams: run them
//! on a blocking thread, not an async worker.

use std::io::{self, Read, Write};

use cairn_core::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The first bytes of every dump.
pub const MAGIC: &[u8; 8] = b"CAIRNDMP";

/// The format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;

/// Largest record, in bytes.
pub const MAX_RECORD_BYTES: usize = 256 * 1024 * 1024;

/// Largest header, in bytes.
const MAX_HEADER_BYTES: usize = 16 * 1024 * 1024;

/// zstd level used when compressing (the library's default speed/size balance).
const ZSTD_LEVEL: i32 = 3;

const TAG_HEADER: u8 = 0x01;
const TAG_SECTION: u8 = 0x02;
const TAG_RECORD: u8 = 0x03;
const TAG_SECTION_END: u8 = 0x04;
const TAG_END: u8 = 0x05;

/// Whether the body is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Stored as is.
    None,
    /// One zstd stream.
    Zstd,
}

/// What a dump holds, written at its start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpHeader {
    /// Version of the Cairn build that wrote the dump.
    pub cairn_version: String,
    /// The backend the data came from (`memory`, `sled`, `postgres`, or a description).
    pub source_backend: String,
    /// The tenants the dump holds sections for.
    pub tenants: Vec<String>,
    /// The components the dump holds sections for.
    pub components: Vec<String>,
    /// When the dump was started.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// One step of reading a dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DumpItem {
    /// The records that follow, up to [`DumpItem::SectionEnd`], belong to `component` of
    /// `tenant`.
    SectionStart {
        /// The component's name.
        component: String,
        /// The tenant.
        tenant: String,
    },
    /// One record of the current section.
    Record(Vec<u8>),
    /// The current section ended; its count and digest were verified.
    SectionEnd {
        /// How many records it held.
        records: u64,
    },
}

fn write_error(err: io::Error) -> Error {
    Error::new(ErrorKind::Backend, "writing the dump failed").with_source(err)
}

fn read_error(err: io::Error) -> Error {
    match err.kind() {
        io::ErrorKind::UnexpectedEof => {
            Error::corruption("dump is truncated: it ends before its end frame").with_source(err)
        }
        // What the zstd decoder reports for a damaged stream.
        io::ErrorKind::InvalidData | io::ErrorKind::Other => {
            Error::corruption("dump body does not decode").with_source(err)
        }
        _ => Error::new(ErrorKind::Backend, "reading the dump failed").with_source(err),
    }
}

/// The body stream, plain or compressed.
enum BodyWriter<W: Write> {
    Plain(W),
    Zstd(zstd::Encoder<'static, W>),
}

impl<W: Write> Write for BodyWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            BodyWriter::Plain(w) => w.write(buf),
            BodyWriter::Zstd(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            BodyWriter::Plain(w) => w.flush(),
            BodyWriter::Zstd(w) => w.flush(),
        }
    }
}

/// Writes a dump; see the [module docs](self).
pub struct DumpWriter<W: Write> {
    body: BodyWriter<W>,
    file_digest: blake3::Hasher,
    /// The open section's record count and digest.
    section: Option<(u64, blake3::Hasher)>,
    sections: u64,
}

impl<W: Write> DumpWriter<W> {
    /// Starts a dump on `out` with `header`.
    ///
    /// # Errors
    /// `Backend` when writing fails.
    pub fn create(
        mut out: W,
        header: &DumpHeader,
        compression: Compression,
    ) -> Result<DumpWriter<W>> {
        out.write_all(MAGIC).map_err(write_error)?;
        out.write_all(&FORMAT_VERSION.to_be_bytes())
            .map_err(write_error)?;
        let body = match compression {
            Compression::None => {
                out.write_all(&[0]).map_err(write_error)?;
                BodyWriter::Plain(out)
            }
            Compression::Zstd => {
                out.write_all(&[1]).map_err(write_error)?;
                let mut encoder = zstd::Encoder::new(out, ZSTD_LEVEL).map_err(write_error)?;
                encoder.include_checksum(true).map_err(write_error)?;
                BodyWriter::Zstd(encoder)
            }
        };
        let mut writer = DumpWriter {
            body,
            file_digest: blake3::Hasher::new(),
            section: None,
            sections: 0,
        };
        let json = serde_json::to_vec(header).map_err(|err| {
            Error::new(ErrorKind::Backend, "dump header does not serialise").with_source(err)
        })?;
        writer.frame(TAG_HEADER, &[&len32(json.len())?, &json])?;
        Ok(writer)
    }

    /// Writes one frame's parts and adds them to the file digest.
    fn frame(&mut self, tag: u8, parts: &[&[u8]]) -> Result<()> {
        self.body.write_all(&[tag]).map_err(write_error)?;
        self.file_digest.update(&[tag]);
        for part in parts {
            self.body.write_all(part).map_err(write_error)?;
            self.file_digest.update(part);
        }
        Ok(())
    }

    /// Opens the section of `component` for `tenant`.
    ///
    /// # Errors
    /// `InvalidInput` when a section is already open or a name is empty or longer than 255
    /// bytes; `Backend` when writing fails.
    pub fn begin_section(&mut self, component: &str, tenant: &str) -> Result<()> {
        if self.section.is_some() {
            return Err(Error::invalid_input(
                "a dump section is already open: end it first",
            ));
        }
        let component_len = len8("component", component)?;
        let tenant_len = len8("tenant", tenant)?;
        self.frame(
            TAG_SECTION,
            &[
                &[component_len],
                component.as_bytes(),
                &[tenant_len],
                tenant.as_bytes(),
            ],
        )?;
        self.section = Some((0, blake3::Hasher::new()));
        Ok(())
    }

    /// Appends a record to the open section.
    ///
    /// # Errors
    /// `InvalidInput` when no section is open or the record exceeds [`MAX_RECORD_BYTES`];
    /// `Backend` when writing fails.
    pub fn record(&mut self, record: &[u8]) -> Result<()> {
        if record.len() > MAX_RECORD_BYTES {
            return Err(Error::invalid_input(format!(
                "dump record is {} bytes, the limit is {MAX_RECORD_BYTES}",
                record.len()
            )));
        }
        let len = len32(record.len())?;
        let Some((count, digest)) = self.section.as_mut() else {
            return Err(Error::invalid_input("no dump section is open"));
        };
        *count += 1;
        digest.update(&len);
        digest.update(record);
        self.frame(TAG_RECORD, &[&len, record])
    }

    /// Closes the open section; returns how many records it holds.
    ///
    /// # Errors
    /// `InvalidInput` when no section is open; `Backend` when writing fails.
    pub fn end_section(&mut self) -> Result<u64> {
        let Some((count, digest)) = self.section.take() else {
            return Err(Error::invalid_input("no dump section is open"));
        };
        self.frame(
            TAG_SECTION_END,
            &[&count.to_be_bytes(), digest.finalize().as_bytes()],
        )?;
        self.sections += 1;
        Ok(count)
    }

    /// Writes the end frame, flushes and returns the output.
    ///
    /// # Errors
    /// `InvalidInput` when a section is still open; `Backend` when writing fails.
    pub fn finish(mut self) -> Result<W> {
        if self.section.is_some() {
            return Err(Error::invalid_input(
                "a dump section is still open: end it first",
            ));
        }
        let digest = self.file_digest.finalize();
        self.body.write_all(&[TAG_END]).map_err(write_error)?;
        self.body
            .write_all(&self.sections.to_be_bytes())
            .map_err(write_error)?;
        self.body
            .write_all(digest.as_bytes())
            .map_err(write_error)?;
        let mut out = match self.body {
            BodyWriter::Plain(out) => out,
            BodyWriter::Zstd(encoder) => encoder.finish().map_err(write_error)?,
        };
        out.flush().map_err(write_error)?;
        Ok(out)
    }
}

impl<W: Write> std::fmt::Debug for DumpWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DumpWriter")
            .field("sections", &self.sections)
            .field(
                "records_in_open_section",
                &self.section.as_ref().map(|s| s.0),
            )
            .finish_non_exhaustive()
    }
}

fn len32(len: usize) -> Result<[u8; 4]> {
    u32::try_from(len)
        .map(u32::to_be_bytes)
        .map_err(|_| Error::invalid_input("dump frame longer than 4 GiB"))
}

fn len8(what: &str, name: &str) -> Result<u8> {
    match u8::try_from(name.len()) {
        Ok(len) if len > 0 => Ok(len),
        _ => Err(Error::invalid_input(format!(
            "dump section {what} must be 1 to 255 bytes, got {}",
            name.len()
        ))),
    }
}

/// Reads a dump; see the [module docs](self).
pub struct DumpReader {
    body: Box<dyn Read + Send>,
    header: DumpHeader,
    file_digest: blake3::Hasher,
    /// The open section's name, record count and digest.
    section: Option<(String, u64, blake3::Hasher)>,
    sections: u64,
    done: bool,
}

impl std::fmt::Debug for DumpReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DumpReader")
            .field("header", &self.header)
            .field("sections", &self.sections)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl DumpReader {
    /// Opens a dump and reads its header.
    ///
    /// # Errors
    /// `Corruption` when `input` is not a Cairn dump, is truncated or its header is damaged;
    /// `Unsupported` for a format version newer than this build's; `Backend` when reading
    /// fails.
    pub fn open(mut input: impl Read + Send + 'static) -> Result<DumpReader> {
        let mut start = [0u8; 11];
        input.read_exact(&mut start).map_err(read_error)?;
        if &start[..8] != MAGIC {
            return Err(Error::corruption(
                "not a Cairn dump: the magic bytes differ",
            ));
        }
        let version = u16::from_be_bytes([start[8], start[9]]);
        if version != FORMAT_VERSION {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "dump format version {version} is not supported; this build reads version \
                     {FORMAT_VERSION}"
                ),
            ));
        }
        let body: Box<dyn Read + Send> = match start[10] {
            0 => Box::new(input),
            1 => Box::new(zstd::Decoder::new(input).map_err(read_error)?),
            other => {
                return Err(Error::corruption(format!(
                    "dump names an unknown compression ({other})"
                )));
            }
        };
        let mut reader = DumpReader {
            body,
            header: DumpHeader {
                cairn_version: String::new(),
                source_backend: String::new(),
                tenants: Vec::new(),
                components: Vec::new(),
                created_at: OffsetDateTime::UNIX_EPOCH,
            },
            file_digest: blake3::Hasher::new(),
            section: None,
            sections: 0,
            done: false,
        };
        if reader.read_tag()? != TAG_HEADER {
            return Err(Error::corruption("dump does not start with its header"));
        }
        let len = reader.read_len(MAX_HEADER_BYTES, "header")?;
        let json = reader.read_vec(len)?;
        reader.header = serde_json::from_slice(&json)
            .map_err(|err| Error::corruption("dump header is not valid JSON").with_source(err))?;
        Ok(reader)
    }

    /// The dump's header.
    pub fn header(&self) -> &DumpHeader {
        &self.header
    }

    /// The next item, or `None` after the end frame (verified, with nothing after it).
    ///
    /// # Errors
    /// `Corruption` for a damaged or truncated dump (a digest or count that does not match, an
    /// unknown tag, a frame out of place, bytes after the end); `Backend` when reading fails.
    pub fn next_item(&mut self) -> Result<Option<DumpItem>> {
        if self.done {
            return Ok(None);
        }
        let tag = self.read_tag_peek_digest()?;
        match (tag, self.section.is_some()) {
            (TAG_SECTION, false) => {
                self.file_digest.update(&[tag]);
                let component = self.read_str8("component")?;
                let tenant = self.read_str8("tenant")?;
                self.section = Some((format!("{component}/{tenant}"), 0, blake3::Hasher::new()));
                Ok(Some(DumpItem::SectionStart { component, tenant }))
            }
            (TAG_RECORD, true) => {
                self.file_digest.update(&[tag]);
                let len = self.read_len(MAX_RECORD_BYTES, "record")?;
                let record = self.read_vec(len)?;
                if let Some((_, count, digest)) = self.section.as_mut() {
                    *count += 1;
                    digest.update(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
                    digest.update(&record);
                }
                Ok(Some(DumpItem::Record(record)))
            }
            (TAG_SECTION_END, true) => {
                self.file_digest.update(&[tag]);
                let count = self.read_u64()?;
                let digest = self.read_array::<32>()?;
                let Some((name, seen, hasher)) = self.section.take() else {
                    return Err(Error::corruption("dump section end without a section"));
                };
                if count != seen {
                    return Err(Error::corruption(format!(
                        "dump section {name} says {count} records, {seen} were read"
                    )));
                }
                if hasher.finalize().as_bytes() != &digest {
                    return Err(Error::corruption(format!(
                        "dump section {name} fails its digest: a record was altered"
                    )));
                }
                self.sections += 1;
                Ok(Some(DumpItem::SectionEnd { records: count }))
            }
            (TAG_END, false) => {
                let expected = self.file_digest.clone().finalize();
                let sections = self.read_u64_unhashed()?;
                let digest = self.read_array_unhashed::<32>()?;
                if sections != self.sections || expected.as_bytes() != &digest {
                    return Err(Error::corruption(
                        "dump fails its end digest: the header or a section frame was altered",
                    ));
                }
                let mut rest = [0u8; 1];
                match self.body.read(&mut rest) {
                    Ok(0) => {}
                    Ok(_) => {
                        return Err(Error::corruption("dump has bytes after its end frame"));
                    }
                    Err(err) => return Err(read_error(err)),
                }
                self.done = true;
                Ok(None)
            }
            (tag, in_section) => Err(Error::corruption(format!(
                "dump frame tag {tag:#04x} is unknown or out of place (inside a section: \
                 {in_section})"
            ))),
        }
    }

    fn read_tag(&mut self) -> Result<u8> {
        let tag = self.read_tag_peek_digest()?;
        self.file_digest.update(&[tag]);
        Ok(tag)
    }

    /// Reads a tag without adding it to the file digest (the end frame is not digested).
    fn read_tag_peek_digest(&mut self) -> Result<u8> {
        let [tag] = self.read_array_unhashed::<1>()?;
        Ok(tag)
    }

    fn read_array_unhashed<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut buf = [0u8; N];
        self.body.read_exact(&mut buf).map_err(read_error)?;
        Ok(buf)
    }

    fn read_array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let buf = self.read_array_unhashed::<N>()?;
        self.file_digest.update(&buf);
        Ok(buf)
    }

    fn read_u64(&mut self) -> Result<u64> {
        self.read_array::<8>().map(u64::from_be_bytes)
    }

    fn read_u64_unhashed(&mut self) -> Result<u64> {
        self.read_array_unhashed::<8>().map(u64::from_be_bytes)
    }

    fn read_len(&mut self, max: usize, what: &str) -> Result<usize> {
        let len = self.read_array::<4>().map(u32::from_be_bytes)?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > max {
            return Err(Error::corruption(format!(
                "dump {what} claims {len} bytes, more than the {max} allowed"
            )));
        }
        Ok(len)
    }

    fn read_vec(&mut self, len: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        self.body.read_exact(&mut buf).map_err(read_error)?;
        self.file_digest.update(&buf);
        Ok(buf)
    }

    fn read_str8(&mut self, what: &str) -> Result<String> {
        let [len] = self.read_array::<1>()?;
        let bytes = self.read_vec(usize::from(len))?;
        String::from_utf8(bytes).map_err(|err| {
            Error::corruption(format!("dump section {what} is not UTF-8")).with_source(err)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> DumpHeader {
        DumpHeader {
            cairn_version: "0.1.0".into(),
            source_backend: "memory".into(),
            tenants: vec!["acme".into()],
            components: vec!["artifacts".into(), "sessions".into()],
            created_at: time::macros::datetime!(2026-11-24 12:00 UTC),
        }
    }

    /// A dump of two sections with binary records (every byte value, empty, `large` bytes).
    fn sample(compression: Compression, large: usize) -> (Vec<u8>, Vec<DumpItem>) {
        let records: Vec<Vec<u8>> = vec![(0..=255u8).collect(), Vec::new(), vec![0xA5; large]];
        let mut writer = DumpWriter::create(Vec::new(), &header(), compression).unwrap();
        let mut items = Vec::new();
        for (component, tenant) in [("artifacts", "acme"), ("sessions", "acme")] {
            writer.begin_section(component, tenant).unwrap();
            items.push(DumpItem::SectionStart {
                component: component.into(),
                tenant: tenant.into(),
            });
            for record in &records {
                writer.record(record).unwrap();
                items.push(DumpItem::Record(record.clone()));
            }
            assert_eq!(writer.end_section().unwrap(), 3);
            items.push(DumpItem::SectionEnd { records: 3 });
        }
        (writer.finish().unwrap(), items)
    }

    fn read_all(bytes: Vec<u8>) -> Result<(DumpHeader, Vec<DumpItem>)> {
        let mut reader = DumpReader::open(std::io::Cursor::new(bytes))?;
        let mut items = Vec::new();
        while let Some(item) = reader.next_item()? {
            items.push(item);
        }
        Ok((reader.header().clone(), items))
    }

    #[test]
    fn round_trips_plain_and_compressed() {
        for compression in [Compression::None, Compression::Zstd] {
            let (bytes, items) = sample(compression, 1 << 20);
            let (read_header, read_items) = read_all(bytes.clone()).unwrap();
            assert_eq!(read_header, header());
            assert_eq!(read_items, items);
            if compression == Compression::Zstd {
                assert!(bytes.len() < 100_000, "{} bytes", bytes.len());
            }
        }
    }

    #[test]
    fn every_flipped_byte_and_every_truncation_is_detected() {
        let (bytes, items) = sample(Compression::None, 4096);
        // Every byte but those inside the large records, and a sample of those.
        let positions =
            (0..bytes.len()).filter(|i| i % 97 == 0 || *i < 1200 || *i > bytes.len() - 1400);
        for i in positions {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x01;
            let result = read_all(damaged);
            let err = match result {
                Ok((_, read)) => panic!(
                    "flipped byte {i} read back ({} items vs {})",
                    read.len(),
                    items.len()
                ),
                Err(err) => err,
            };
            assert!(
                matches!(err.kind(), ErrorKind::Corruption | ErrorKind::Unsupported),
                "byte {i}: {err:?}"
            );
        }
        for len in (0..bytes.len()).step_by(13).chain([bytes.len() - 1]) {
            let err = read_all(bytes[..len].to_vec()).unwrap_err();
            assert_eq!(
                err.kind(),
                ErrorKind::Corruption,
                "truncated at {len}: {err:?}"
            );
        }
        let mut longer = bytes;
        longer.push(0);
        assert_eq!(read_all(longer).unwrap_err().kind(), ErrorKind::Corruption);
    }

    #[test]
    fn compressed_damage_is_detected() {
        let (bytes, _) = sample(Compression::Zstd, 4096);
        for i in 11..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x40;
            assert!(read_all(damaged).is_err(), "flipped byte {i} read back");
        }
        let err = read_all(bytes[..bytes.len() - 3].to_vec()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corruption, "{err:?}");
    }

    #[test]
    fn other_files_and_versions_are_refused_clearly() {
        let err = read_all(b"PK\x03\x04 not a dump".to_vec()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corruption);
        let (mut bytes, _) = sample(Compression::None, 16);
        bytes[9] = 2;
        let err = read_all(bytes).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        assert!(err.to_string().contains("version 2"), "{err}");
    }

    #[test]
    fn writer_misuse_is_invalid_input() {
        let mut writer = DumpWriter::create(Vec::new(), &header(), Compression::None).unwrap();
        assert_eq!(
            writer.record(b"x").unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            writer.end_section().unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            writer.begin_section("", "acme").unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        writer.begin_section("c", "t").unwrap();
        assert_eq!(
            writer.begin_section("c", "t").unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        assert_eq!(writer.finish().unwrap_err().kind(), ErrorKind::InvalidInput);
    }
}
