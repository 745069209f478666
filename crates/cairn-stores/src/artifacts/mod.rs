//! Content-addressed artifacts: blobs named by the BLAKE3 hash of their content, deduplicated
//! per tenant and reference counted.
//!
//! The store computes every hash itself; a caller never supplies one for new content. Each
//! read of the content re-verifies it against its hash, so damaged bytes are `Corruption`,
//! never silently returned. Large content is written and read in chunks, so neither side ever
//! needs the whole artifact as one value.

pub mod chunking;
mod generic;
pub mod keys;
mod reader;
mod record;
mod upload;

use std::fmt;

use async_trait::async_trait;
use cairn_core::{Bytes, Error, Result};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::codec::check_id;
use crate::paging::Page;

pub use generic::GenericArtifactStore;
pub use reader::{ChunkSource, chunk_stream};
pub use record::ArtifactRecord;

/// Chunk size of [`GenericArtifactStore::new`]: content is stored in values of at most this
/// many bytes.
pub const DEFAULT_CHUNK_SIZE: usize = 1 << 20;

/// The content type given to artifacts put with [`PutOptions::default`].
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// Free-form metadata attached to an artifact: a JSON object.
pub type Metadata = Map<String, Value>;

/// A stream of content chunks, for writing or reading large artifacts piece by piece.
pub type ChunkStream<'a> = BoxStream<'a, Result<Bytes>>;

/// What to store alongside new content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PutOptions {
    /// The content's media type, 1 to 256 bytes.
    pub content_type: String,
    /// Free-form metadata.
    pub metadata: Metadata,
}

impl Default for PutOptions {
    fn default() -> Self {
        PutOptions {
            content_type: DEFAULT_CONTENT_TYPE.to_owned(),
            metadata: Metadata::new(),
        }
    }
}

impl PutOptions {
    /// Options with `content_type` and no metadata.
    pub fn with_content_type(content_type: impl Into<String>) -> PutOptions {
        PutOptions {
            content_type: content_type.into(),
            metadata: Metadata::new(),
        }
    }

    /// Checks the options.
    ///
    /// # Errors
    /// `InvalidInput` when the content type is empty, longer than 256 bytes or has a NUL.
    pub fn validate(&self) -> Result<()> {
        check_id("content type", &self.content_type)
    }
}

/// What a put returns: the content's address and its reference count after the put.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactRef {
    /// BLAKE3 hash of the content, 64 lowercase hex digits.
    pub hash: String,
    /// Content length in bytes.
    pub size: u64,
    /// The stored content type (the first put's, for deduplicated content).
    pub content_type: String,
    /// References held after this put.
    pub refcount: u64,
}

/// An artifact's description, without its content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactInfo {
    /// BLAKE3 hash of the content, 64 lowercase hex digits.
    pub hash: String,
    /// Content length in bytes.
    pub size: u64,
    /// The content type given by the first put.
    pub content_type: String,
    /// The metadata given by the first put.
    pub metadata: Metadata,
    /// References currently held.
    pub refcount: u64,
    /// When the content was first stored.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl ArtifactInfo {
    /// The reference a put of this artifact returns.
    pub fn to_ref(&self) -> ArtifactRef {
        ArtifactRef {
            hash: self.hash.clone(),
            size: self.size,
            content_type: self.content_type.clone(),
            refcount: self.refcount,
        }
    }
}

/// An artifact with its verified content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    /// The description.
    pub info: ArtifactInfo,
    /// The content, verified against `info.hash`.
    pub content: Bytes,
}

/// An artifact opened for reading chunk by chunk.
pub struct ArtifactReader {
    /// The description.
    pub info: ArtifactInfo,
    /// The content in order. It is verified as it streams: when the bytes do not match the
    /// hash, the stream's last item is a `Corruption` error instead of the last chunk, so a
    /// consumer must not trust the content before the stream has ended without error.
    pub chunks: ChunkStream<'static>,
}

/// Largest buffer reserved up front when [`ArtifactReader::read_all`] assembles content.
const MAX_PREALLOCATION: u64 = 64 << 20;

impl ArtifactReader {
    /// Reads the whole content, verified, into one buffer (what [`ArtifactStore::get`]
    /// returns).
    ///
    /// # Errors
    /// The first error the chunk stream yields (`Corruption` when the content does not match
    /// its hash).
    pub async fn read_all(mut self) -> Result<Artifact> {
        let capacity = self.info.size.min(MAX_PREALLOCATION) as usize;
        let mut content = Vec::with_capacity(capacity);
        while let Some(chunk) = self.chunks.next().await {
            content.extend_from_slice(&chunk?);
        }
        Ok(Artifact {
            info: self.info,
            content: content.into(),
        })
    }
}

