//! Sealed segments as key-value records, so a reopened store does not rebuild its graphs.
//!
//! A segment is one binary payload (ids, vectors, graph; little-endian) cut into chunks of at
//! most [`CHUNK_BYTES`], plus a manifest (versioned JSON) with the payload's length, chunk
//! count and BLAKE3 hash. Manifest and chunks are written in one atomic batch that also checks
//! the collection record, so a segment never outlives its collection's generation. A segment
//! whose manifest, chunks, hash or shape do not check out is reported as broken: the caller
//! deletes it and rebuilds from the vectors. Metadata is not stored here; it comes from the
//! vectors on load.

use std::collections::BTreeMap;

use cairn_core::{Bytes, Error, Key, MAX_SCAN_LIMIT, Result, WriteBatch};
use serde::{Deserialize, Serialize};

use super::graph::{Graph, M, ZERO_LINKS};
use super::segment::Segment;
use crate::codec::{decode_record, encode_record};
use crate::retry::settled;
use crate::vectors::generic::{GenericVectorStore, Loaded};
use crate::vectors::kernel::row_norm;
use crate::vectors::keys::VectorKey;
use crate::vectors::{Metadata, Metric};

/// Largest payload chunk: well below the key-value value limit.
pub(super) const CHUNK_BYTES: usize = 16 << 20;

/// Version of the payload layout.
const FORMAT: u32 = 1;

/// The manifest record of one segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Manifest {
    format: u32,
    rows: u64,
    dimension: usize,
    metric: Metric,
    chunks: u64,
    bytes: u64,
    blake3: String,
}

/// Encodes `segment`'s rows and graph.
fn encode(segment: &Segment) -> Vec<u8> {
    let graph = &segment.graph;
    let mut out = Vec::with_capacity(
        16 + segment.ids.iter().map(|id| id.len() + 4).sum::<usize>()
            + 4 * (segment.vectors.len() + graph.zero.len())
            + 4 * graph.upper.iter().map(Vec::len).sum::<usize>(),
    );
    let mut put = |n: usize| out.extend_from_slice(&(n as u32).to_le_bytes());
    put(segment.len());
    put(segment.dimension);
    put(graph.upper.len());
    for layer in &graph.upper {
        put(layer.len() / M);
    }
    for id in &segment.ids {
        out.extend_from_slice(&(id.len() as u32).to_le_bytes());
        out.extend_from_slice(id.as_bytes());
    }
    for x in &segment.vectors {
        out.extend_from_slice(&x.to_le_bytes());
    }
    for link in graph.zero.iter().chain(graph.upper.iter().flatten()) {
        out.extend_from_slice(&link.to_le_bytes());
    }
    out
}

