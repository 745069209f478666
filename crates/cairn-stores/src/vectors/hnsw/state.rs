//! One collection's in-memory index: sealed segments with their tombstones, the exact-scan
//! buffer of recent writes, and where each live id currently lives.
//!
//! Invariant: every live id has exactly one location, and the row there is the id's latest
//! acknowledged version; every other row of that id is tombstoned. Writes change the state
//! under the collection's write lock right after the key-value write succeeds, so a search
//! (which reads the state under its read lock) sees every acknowledged write and never a
//! deleted id, whatever the sealer is doing.

use std::collections::HashMap;
use std::sync::Arc;

use super::segment::{Probe, RowsView, Segment, Top};
use crate::vectors::Metadata;
use crate::vectors::kernel::row_norm;

/// More sealed segments than this are merged.
pub(super) const MAX_SEGMENTS: usize = 8;

/// Where an id's live version is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Location {
    /// Buffer row with this sequence number.
    Buffer(u64),
    /// Row `row` of segment `number`.
    Segment { number: u64, row: u32 },
}

/// Recent writes, scanned exactly, in write order; rows are numbered by a sequence that keeps
/// counting when sealed rows leave the front.
#[derive(Debug, Default)]
pub(super) struct Buffer {
    first: u64,
    ids: Vec<String>,
    vectors: Vec<f32>,
    norms: Vec<f32>,
    metadata: Vec<Metadata>,
    dead: Vec<bool>,
}

impl Buffer {
    fn push(&mut self, id: String, vector: &[f32], metadata: Metadata) -> u64 {
        self.ids.push(id);
        self.norms.push(row_norm(vector));
        self.vectors.extend_from_slice(vector);
        self.metadata.push(metadata);
        self.dead.push(false);
        self.first + self.ids.len() as u64 - 1
    }

    /// Rows held, tombstoned ones included.
    pub(super) fn len(&self) -> usize {
        self.ids.len()
    }

    fn end(&self) -> u64 {
        self.first + self.ids.len() as u64
    }

    fn rows(&self, dimension: usize) -> RowsView<'_> {
        RowsView {
            ids: &self.ids,
            vectors: &self.vectors,
            norms: &self.norms,
            metadata: &self.metadata,
            dead: &self.dead,
            dimension,
        }
    }

    /// Drops the rows numbered below `end`.
    fn drain_before(&mut self, end: u64, dimension: usize) {
        let n = (end.saturating_sub(self.first) as usize).min(self.ids.len());
        self.ids.drain(..n);
        self.vectors.drain(..n * dimension);
        self.norms.drain(..n);
        self.metadata.drain(..n);
        self.dead.drain(..n);
        self.first += n as u64;
    }
}

/// A sealed segment and its tombstones.
#[derive(Debug)]
pub(super) struct Slot {
    pub(super) segment: Arc<Segment>,
    pub(super) dead: Vec<bool>,
    pub(super) dead_count: usize,
}

impl Slot {
    /// A slot whose rows are all dead until marked live.
    pub(super) fn all_dead(segment: Arc<Segment>) -> Slot {
        let len = segment.len();
        Slot {
            segment,
            dead: vec![true; len],
            dead_count: len,
        }
    }

    fn kill(&mut self, row: usize) {
        if !self.dead[row] {
            self.dead[row] = true;
            self.dead_count += 1;
        }
    }

    /// Marks `row` live.
    pub(super) fn revive(&mut self, row: usize) {
        if self.dead[row] {
            self.dead[row] = false;
            self.dead_count -= 1;
        }
    }

    fn mostly_dead(&self) -> bool {
        self.dead_count * 2 >= self.segment.len()
    }
}

/// Rows copied out of the state for the sealer: the live buffer rows below `buffer_end` and
/// the live rows of the segments being merged, each with where it came from.
#[derive(Debug)]
pub(super) struct Plan {
    pub(super) number: u64,
    pub(super) buffer_end: u64,
    pub(super) victims: Vec<u64>,
    pub(super) ids: Vec<String>,
    pub(super) vectors: Vec<f32>,
    pub(super) metadata: Vec<Metadata>,
    pub(super) sources: Vec<Location>,
}

/// One collection's index.
#[derive(Debug)]
pub(super) struct State {
    dimension: usize,
    pub(super) segments: Vec<Slot>,
    pub(super) buffer: Buffer,
    locations: HashMap<String, Location>,
    next_segment: u64,
}

impl State {
    /// An empty index for vectors of `dimension`, numbering new segments from `next_segment`.
    pub(super) fn new(dimension: usize, next_segment: u64) -> State {
        State {
            dimension,
            segments: Vec::new(),
            buffer: Buffer::default(),
            locations: HashMap::new(),
            next_segment,
        }
    }

    /// Adds a loaded segment whose live rows the caller then marks with [`State::place`].
    pub(super) fn add_segment(&mut self, slot: Slot) {
        self.next_segment = self.next_segment.max(slot.segment.number + 1);
        self.segments.push(slot);
    }

    /// Records that `id` lives at row `row` of the segment at `index` (while loading).
    pub(super) fn place(&mut self, id: String, index: usize, row: usize) {
        let slot = &mut self.segments[index];
        slot.revive(row);
        let number = slot.segment.number;
        self.locations.insert(
            id,
            Location::Segment {
                number,
                row: row as u32,
            },
        );
    }

