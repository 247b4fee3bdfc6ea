//! [`SeqMap`]: an ordered map from sequence numbers to values, laid out for the way a
//! backlog fills: almost always at the end, in order.
//!
//! Why not `BTreeMap`: a B-tree splits a full leaf in the middle, so keys inserted in
//! ascending order leave every leaf about half full, and a backlog's index entries
//! (a hundred bytes each) then cost about twice their size. A backlog of a million
//! small messages whose bodies are on disk is mostly index, so that doubling was most
//! of the broker's memory.
//!
//! Layout: the entries sit in chunks of at most [`CHUNK`] `(seq, value)` pairs, each a
//! sorted `Vec`, found through a `BTreeMap` keyed by the chunk's lower bound (every key
//! in a chunk is at or above its bound and below the next chunk's bound). An append
//! past the last key fills the last chunk and then opens a new one, so in-order
//! inserts leave chunks full; an insert in the middle of a full chunk splits it in
//! two. A chunk that empties is dropped, and one that falls far below its capacity
//! gives the spare capacity back.

use std::collections::BTreeMap;
use std::ops::Range;

/// Entries per chunk at most: large enough that the chunk index is small, small
/// enough that an insert or remove in the middle moves little.
const CHUNK: usize = 64;

#[derive(Clone, Debug)]
pub struct SeqMap<V> {
    /// Chunk lower bound -> the chunk's entries, sorted by key, never empty.
    chunks: BTreeMap<u64, Vec<(u64, V)>>,
    len: usize,
}

impl<V> Default for SeqMap<V> {
    fn default() -> Self {
        SeqMap {
            chunks: BTreeMap::new(),
            len: 0,
        }
    }
}

impl<V> SeqMap<V> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bound of the chunk `seq` belongs in, if any chunk's bound is at or below it.
    fn chunk_of(&self, seq: u64) -> Option<u64> {
        self.chunks.range(..=seq).next_back().map(|(lo, _)| *lo)
    }

    pub fn get(&self, seq: &u64) -> Option<&V> {
        let chunk = self.chunks.get(&self.chunk_of(*seq)?)?;
        let i = chunk.binary_search_by_key(seq, |(k, _)| *k).ok()?;
        Some(&chunk[i].1)
    }

    pub fn get_mut(&mut self, seq: &u64) -> Option<&mut V> {
        let lo = self.chunk_of(*seq)?;
        let chunk = self.chunks.get_mut(&lo)?;
        let i = chunk.binary_search_by_key(seq, |(k, _)| *k).ok()?;
        Some(&mut chunk[i].1)
    }

    pub fn contains_key(&self, seq: &u64) -> bool {
        self.get(seq).is_some()
    }

    /// Inserts or replaces; returns the value replaced.
    pub fn insert(&mut self, seq: u64, value: V) -> Option<V> {
        let Some(lo) = self.chunk_of(seq) else {
            // Below every chunk (or none yet): a chunk of its own, bounded by it.
            self.chunks.insert(seq, vec![(seq, value)]);
            self.len += 1;
            return None;
        };
        let last = self.chunks.keys().next_back() == Some(&lo);
        let chunk = self.chunks.get_mut(&lo).expect("chunk_of names a chunk");
        let i = match chunk.binary_search_by_key(&seq, |(k, _)| *k) {
            Ok(i) => return Some(std::mem::replace(&mut chunk[i].1, value)),
            Err(i) => i,
        };
        self.len += 1;
        if chunk.len() < CHUNK {
            chunk.insert(i, (seq, value));
            return None;
        }
        if last && i == chunk.len() {
            // Appending past a full last chunk: start the next one (chunks stay full).
            self.chunks.insert(seq, vec![(seq, value)]);
            return None;
        }
        // A full chunk split in two; the upper half is bounded by its first key.
        let mut upper = chunk.split_off(CHUNK / 2);
        if i <= CHUNK / 2 {
            chunk.insert(i, (seq, value));
        } else {
            upper.insert(i - CHUNK / 2, (seq, value));
        }
        let upper_lo = upper[0].0;
        self.chunks.insert(upper_lo, upper);
        None
    }

    pub fn remove(&mut self, seq: &u64) -> Option<V> {
        let lo = self.chunk_of(*seq)?;
        let chunk = self.chunks.get_mut(&lo)?;
        let i = chunk.binary_search_by_key(seq, |(k, _)| *k).ok()?;
        let (_, value) = chunk.remove(i);
        self.len -= 1;
        if chunk.is_empty() {
            self.chunks.remove(&lo);
        } else if chunk.capacity() >= CHUNK && chunk.len() < CHUNK / 4 {
            chunk.shrink_to_fit();
        }
        Some(value)
    }

    /// Entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&u64, &V)> + '_ {
        self.chunks.values().flatten().map(|(k, v)| (k, v))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&u64, &mut V)> + '_ {
        self.chunks.values_mut().flatten().map(|(k, v)| (&*k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &u64> + '_ {
        self.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.iter().map(|(_, v)| v)
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> + '_ {
        self.iter_mut().map(|(_, v)| v)
    }

    /// Entries with keys in `r`, in key order.
    pub fn range(&self, r: Range<u64>) -> impl Iterator<Item = (&u64, &V)> + '_ {
        // Start at the chunk that may hold `r.start` (or the first one).
        let from = self.chunk_of(r.start).unwrap_or(0);
        self.chunks
            .range(from..)
            .flat_map(|(_, c)| c.iter())
            .skip_while(move |(k, _)| *k < r.start)
            .take_while(move |(k, _)| *k < r.end)
            .map(|(k, v)| (k, v))
    }
}

