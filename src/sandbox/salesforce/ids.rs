//! Salesforce record Ids: 15 case-sensitive characters (key prefix, pod, counter) plus the
//! 3-character case-insensitive checksum that makes the 18-character form.

const SUFFIX_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The 18-character form of a 15-character Id.
pub fn to_18(id15: &str) -> String {
    let bytes = id15.as_bytes();
    let mut out = String::with_capacity(18);
    out.push_str(id15);
    for chunk in bytes.chunks(5) {
        let mut bits = 0usize;
        for (j, b) in chunk.iter().enumerate() {
            if b.is_ascii_uppercase() {
                bits |= 1 << j;
            }
        }
        out.push(SUFFIX_ALPHABET[bits] as char);
    }
    out
}

/// Normalises a 15- or 18-character Id to 18 characters; `None` when it is not shaped like one.
pub fn normalize(id: &str) -> Option<String> {
    if !id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    match id.len() {
        15 => Some(to_18(id)),
        18 => {
            let expected = to_18(&id[..15]);
            expected[15..]
                .eq_ignore_ascii_case(&id[15..])
                .then_some(expected)
        }
        _ => None,
    }
}

/// Makes the `n`th Id of an object: prefix, a fixed pod (`5g0`… style) and a base-62 counter.
pub fn make(prefix: &str, n: u64) -> String {
    let mut counter = [b'0'; 9];
    let mut value = n;
    for slot in counter.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    let id15 = format!(
        "{prefix}5g0{}",
        std::str::from_utf8(&counter).expect("base62 is ascii")
    );
    to_18(&id15)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_matches_real_ids() {
        assert_eq!(to_18("00D7F000001Yvo8"), "00D7F000001Yvo8UAC");
        assert_eq!(to_18("0057F000001QtGQ"), "0057F000001QtGQQA0");
    }

    #[test]
    fn normalises_and_rejects() {
        assert_eq!(
            normalize("00D7F000001Yvo8").as_deref(),
            Some("00D7F000001Yvo8UAC")
        );
        assert_eq!(
            normalize("00D7F000001Yvo8uac").as_deref(),
            Some("00D7F000001Yvo8UAC")
        );
        assert_eq!(normalize("00D7F000001Yvo8XXX"), None);
        assert_eq!(normalize("not-an-id"), None);
    }

    #[test]
    fn generated_ids_are_unique_and_valid() {
        let a = make("001", 1);
        let b = make("001", 2);
        assert_ne!(a, b);
        assert_eq!(a.len(), 18);
        assert!(a.starts_with("0015g0"));
        assert_eq!(normalize(&a), Some(a.clone()));
    }
}
