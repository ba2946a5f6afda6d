//! Unguessable strings for OAuth `state` and PKCE verifiers: bytes from the operating system
//! (`/dev/urandom`), or where there is none, randomly keyed SipHash over a counter and the clock.

use std::hash::{BuildHasher, Hasher};
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

const URL_SAFE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";

fn fill(bytes: &mut [u8]) {
    let from_os = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(bytes));
    if from_os.is_ok() {
        return;
    }
    let keys = std::collections::hash_map::RandomState::new();
    for chunk in bytes.chunks_mut(8) {
        let mut hasher = keys.build_hasher();
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        let value = hasher.finish().to_le_bytes();
        chunk.copy_from_slice(&value[..chunk.len()]);
    }
}

/// `len` characters from the unreserved URL alphabet (what PKCE verifiers may use).
pub fn url_safe_string(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    fill(&mut bytes);
    bytes
        .iter()
        .map(|b| URL_SAFE[*b as usize % URL_SAFE.len()] as char)
        .collect()
}

/// A number in `0..bound`, for backoff jitter.
pub fn below(bound: u64) -> u64 {
    if bound == 0 {
        return 0;
    }
    let mut bytes = [0u8; 8];
    fill(&mut bytes);
    u64::from_le_bytes(bytes) % bound
}