/// Reads a payload written by [`encode`].
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.bytes.len() < n {
            return Err(Error::corruption("HNSW segment payload is truncated"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u32s(&mut self, n: usize) -> Result<Vec<u32>> {
        let bytes = self.take(n.checked_mul(4).ok_or_else(too_large)?)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }
}

fn too_large() -> Error {
    Error::corruption("HNSW segment payload declares an impossible size")
}

/// Decodes segment `number` of a collection of `dimension`; metadata starts empty.
///
/// # Errors
/// `Corruption` when the payload is truncated, has trailing bytes, another dimension, an id
/// that is not UTF-8, a non-finite component, or a broken graph.
fn decode(bytes: &[u8], number: u64, dimension: usize) -> Result<Segment> {
    let mut reader = Reader { bytes };
    let rows = reader.u32()? as usize;
    if reader.u32()? as usize != dimension {
        return Err(Error::corruption(
            "HNSW segment has another dimension than its collection",
        ));
    }
    let layers = reader.u32()? as usize;
    let layer_nodes = reader.u32s(layers)?;
    let mut ids = Vec::with_capacity(rows.min(bytes.len()));
    for _ in 0..rows {
        let len = reader.u32()? as usize;
        let id = std::str::from_utf8(reader.take(len)?)
            .map_err(|e| Error::corruption("HNSW segment id is not UTF-8").with_source(e))?;
        ids.push(id.to_owned());
    }
    let components = rows.checked_mul(dimension).ok_or_else(too_large)?;
    let vectors: Vec<f32> = reader
        .u32s(components)?
        .into_iter()
        .map(f32::from_bits)
        .collect();
    if vectors.iter().any(|x| !x.is_finite()) {
        return Err(Error::corruption(
            "HNSW segment holds a non-finite component",
        ));
    }
    let zero = reader.u32s(rows.checked_mul(ZERO_LINKS).ok_or_else(too_large)?)?;
    let upper = layer_nodes
        .iter()
        .map(|&nodes| reader.u32s((nodes as usize).checked_mul(M).ok_or_else(too_large)?))
        .collect::<Result<Vec<_>>>()?;
    if !reader.bytes.is_empty() {
        return Err(Error::corruption("HNSW segment payload has trailing bytes"));
    }
    let graph = Graph { zero, upper };
    graph.check()?;
    let norms = vectors.chunks_exact(dimension).map(row_norm).collect();
    Ok(Segment {
        number,
        dimension,
        ids,
        vectors,
        norms,
        metadata: vec![Metadata::new(); rows],
        graph,
    })
}

fn manifest_key(loaded: &Loaded, segment: u64) -> Result<Key> {
    VectorKey::SegmentManifest {
        collection: &loaded.record.info.name,
        generation: &loaded.record.generation,
        segment,
    }
    .key()
}

/// Writes `segment` if the collection is still `loaded`; `None` when it changed meanwhile.
///
/// # Errors
/// The backend's errors.
pub(super) async fn save(
    kv: &GenericVectorStore,
    loaded: &Loaded,
    segment: &Segment,
) -> Result<Option<()>> {
    let payload = Bytes::from(encode(segment));
    let chunks = payload.len().div_ceil(CHUNK_BYTES).max(1);
    let manifest = Manifest {
        format: FORMAT,
        rows: segment.len() as u64,
        dimension: segment.dimension,
        metric: loaded.record.info.metric,
        chunks: chunks as u64,
        bytes: payload.len() as u64,
        blake3: blake3::hash(&payload).to_hex().to_string(),
    };
    let mut batch = WriteBatch::new().check(loaded.key.clone(), Some(loaded.bytes.clone()));
    for chunk in 0..chunks {
        let start = chunk * CHUNK_BYTES;
        let end = (start + CHUNK_BYTES).min(payload.len());
        let key = VectorKey::SegmentChunk {
            collection: &loaded.record.info.name,
            generation: &loaded.record.generation,
            segment: segment.number,
            chunk: chunk as u64,
        }
        .key()?;
        batch = batch.put(key, payload.slice(start..end));
    }
    batch = batch.put(
        manifest_key(loaded, segment.number)?,
        encode_record(&manifest)?,
    );
    batch.validate()?;
    settled(kv.backend().write_batch(batch).await)
}

/// The stored keys of one segment, by their last segment (`m` or a chunk number).
#[derive(Debug, Default)]
struct StoredSegment {
    manifest: Option<Bytes>,
    chunks: BTreeMap<String, Bytes>,
}

/// Reads every stored segment of `loaded`: the ones that check out, in number order, and the
/// numbers of the broken ones.
///
/// # Errors
/// The backend's errors.
pub(super) async fn load(
    kv: &GenericVectorStore,
    loaded: &Loaded,
) -> Result<(Vec<Segment>, Vec<u64>)> {
    let prefix = loaded.segments_prefix();
    let mut stored: BTreeMap<u64, StoredSegment> = BTreeMap::new();
    let mut stray = Vec::new();
    let mut after: Option<Key> = None;
    loop {
        let page = kv
            .backend()
            .scan(&prefix, after.as_ref(), MAX_SCAN_LIMIT)
            .await?;
        for (key, value) in page.entries {
            let rest = &key.as_str()[prefix.len()..];
            let parsed = rest
                .split_once('/')
                .and_then(|(n, part)| Some((u64::from_str_radix(n, 16).ok()?, part)));
            match parsed {
                Some((number, "m")) => stored.entry(number).or_default().manifest = Some(value),
                Some((number, part)) => {
                    stored
                        .entry(number)
                        .or_default()
                        .chunks
                        .insert(part.to_owned(), value);
                }
                None => stray.push(key),
            }
        }
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    if !stray.is_empty() {
        kv.backend().delete_batch(&stray).await?;
    }
    let mut segments = Vec::new();
    let mut broken = Vec::new();
    for (number, parts) in stored {
        match assemble(loaded, number, parts) {
            Ok(segment) => segments.push(segment),
            Err(_) => broken.push(number),
        }
    }
    Ok((segments, broken))
}

fn assemble(loaded: &Loaded, number: u64, parts: StoredSegment) -> Result<Segment> {
    let manifest: Manifest = decode_record(
        parts
            .manifest
            .as_deref()
            .ok_or_else(|| Error::corruption("HNSW segment has no manifest"))?,
    )?;
    let info = &loaded.record.info;
    if manifest.format != FORMAT
        || manifest.dimension != info.dimension
        || manifest.metric != info.metric
        || manifest.chunks != parts.chunks.len() as u64
    {
        return Err(Error::corruption(
            "HNSW segment manifest does not match its collection or chunks",
        ));
    }
    let mut payload = Vec::with_capacity(manifest.bytes.min(1 << 30) as usize);
    for (expected, (name, chunk)) in parts.chunks.iter().enumerate() {
        if u64::from_str_radix(name, 16).ok() != Some(expected as u64) {
            return Err(Error::corruption("HNSW segment chunks are not contiguous"));
        }
        payload.extend_from_slice(chunk);
    }
    if payload.len() as u64 != manifest.bytes
        || blake3::hash(&payload).to_hex().as_str() != manifest.blake3
    {
        return Err(Error::corruption("HNSW segment fails its checksum"));
    }
    let segment = decode(&payload, number, info.dimension)?;
    if segment.len() as u64 != manifest.rows {
        return Err(Error::corruption("HNSW segment row count differs"));
    }
    Ok(segment)
}

/// Deletes every key of segment `number`.
///
/// # Errors
/// The backend's errors.
pub(super) async fn remove(kv: &GenericVectorStore, loaded: &Loaded, number: u64) -> Result<()> {
    kv.sweep(&VectorKey::segment_prefix(
        &loaded.record.info.name,
        &loaded.record.generation,
        number,
    ))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::ErrorKind;

    fn segment() -> Segment {
        let ids: Vec<String> = (0..300).map(|i| format!("id-{i}")).collect();
        let vectors: Vec<f32> = (0..300 * 4).map(|i| (i % 17) as f32 - 8.0).collect();
        let metadata = vec![Metadata::new(); 300];
        Segment::build(3, 4, Metric::L2, 32, ids, vectors, metadata)
            .unwrap()
            .0
    }

    #[test]
    fn payload_round_trips() {
        let segment = segment();
        let back = decode(&encode(&segment), 3, 4).unwrap();
        assert_eq!(back.ids, segment.ids);
        assert_eq!(back.vectors, segment.vectors);
        assert_eq!(back.graph, segment.graph);
    }

    #[test]
    fn damaged_payloads_are_corruption() {
        let bytes = encode(&segment());
        for len in [0, 3, 11, bytes.len() / 2, bytes.len() - 1] {
            let err = decode(&bytes[..len], 3, 4).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Corruption, "len {len}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer, 3, 4).is_err());
        assert!(decode(&bytes, 3, 5).is_err());
        let mut bad_link = bytes.clone();
        let at = bytes.len() - 4;
        bad_link[at..].copy_from_slice(&100_000u32.to_le_bytes());
        assert!(decode(&bad_link, 3, 4).is_err());
    }
}
