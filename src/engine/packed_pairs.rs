//! Pairs of texts (a source id and a target id, or a source id and a field's value as JSON)
//! kept for the lookups in a few large buffers, sorted by key and found by binary search. The
//! keys are front-coded: sorted ids share most of their leading characters with the id before,
//! so each key keeps only the length it shares and the rest. At 1M records the lookups hold
//! 740,000 links of accounts and contacts; as a hash map of strings they took about 140 bytes
//! a link, as text with offsets 36, front-coded about 18.

use std::cmp::Ordering;

/// Keys per block: a block's first key is kept whole, so a lookup decodes at most this many.
const BLOCK: usize = 16;

#[derive(Default)]
pub(super) struct PackedPairs {
    /// The keys in order, in blocks of [`BLOCK`]: a block's first key as its length and its
    /// bytes, every next one as the length it shares with the key before, the length of the
    /// rest and the rest (lengths as LEB128 varints).
    keys: Vec<u8>,
    /// Where each block starts in `keys`.
    blocks: Vec<u32>,
    /// The values, pair after pair, and where each ends.
    values: String,
    value_ends: Vec<u32>,
    /// The last key coded, which the next is coded against.
    last_key: String,
    /// Pairs that came out of key order (a reader that did not sort): sorted in by `finish`.
    unsorted: Vec<(String, String)>,
    /// Pair indices by value, then key: made once a reversed lookup asks (the sync back's).
    by_value: Option<Vec<u32>>,
}

impl PackedPairs {
    /// Adds a pair. Pairs are expected in key order; any that are not cost a sort at `finish`.
    pub(super) fn push(&mut self, key: &str, value: &str) -> Result<(), String> {
        let in_order = self.value_ends.is_empty() || key > self.last_key.as_str();
        if !in_order || !self.unsorted.is_empty() {
            self.unsorted.push((key.to_string(), value.to_string()));
            return Ok(());
        }
        self.code(key, value)
    }

    fn code(&mut self, key: &str, value: &str) -> Result<(), String> {
        let too_big = || "more than 4 GB of linked ids".to_string();
        let index = self.value_ends.len();
        if index % BLOCK == 0 {
            self.blocks
                .push(u32::try_from(self.keys.len()).map_err(|_| too_big())?);
            write_length(&mut self.keys, key.len());
            self.keys.extend_from_slice(key.as_bytes());
        } else {
            let shared = shared_prefix(&self.last_key, key);
            write_length(&mut self.keys, shared);
            write_length(&mut self.keys, key.len() - shared);
            self.keys.extend_from_slice(&key.as_bytes()[shared..]);
        }
        self.values.push_str(value);
        self.value_ends
            .push(u32::try_from(self.values.len()).map_err(|_| too_big())?);
        self.last_key.clear();
        self.last_key.push_str(key);
        Ok(())
    }

    /// Done reading: pairs that came out of order are sorted in (the first of equal keys is
    /// kept), and the buffers give back what the reading left over.
    pub(super) fn finish(mut self) -> Result<PackedPairs, String> {
        if !self.unsorted.is_empty() {
            let mut all: Vec<(String, String)> = (0..self.value_ends.len())
                .map(|index| (self.key(index), self.value(index).to_string()))
                .collect();
            all.append(&mut self.unsorted);
            // Stable: of equal keys, the one read first stays first.
            all.sort_by(|a, b| a.0.cmp(&b.0));
            all.dedup_by(|later, earlier| later.0 == earlier.0);
            let mut sorted = PackedPairs::default();
            for (key, value) in &all {
                sorted.code(key, value)?;
            }
            self = sorted;
        }
        self.keys.shrink_to_fit();
        self.blocks.shrink_to_fit();
        self.values.shrink_to_fit();
        self.value_ends.shrink_to_fit();
        self.last_key = String::new();
        Ok(self)
    }

    fn len(&self) -> usize {
        self.value_ends.len()
    }

    fn value(&self, index: usize) -> &str {
        let start = match index {
            0 => 0,
            _ => self.value_ends[index - 1] as usize,
        };
        &self.values[start..self.value_ends[index] as usize]
    }

    /// The first key of `block` (kept whole).
    fn block_key(&self, block: usize) -> &[u8] {
        let mut at = self.blocks[block] as usize;
        let length = read_length(&self.keys, &mut at);
        &self.keys[at..at + length]
    }