    /// How many ids are live.
    pub(super) fn count(&self) -> usize {
        self.locations.len()
    }

    fn slot_mut(&mut self, number: u64) -> Option<&mut Slot> {
        self.segments
            .iter_mut()
            .find(|s| s.segment.number == number)
    }

    /// Tombstones `id`'s live row; returns whether it had one.
    fn kill(&mut self, id: &str) -> bool {
        let Some(location) = self.locations.remove(id) else {
            return false;
        };
        match location {
            Location::Buffer(seq) => {
                let row = (seq - self.buffer.first) as usize;
                self.buffer.dead[row] = true;
            }
            Location::Segment { number, row } => {
                if let Some(slot) = self.slot_mut(number) {
                    slot.kill(row as usize);
                }
            }
        }
        true
    }

    /// Makes `vector` the live version of `id`.
    pub(super) fn upsert(&mut self, id: String, vector: &[f32], metadata: Metadata) {
        self.kill(&id);
        let seq = self.buffer.push(id.clone(), vector, metadata);
        self.locations.insert(id, Location::Buffer(seq));
    }

    /// Tombstones `id`.
    pub(super) fn delete(&mut self, id: &str) {
        self.kill(id);
    }

    /// Offers every live row the probe accepts to `top`: segments through their graphs (or
    /// exactly when `exact`), the buffer exactly.
    pub(super) fn search<'a>(
        &'a self,
        probe: &Probe<'_>,
        ef: usize,
        exact: bool,
        top: &mut Top<'a>,
    ) {
        for slot in &self.segments {
            let rows = slot.segment.rows(&slot.dead);
            if exact {
                probe.scan(rows, top);
            } else {
                probe.walk(&slot.segment.graph, rows, ef, top);
            }
        }
        probe.scan(self.buffer.rows(self.dimension), top);
    }

    /// Segments to merge: the mostly deleted ones and, past [`MAX_SEGMENTS`], the smallest
    /// until half that many remain.
    fn victims(&self) -> Vec<u64> {
        let mut victims: Vec<u64> = self
            .segments
            .iter()
            .filter(|s| s.mostly_dead())
            .map(|s| s.segment.number)
            .collect();
        if self.segments.len() > MAX_SEGMENTS {
            let mut by_size: Vec<&Slot> = self.segments.iter().collect();
            by_size.sort_by_key(|s| s.segment.len() - s.dead_count);
            let excess = self.segments.len() - MAX_SEGMENTS / 2;
            victims.extend(by_size.iter().take(excess).map(|s| s.segment.number));
            victims.sort_unstable();
            victims.dedup();
        }
        victims
    }

    /// Whether the sealer has work: a buffer of `threshold` rows (any rows when `force`), or
    /// segments to merge.
    pub(super) fn due(&self, threshold: usize, force: bool) -> bool {
        let buffered = self.buffer.len();
        buffered >= threshold || (force && buffered > 0) || !self.victims().is_empty()
    }

    /// Copies out the rows of the next seal, when [`State::due`].
    pub(super) fn plan(&self, threshold: usize, force: bool) -> Option<Plan> {
        if !self.due(threshold, force) {
            return None;
        }
        let victims = self.victims();
        let mut plan = Plan {
            number: self.next_segment,
            buffer_end: self.buffer.end(),
            victims,
            ids: Vec::new(),
            vectors: Vec::new(),
            metadata: Vec::new(),
            sources: Vec::new(),
        };
        let mut take = |rows: RowsView<'_>, source: &dyn Fn(usize) -> Location| {
            for row in 0..rows.ids.len() {
                if !rows.dead[row] {
                    plan.ids.push(rows.ids[row].clone());
                    plan.vectors.extend_from_slice(rows.vector(row));
                    plan.metadata.push(rows.metadata[row].clone());
                    plan.sources.push(source(row));
                }
            }
        };
        for slot in self.segments.iter() {
            if plan.victims.contains(&slot.segment.number) {
                let number = slot.segment.number;
                take(slot.segment.rows(&slot.dead), &|row| Location::Segment {
                    number,
                    row: row as u32,
                });
            }
        }
        let first = self.buffer.first;
        take(self.buffer.rows(self.dimension), &|row| {
            Location::Buffer(first + row as u64)
        });
        Some(plan)
    }

    /// Installs the result of `plan`: `segment` (when the plan had live rows, with
    /// `order[i]` the plan row of segment row `i`) replaces the merged segments and the sealed
    /// buffer rows. A row that changed since the plan was copied stays tombstoned.
    pub(super) fn install(&mut self, plan: &Plan, built: Option<(Arc<Segment>, Vec<u32>)>) {
        if let Some((segment, order)) = built {
            let mut slot = Slot::all_dead(segment.clone());
            let number = segment.number;
            for (row, &source) in order.iter().enumerate() {
                let source = plan.sources[source as usize];
                let id = &segment.ids[row];
                if self.locations.get(id) == Some(&source) {
                    slot.revive(row);
                    self.locations.insert(
                        id.clone(),
                        Location::Segment {
                            number,
                            row: row as u32,
                        },
                    );
                }
            }
            self.segments.push(slot);
        }
        self.segments
            .retain(|s| !plan.victims.contains(&s.segment.number));
        self.buffer.drain_before(plan.buffer_end, self.dimension);
        self.next_segment = self.next_segment.max(plan.number + 1);
    }
}
