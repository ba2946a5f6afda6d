//! More memory for the few statements that work over a whole pipeline's ids at once (a join
//! with the id map sorted, a grouping of every record listed). DuckDB runs them within the
//! staging memory limit and spills what it can to `<file>.tmp`, but some shapes still need
//! room that grows with the ids: with DuckDB 2.0, a join or a grouping over 2M ids passes at
//! 32 MB and over 4M ids fails, where 64 MB passes. Such a statement is run again with the
//! limit doubled, up to [`MAX_DOUBLINGS`] times, and the limit is put back afterwards, so only
//! the statement that needs the memory holds it, and only while it runs.

use super::error::StagingError;
use super::store::Store;

/// The default 32 MB doubled four times is 512 MB.
const MAX_DOUBLINGS: u32 = 4;

impl Store {
    /// Runs `work` (statements only: it runs again from the start when DuckDB runs out of
    /// memory, so it must not have changed anything by then, or must make it again, as a
    /// scratch table made afresh) with room to grow.
    pub(super) fn with_room<T>(
        &self,
        mut work: impl FnMut(&Store) -> Result<T, StagingError>,
    ) -> Result<T, StagingError> {
        let mut doublings = 0;
        loop {
            match work(self) {
                Err(StagingError::OutOfMemory { detail }) => {
                    let Some(limit) = self.memory_limit else {
                        return Err(StagingError::OutOfMemory { detail });
                    };
                    if doublings == MAX_DOUBLINGS {
                        let _ = self.set_memory_limit(limit);
                        return Err(StagingError::OutOfMemory { detail });
                    }
                    doublings += 1;
                    let room = limit << doublings;
                    tracing::debug!(
                        limit_bytes = limit,
                        room_bytes = room,
                        "a statement over a whole pipeline's ids runs again with more memory"
                    );
                    self.set_memory_limit(room)?;
                }
                done => {
                    if let (true, Some(limit)) = (doublings > 0, self.memory_limit) {
                        // DuckDB refuses a lower limit while it cannot free enough memory for
                        // it; the work is done all the same, so the run goes on with more.
                        if let Err(error) = self.set_memory_limit(limit) {
                            tracing::debug!(%error, "the staging memory limit stays raised");
                        }
                    }
                    return done;
                }
            }
        }
    }

    pub(super) fn set_memory_limit(&self, bytes: u64) -> Result<(), StagingError> {
        self.connection()
            .execute_batch(&format!("SET memory_limit = '{bytes}B'"))?;
        Ok(())
    }
}

/// A size as DuckDB takes it (`48MB`, `2GB`, `512MiB`, `1.5GB`) in bytes; `None` when it is
/// not one.
pub(super) fn size_in_bytes(size: &str) -> Option<u64> {
    let size = size.trim();
    let split = size
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(size.len());
    let (number, unit) = size.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "b" | "byte" | "bytes" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return None,
    };
    let bytes = number * scale as f64;
    (bytes.is_finite() && bytes >= 1.0).then_some(bytes as u64)
}