    /// Walks the keys of `block` from its first, handing each (with its index) to `visit`
    /// until it says stop.
    fn walk_block(&self, block: usize, mut visit: impl FnMut(usize, &[u8]) -> bool) {
        let mut at = self.blocks[block] as usize;
        let length = read_length(&self.keys, &mut at);
        let mut key: Vec<u8> = self.keys[at..at + length].to_vec();
        at += length;
        let first = block * BLOCK;
        let last = (first + BLOCK).min(self.len());
        for index in first..last {
            if index > first {
                let shared = read_length(&self.keys, &mut at);
                let rest = read_length(&self.keys, &mut at);
                key.truncate(shared);
                key.extend_from_slice(&self.keys[at..at + rest]);
                at += rest;
            }
            if !visit(index, &key) {
                return;
            }
        }
    }

    fn key(&self, index: usize) -> String {
        let mut found = Vec::new();
        self.walk_block(index / BLOCK, |at, key| {
            if at == index {
                found = key.to_vec();
            }
            at < index
        });
        String::from_utf8(found).unwrap_or_default()
    }

    /// The value of `key` (the id map's key is the source id, so keys are unique).
    pub(super) fn value_of(&self, key: &str) -> Option<&str> {
        // The last block whose first key is not after `key`.
        let (mut low, mut high) = (0, self.blocks.len());
        while low < high {
            let middle = (low + high) / 2;
            if self.block_key(middle) <= key.as_bytes() {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        let block = low.checked_sub(1)?;
        let mut found = None;
        self.walk_block(block, |index, candidate| {
            match candidate.cmp(key.as_bytes()) {
                Ordering::Less => true,
                Ordering::Equal => {
                    found = Some(index);
                    false
                }
                Ordering::Greater => false,
            }
        });
        found.map(|index| self.value(index))
    }

    /// The smallest key whose value is `value` (several sources linked to one target should
    /// not happen; when they do, the answer never depends on the order they were read in).
    pub(super) fn key_of(&mut self, value: &str) -> Option<String> {
        if self.by_value.is_none() {
            let mut by_value: Vec<u32> = (0..self.len() as u32).collect();
            // Indices are in key order, so ties in value fall to the smaller key.
            by_value.sort_unstable_by(|a, b| {
                (self.value(*a as usize), a).cmp(&(self.value(*b as usize), b))
            });
            self.by_value = Some(by_value);
        }
        let by_value = self.by_value.as_ref()?;
        let at = by_value.partition_point(|index| self.value(*index as usize) < value);
        let index = *by_value.get(at)? as usize;
        (self.value(index) == value).then(|| self.key(index))
    }
}

fn shared_prefix(a: &str, b: &str) -> usize {
    let shared = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    // A key is cut only where a character starts, so each part stays text.
    (0..=shared)
        .rev()
        .find(|at| b.is_char_boundary(*at))
        .unwrap_or(0)
}

fn write_length(out: &mut Vec<u8>, mut length: usize) {
    loop {
        let byte = (length & 0x7f) as u8;
        length >>= 7;
        if length == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn read_length(bytes: &[u8], at: &mut usize) -> usize {
    let mut length = 0;
    let mut shift = 0;
    loop {
        let byte = bytes[*at];
        *at += 1;
        length |= ((byte & 0x7f) as usize) << shift;
        if byte & 0x80 == 0 {
            return length;
        }
        shift += 7;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(read: &[(&str, &str)]) -> PackedPairs {
        let mut pairs = PackedPairs::default();
        for (key, value) in read {
            pairs.push(key, value).unwrap();
        }
        pairs.finish().unwrap()
    }

    #[test]
    fn every_key_finds_its_own_value_and_no_other_key_finds_one() {
        // In order and out of order (a reader that did not sort), over many blocks.
        let read: Vec<(String, String)> = (0..1000)
            .map(|n| (format!("001{n:015}"), (n * 7).to_string()))
            .collect();
        let reversed: Vec<(String, String)> = read.iter().rev().cloned().collect();
        for read in [&read, &reversed] {
            let packed = pairs(
                &read
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect::<Vec<_>>(),
            );
            for (key, value) in read {
                assert_eq!(packed.value_of(key), Some(value.as_str()), "{key}");
            }
            // Keys before, between and after the stored ones, and prefixes of them.
            for missing in ["", "000", "001000000000000000x", "0010000000000000", "zzz"] {
                assert_eq!(packed.value_of(missing), None, "{missing}");
            }
        }
    }

    #[test]
    fn a_key_and_a_value_that_run_together_are_still_told_apart() {
        // "ab" + "c" and "a" + "bc" are the same bytes run together.
        let packed = pairs(&[("", "empty key"), ("a", "bc"), ("ab", "c")]);
        assert_eq!(packed.value_of("ab"), Some("c"));
        assert_eq!(packed.value_of("a"), Some("bc"));
        assert_eq!(packed.value_of(""), Some("empty key"));
        assert_eq!(packed.value_of("abc"), None);
    }

    #[test]
    fn long_and_non_ascii_keys_are_kept_whole() {
        let long = "x".repeat(300);
        let longer = format!("{long}y{}", "z".repeat(200));
        let packed = pairs(&[
            (long.as_str(), "1"),
            (longer.as_str(), "2"),
            ("é-1", "3"),
            ("é-2", "4"),
            ("éa", "5"),
            ("ê", "6"),
        ]);
        assert_eq!(packed.value_of(&long), Some("1"));
        assert_eq!(packed.value_of(&longer), Some("2"));
        assert_eq!(packed.value_of("é-2"), Some("4"));
        assert_eq!(packed.value_of("ê"), Some("6"));
        let mut packed = packed;
        assert_eq!(packed.key_of("2"), Some(longer.clone()));
        assert_eq!(packed.key_of("5").as_deref(), Some("éa"));
    }

    #[test]
    fn of_keys_read_twice_the_first_value_is_kept() {
        let packed = pairs(&[("003A", "1"), ("003B", "2"), ("003A", "3")]);
        assert_eq!(packed.value_of("003A"), Some("1"));
        assert_eq!(packed.value_of("003B"), Some("2"));
    }

    #[test]
    fn reversed_lookups_answer_the_smallest_key_whatever_the_order_read() {
        let mut packed = pairs(&[("003B", "7"), ("003A", "7"), ("003C", "8")]);
        assert_eq!(packed.key_of("7").as_deref(), Some("003A"));
        assert_eq!(packed.key_of("8").as_deref(), Some("003C"));
        assert_eq!(packed.key_of("9"), None);
        assert_eq!(packed.key_of(""), None);
        let mut packed = pairs(&[("003A", "7"), ("003B", "7")]);
        assert_eq!(packed.key_of("7").as_deref(), Some("003A"));
    }

    proptest::proptest! {
        /// Whatever the keys (sorted or not, sharing prefixes or not, repeated) and block
        /// boundaries, every key read finds the value first read with it and keys not read
        /// find nothing, as a map would answer.
        #[test]
        fn answers_as_a_map_would(
            read in proptest::collection::vec(("[0-9a-cé]{0,6}", "[0-9]{1,3}"), 0..200),
            sorted in proptest::bool::ANY,
            probes in proptest::collection::vec("[0-9a-cé]{0,6}", 0..50),
        ) {
            let mut read = read;
            if sorted {
                read.sort();
            }
            let mut map = std::collections::HashMap::new();
            let mut by_value = std::collections::BTreeMap::new();
            for (key, value) in &read {
                map.entry(key.clone()).or_insert_with(|| value.clone());
            }
            for (key, value) in &map {
                let smallest = by_value.entry(value.clone()).or_insert_with(|| key.clone());
                if key < smallest {
                    *smallest = key.clone();
                }
            }
            let mut packed = pairs(
                &read.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect::<Vec<_>>(),
            );
            for key in read.iter().map(|(k, _)| k).chain(&probes) {
                proptest::prop_assert_eq!(packed.value_of(key), map.get(key).map(String::as_str));
            }
            for (value, key) in &by_value {
                proptest::prop_assert_eq!(packed.key_of(value), Some(key.clone()));
            }
        }
    }

    #[test]
    fn nothing_read_answers_nothing() {
        let mut packed = pairs(&[]);
        assert_eq!(packed.value_of("001A"), None);
        assert_eq!(packed.key_of("1"), None);
    }
}
