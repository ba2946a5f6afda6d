//! A set of record ids that may answer "maybe" but never a wrong "no" (a Bloom filter), in a
//! fixed 512 KB whatever the number of ids. The attachment copier notes in it which records
//! the listing found files for, so that a load batch none of whose records has any does not
//! ask staging; the staged listing stays the answer for the records that may have some.

use std::hash::{DefaultHasher, Hash, Hasher};

/// 2^22 bits. With the three probes below, 60,000 ids (the files of the 1M-record benchmark)
/// answer "maybe" wrongly for about one id in 13,000; a million ids, for about 13%.
const BITS: usize = 1 << 22;
const PROBES: u64 = 3;

#[derive(Default)]
pub struct IdFilter {
    /// Empty until the first id, so a pipeline whose records have no files holds nothing.
    words: Vec<u64>,
}

impl IdFilter {
    pub fn insert(&mut self, id: &str) {
        if self.words.is_empty() {
            self.words = vec![0; BITS / 64];
        }
        for bit in probes(id) {
            self.words[bit / 64] |= 1 << (bit % 64);
        }
    }

    /// False only for an id never inserted.
    pub fn may_contain(&self, id: &str) -> bool {
        !self.words.is_empty()
            && probes(id).all(|bit| self.words[bit / 64] & (1 << (bit % 64)) != 0)
    }
}

/// The bits of `id`: double hashing, two halves of one 64-bit hash (SipHash with fixed keys).
fn probes(id: &str) -> impl Iterator<Item = usize> {
    let mut hasher = DefaultHasher::new();
    id.hash(&mut hasher);
    let hash = hasher.finish();
    let (first, step) = (hash & 0xffff_ffff, (hash >> 32) | 1);
    (0..PROBES).map(move |i| (first.wrapping_add(i.wrapping_mul(step)) % BITS as u64) as usize)
}

#[cfg(test)]
mod tests {
    use super::IdFilter;

    #[test]
    fn every_inserted_id_is_found_and_few_others_are() {
        let mut filter = IdFilter::default();
        assert!(!filter.may_contain("006000000000001AAA"));
        let inserted: Vec<String> = (0..60_000).map(|n| format!("006{n:012}AAA")).collect();
        for id in &inserted {
            filter.insert(id);
        }
        assert!(inserted.iter().all(|id| filter.may_contain(id)));
        let wrongly_maybe = (0..100_000)
            .map(|n| format!("003{n:012}AAA"))
            .filter(|id| filter.may_contain(id))
            .count();
        // About 8 expected (one in 13,000); far fewer than a filter that said "maybe" to all.
        assert!(wrongly_maybe < 100, "{wrongly_maybe} of 100,000 were maybe");
    }
}