impl<V> std::ops::Index<&u64> for SeqMap<V> {
    type Output = V;

    fn index(&self, seq: &u64) -> &V {
        self.get(seq).expect("no entry for this sequence number")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u64),
        Remove(u64),
        Get(u64),
        Range(u64, u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        // Mostly appends near the end, as a backlog fills, with some anywhere.
        prop_oneof![
            4 => (0u64..2000).prop_map(Op::Insert),
            3 => (0u64..2000).prop_map(Op::Remove),
            1 => (0u64..2000).prop_map(Op::Get),
            1 => (0u64..2000, 0u64..300).prop_map(|(a, n)| Op::Range(a, a + n)),
        ]
    }

    fn check(map: &SeqMap<u64>, model: &BTreeMap<u64, u64>) {
        assert_eq!(map.len(), model.len());
        assert!(map
            .iter()
            .map(|(k, v)| (*k, *v))
            .eq(model.iter().map(|(k, v)| (*k, *v))));
        for (lo, chunk) in &map.chunks {
            assert!(!chunk.is_empty(), "empty chunk at {lo}");
            assert!(chunk.len() <= CHUNK);
            assert!(chunk.windows(2).all(|w| w[0].0 < w[1].0));
            assert!(chunk[0].0 >= *lo);
        }
        let bounds: Vec<u64> = map.chunks.keys().copied().collect();
        for (w, next) in bounds.iter().zip(bounds.iter().skip(1)) {
            assert!(map.chunks[w].last().is_some_and(|(k, _)| k < next));
        }
    }

    proptest! {
        #[test]
        fn behaves_like_a_btree_map(ops in proptest::collection::vec(op(), 1..600)) {
            let mut map = SeqMap::default();
            let mut model = BTreeMap::new();
            for (n, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Insert(k) => {
                        prop_assert_eq!(map.insert(k, n as u64), model.insert(k, n as u64));
                    }
                    Op::Remove(k) => prop_assert_eq!(map.remove(&k), model.remove(&k)),
                    Op::Get(k) => {
                        prop_assert_eq!(map.get(&k), model.get(&k));
                        if let Some(v) = map.get_mut(&k) {
                            *v += 1;
                            *model.get_mut(&k).expect("same keys") += 1;
                        }
                    }
                    Op::Range(a, b) => {
                        let got: Vec<_> = map.range(a..b).map(|(k, v)| (*k, *v)).collect();
                        let want: Vec<_> = model.range(a..b).map(|(k, v)| (*k, *v)).collect();
                        prop_assert_eq!(got, want);
                    }
                }
                check(&map, &model);
            }
        }
    }

    #[test]
    fn in_order_appends_fill_every_chunk() {
        let mut map = SeqMap::default();
        for seq in 1..=(CHUNK as u64 * 100) {
            map.insert(seq, ());
        }
        assert_eq!(map.chunks.len(), 100);
        assert!(map.chunks.values().all(|c| c.len() == CHUNK));
        // Consumed from the front, chunks go as they empty.
        for seq in 1..=(CHUNK as u64 * 50) {
            map.remove(&seq);
        }
        assert_eq!(map.chunks.len(), 50);
        assert_eq!(map.len(), CHUNK * 50);
    }
}
