//! At-least-once offset tracking. Events are handled in chunks (one partition's share of a
//! batch); a chunk is done when every output derived from it was acknowledged. Per partition,
//! chunks complete in any order but offsets are released in order: the committable offset is
//! one past the last offset of the longest done prefix.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Instant,
};

/// One partition's events of one batch.
#[derive(Debug)]
pub struct Chunk {
    pub partition: i32,
    pub last_offset: i64,
    /// Outputs not yet acknowledged, plus one while the chunk is still being filled.
    outstanding: AtomicUsize,
    failed: AtomicBool,
    /// When the chunk's events were consumed (for the latency histogram).
    pub consumed_at: Instant,
}

impl Chunk {
    /// Counts one more output sent for this chunk.
    pub fn output_sent(&self) {
        self.outstanding.fetch_add(1, Ordering::AcqRel);
    }
    /// Counts one output acknowledged (or failed: then the chunk never becomes committable).
    pub fn output_acked(&self, ok: bool) {
        if !ok {
            self.failed.store(true, Ordering::Release);
        }
        self.outstanding.fetch_sub(1, Ordering::AcqRel);
    }
    /// The chunk is filled: no more outputs will be sent for it.
    pub fn sealed(&self) {
        self.outstanding.fetch_sub(1, Ordering::AcqRel);
    }
    fn done(&self) -> bool {
        self.outstanding.load(Ordering::Acquire) == 0 && !self.failed.load(Ordering::Acquire)
    }
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }
}

/// Open chunks per partition, in consumption order.
#[derive(Debug, Default)]
pub struct Tracker {
    chunks: Mutex<HashMap<i32, VecDeque<Arc<Chunk>>>>,
}

impl Tracker {
    /// Opens a chunk; it stays open until [`Chunk::sealed`] and all outputs are acknowledged.
    pub fn open(&self, partition: i32, last_offset: i64, consumed_at: Instant) -> Arc<Chunk> {
        let chunk = Arc::new(Chunk {
            partition,
            last_offset,
            outstanding: AtomicUsize::new(1),
            failed: AtomicBool::new(false),
            consumed_at,
        });
        self.chunks
            .lock()
            .expect("tracker lock")
            .entry(partition)
            .or_default()
            .push_back(chunk.clone());
        chunk
    }

    /// Releases done prefixes: per partition, the next offset to consume (last done + 1).
    pub fn take_committable(&self) -> Vec<(i32, i64)> {
        let mut out = Vec::new();
        let mut map = self.chunks.lock().expect("tracker lock");
        for (p, q) in map.iter_mut() {
            let mut next = None;
            while q.front().is_some_and(|c| c.done()) {
                next = q.pop_front().map(|c| c.last_offset + 1);
            }
            if let Some(n) = next {
                out.push((*p, n));
            }
        }
        out
    }

    /// Whether any chunk failed (an output was not acknowledged).
    pub fn any_failed(&self) -> bool {
        self.chunks
            .lock()
            .expect("tracker lock")
            .values()
            .flatten()
            .any(|c| c.failed())
    }

    /// Chunks not yet released.
    pub fn open_chunks(&self) -> usize {
        self.chunks
            .lock()
            .expect("tracker lock")
            .values()
            .map(VecDeque::len)
            .sum()
    }

    /// Drops every chunk (ExactlyOnce: after a transaction ended, its chunks are settled).
    pub fn clear(&self) {
        self.chunks.lock().expect("tracker lock").clear();
    }

    /// Drops the state of partitions no longer assigned.
    pub fn forget(&self, partitions: &[i32]) {
        let mut map = self.chunks.lock().expect("tracker lock");
        for p in partitions {
            map.remove(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_released_in_order_only_when_acknowledged() {
        let t = Tracker::default();
        let now = Instant::now();
        let a = t.open(0, 9, now);
        let b = t.open(0, 19, now);
        for c in [&a, &b] {
            c.output_sent();
            c.output_sent();
            c.sealed();
        }
        // The later chunk completes first: nothing is committable yet.
        b.output_acked(true);
        b.output_acked(true);
        assert!(t.take_committable().is_empty());
        a.output_acked(true);
        assert!(
            t.take_committable().is_empty(),
            "one output of the first chunk is still pending"
        );
        a.output_acked(true);
        assert_eq!(t.take_committable(), vec![(0, 20)]);
        assert_eq!(t.open_chunks(), 0);
    }

    #[test]
    fn a_chunk_without_outputs_is_done_when_sealed() {
        let t = Tracker::default();
        let c = t.open(3, 41, Instant::now());
        assert!(t.take_committable().is_empty());
        c.sealed();
        assert_eq!(t.take_committable(), vec![(3, 42)]);
    }

    #[test]
    fn a_failed_output_blocks_the_partition() {
        let t = Tracker::default();
        let c = t.open(1, 5, Instant::now());
        c.output_sent();
        c.sealed();
        c.output_acked(false);
        assert!(t.take_committable().is_empty());
        assert!(t.any_failed());
    }
}