impl fmt::Debug for ArtifactReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArtifactReader")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// Checks a hash given by a caller and returns it in canonical (lowercase) form.
///
/// # Errors
/// `InvalidInput` unless `hash` is 64 hex digits.
pub fn check_hash(hash: &str) -> Result<String> {
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::invalid_input(
            "an artifact hash is 64 hex digits (BLAKE3)",
        ));
    }
    Ok(hash.to_ascii_lowercase())
}

/// Checks an artifact read from a portable record with its content before it is imported:
/// the description's fields, then the content against the size and the BLAKE3 hash, exactly
/// as a read verifies it.
///
/// A portable artifact record is the [`ArtifactInfo`] (reference count and creation time
/// included) as metadata and the whole, uncompressed content as the blob: each store cuts it
/// into chunks of its own size. A record holds its whole artifact in memory, so an export or
/// import page needs up to the page size times the largest artifact: copy artifacts in small
/// pages.
///
/// # Errors
/// `InvalidInput` for a hash that is not 64 lowercase hex digits, a bad content type, a
/// reference count of 0 or above `i64::MAX` (the native `bigint`), or a creation time not in
/// UTC or outside years 0 to 9999; `Corruption` when the content's length or BLAKE3 hash is not
/// the record's.
pub fn check_portable_artifact(info: &ArtifactInfo, content: &[u8]) -> Result<()> {
    if check_hash(&info.hash)? != info.hash {
        return Err(Error::invalid_input("an artifact hash is lowercase hex")
            .with_context("hash", &info.hash));
    }
    check_id("content type", &info.content_type)?;
    if info.refcount == 0 || i64::try_from(info.refcount).is_err() {
        return Err(
            Error::invalid_input("an artifact's reference count must be 1 to 2^63 - 1")
                .with_context("hash", &info.hash)
                .with_context("refcount", info.refcount),
        );
    }
    crate::portable::check_portable_time("artifact creation", info.created_at)?;
    if content.len() as u64 != info.size || chunking::content_hash(content) != info.hash {
        return Err(
            Error::corruption("artifact content does not match its size and hash")
                .with_context("hash", &info.hash),
        );
    }
    Ok(())
}

/// Stores content-addressed, reference-counted artifacts.
///
/// Hash arguments are 64 hex digits (either case). Everything is scoped to the tenant of the
/// backend handle the store was built on: the same content in two tenants is two independent
/// artifacts.
///
/// Every implementation is also a [`PortableStore`](crate::portable::PortableStore): its
/// records can be exported, imported and copied to another backend.
#[async_trait]
pub trait ArtifactStore: crate::portable::PortableStore {
    /// Stores `content` and takes one reference to it.
    ///
    /// # Behavior
    /// - The hash is BLAKE3 of the content, computed by the store.
    /// - Content already stored is not stored again: its reference count grows by one and the
    ///   first put's content type and metadata are kept.
    /// - Concurrent puts of the same content each take one reference and leave one copy.
    ///
    /// # Errors
    /// `InvalidInput` when [`PutOptions::validate`] fails (nothing is stored).
    async fn put(&self, content: Bytes, options: PutOptions) -> Result<ArtifactRef>;

    /// Like [`ArtifactStore::put`], with content arriving as a stream of pieces of any size;
    /// the content is never held whole in memory.
    ///
    /// # Errors
    /// As `put`; the first error the stream yields is returned and no reference is taken.
    async fn put_stream(
        &self,
        content: ChunkStream<'_>,
        options: PutOptions,
    ) -> Result<ArtifactRef>;

    /// Reads an artifact with its content, verified against its hash; `None` when absent.
    ///
    /// # Errors
    /// `InvalidInput` for a malformed hash; `Corruption` when the stored bytes do not match.
    async fn get(&self, hash: &str) -> Result<Option<Artifact>>;

    /// Opens an artifact for reading chunk by chunk; `None` when absent.
    ///
    /// # Errors
    /// `InvalidInput` for a malformed hash; see [`ArtifactReader::chunks`] for verification.
    async fn open(&self, hash: &str) -> Result<Option<ArtifactReader>>;

    /// Reads an artifact's description without its content; `None` when absent.
    ///
    /// # Errors
    /// `InvalidInput` for a malformed hash.
    async fn stat(&self, hash: &str) -> Result<Option<ArtifactInfo>>;

    /// Whether an artifact is stored.
    ///
    /// # Errors
    /// `InvalidInput` for a malformed hash.
    async fn exists(&self, hash: &str) -> Result<bool>;

    /// Gives up one reference and returns how many remain; at zero the content is removed.
    ///
    /// # Errors
    /// `InvalidInput` for a malformed hash; `NotFound` when no such artifact is stored.
    async fn release(&self, hash: &str) -> Result<u64>;

    /// Lists artifacts in hash order, `limit` per page, starting after hash `after`.
    ///
    /// # Errors
    /// `InvalidInput` when `limit` is outside 1 to 10 000 or `after` is malformed.
    async fn list(&self, after: Option<&str>, limit: usize) -> Result<Page<ArtifactInfo>>;
}
