//! Pairs of texts (a source id and a target id, or a source id and a field's value as JSON)
//! kept for the lookups, sorted by key and found by binary search. Keys are front-coded:
//! sorted ids share most of their leading characters with the id before, so each keeps only
//! the length it shares and the rest. At 1M records the lookups hold 740,000 links of accounts
//! and contacts: as a hash map of strings about 140 bytes a link, as text with offsets 36,
//! front-coded about 17.
//!
//! Staging hands the pairs over in the order it stores them, mostly sorted already; a sort in
//! the statement would cost DuckDB memory under its limit instead, and start over when it ran
//! out. [`PairReader`] codes the pairs that come in order as they come and sorts in the rest.

use std::cmp::Ordering;

/// Keys per block: a block's first key is kept whole, so a lookup decodes at most this many.
const BLOCK: usize = 16;

const TOO_BIG: &str = "more than 4 GB of linked ids";

/// Builds [`PackedPairs`] from pairs in the order staging hands them over. Staging mostly
/// stores links in the order they were first written, which is the order of the ids read, so
/// pairs in order are coded as they come; the few that are not (four of 49,000 contacts in a
/// first import at 25,000 accounts) wait aside and are sorted into a second set at the end.
#[derive(Default)]
pub(super) struct PairReader {
    packed: PackedPairs,
    /// The last key coded, which the next is coded against.
    last_key: String,
    /// Pairs whose key did not come after `last_key`, as read.
    late: Unsorted,
}

impl PairReader {
    pub(super) fn push(&mut self, key: &str, value: &str) -> Result<(), String> {
        if self.packed.len() > 0 && key <= self.last_key.as_str() {
            return self.late.push(key, value);
        }
        self.packed.code(key, value, &self.last_key)?;
        self.last_key.clear();
        self.last_key.push_str(key);
        Ok(())
    }

    /// The pairs, sorted by key (of pairs read with one key, the first is kept).
    pub(super) fn finish(self) -> Result<PackedPairs, String> {
        let PairReader {
            mut packed, late, ..
        } = self;
        if !late.ends.is_empty() {
            packed.rest = Some(Box::new(late.sorted_without(&packed)?));
        }
        packed.shrink();
        Ok(packed)
    }
}

/// Pairs in the order read, each key followed by its value in one string.
#[derive(Default)]
struct Unsorted {
    text: String,
    /// Where each pair's key ends and where its value ends (its key starts where the pair
    /// before ends).
    ends: Vec<(u32, u32)>,
}

impl Unsorted {
    fn push(&mut self, key: &str, value: &str) -> Result<(), String> {
        self.text.push_str(key);
        let key_end = u32::try_from(self.text.len());
        self.text.push_str(value);
        let value_end = u32::try_from(self.text.len());
        match (key_end, value_end) {
            (Ok(key_end), Ok(value_end)) => {
                self.ends.push((key_end, value_end));
                Ok(())
            }
            _ => Err(TOO_BIG.to_string()),
        }
    }

    fn pair(&self, index: usize) -> (&str, &str) {
        let start = match index {
            0 => 0,
            _ => self.ends[index - 1].1 as usize,
        };
        let (key_end, value_end) = self.ends[index];
        (
            &self.text[start..key_end as usize],
            &self.text[key_end as usize..value_end as usize],
        )
    }

    /// These pairs sorted and coded, but for keys `first` holds (read before them, so theirs
    /// stand) and, of pairs with one key, all but the first read: the two sets then hold each
    /// key once between them, and are looked up one after the other. Kept apart rather than
    /// merged with `first`, which would hold two copies of all the links for a moment (at 1M
    /// records, a rise of 20 MB within 0.1 s, for a few contacts out of order).
    fn sorted_without(&self, first: &PackedPairs) -> Result<PackedPairs, String> {
        let mut order: Vec<u32> = (0..self.ends.len() as u32).collect();
        // Stable, so of equal keys the one read first stays first.
        order.sort_by(|a, b| self.pair(*a as usize).0.cmp(self.pair(*b as usize).0));
        let mut sorted = PackedPairs::default();
        let mut last: Option<&str> = None;
        for index in order {
            let (key, value) = self.pair(index as usize);
            if last == Some(key) || first.value_of(key).is_some() {
                continue;
            }
            sorted.code(key, value, last.unwrap_or_default())?;
            last = Some(key);
        }
        sorted.shrink();
        Ok(sorted)
    }
}

/// Pairs sorted by key, the keys front-coded (see the top of this file), and the pairs read
/// out of order in a second such set.
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
    /// Pair indices by value, then key: made once a reversed lookup asks (the sync back's).
    by_value: Option<Vec<u32>>,
    /// Pairs read out of key order, with keys this set does not hold (see
    /// [`Unsorted::sorted_without`]).
    rest: Option<Box<PackedPairs>>,
}

impl PackedPairs {
    /// Adds a pair after the last, whose key (`before`) it must follow.
    fn code(&mut self, key: &str, value: &str, before: &str) -> Result<(), String> {
        let index = self.value_ends.len();
        if index.is_multiple_of(BLOCK) {
            self.blocks
                .push(u32::try_from(self.keys.len()).map_err(|_| TOO_BIG.to_string())?);
            write_length(&mut self.keys, key.len());
            self.keys.extend_from_slice(key.as_bytes());
        } else {
            let shared = shared_prefix(before, key);
            write_length(&mut self.keys, shared);
            write_length(&mut self.keys, key.len() - shared);
            self.keys.extend_from_slice(&key.as_bytes()[shared..]);
        }
        self.values.push_str(value);
        self.value_ends
            .push(u32::try_from(self.values.len()).map_err(|_| TOO_BIG.to_string())?);
        Ok(())
    }

    fn len(&self) -> usize {
        self.value_ends.len()
    }

    fn shrink(&mut self) {
        self.keys.shrink_to_fit();
        self.blocks.shrink_to_fit();
        self.values.shrink_to_fit();
        self.value_ends.shrink_to_fit();
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
        // Keys are cut only where a character starts (`shared_prefix`), so this is text.
        String::from_utf8(found).unwrap_or_default()
    }

    /// The value of `key`.
    pub(super) fn value_of(&self, key: &str) -> Option<&str> {
        self.own_value_of(key)
            .or_else(|| self.rest.as_ref()?.value_of(key))
    }

    fn own_value_of(&self, key: &str) -> Option<&str> {
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
        let own = self.own_key_of(value);
        let rest = self.rest.as_mut().and_then(|rest| rest.key_of(value));
        match (own, rest) {
            (Some(own), Some(rest)) => Some(own.min(rest)),
            (own, rest) => own.or(rest),
        }
    }

    fn own_key_of(&mut self, value: &str) -> Option<String> {
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

/// The length `b` shares with `a`, cut back to where a character of `b` starts.
fn shared_prefix(a: &str, b: &str) -> usize {
    let shared = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
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
        let mut reader = PairReader::default();
        for (key, value) in read {
            reader.push(key, value).unwrap();
        }
        reader.finish().unwrap()
    }

    #[test]
    fn every_key_finds_its_own_value_and_no_other_key_finds_one() {
        // In order and out of order, over many blocks.
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
        let packed = pairs(&[("ab", "c"), ("a", "bc"), ("", "empty key")]);
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
            ("ê", "6"),
            (long.as_str(), "1"),
            (longer.as_str(), "2"),
            ("é-1", "3"),
            ("é-2", "4"),
            ("éa", "5"),
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
