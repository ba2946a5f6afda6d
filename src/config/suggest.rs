//! "Did you mean …?": the closest known name to a misspelt one.

/// The candidate closest to `word`: an exact match ignoring case first, else the nearest by
/// edit distance when it is close enough to be a plausible typo.
pub fn closest<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let lower = word.to_ascii_lowercase();
    let mut best: Option<(&str, f64)> = None;
    for candidate in candidates {
        if candidate.to_ascii_lowercase() == lower {
            return Some(candidate);
        }
        let score = strsim::jaro_winkler(&lower, &candidate.to_ascii_lowercase());
        if score >= 0.85 && best.is_none_or(|(_, s)| score > s) {
            best = Some((candidate, score));
        }
    }
    best.map(|(c, _)| c)
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn finds_typos_and_case_slips() {
        assert_eq!(
            closest("feilds", ["pipeline", "fields", "halo"]),
            Some("fields")
        );
        assert_eq!(
            closest("stagename", ["Name", "StageName"]),
            Some("StageName")
        );
        assert_eq!(closest("zzz", ["fields"]), None);
    }
}
