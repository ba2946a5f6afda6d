//! The sandboxes' data-folder files: JSON lines written to a temporary name and renamed into
//! place (a crash never leaves half a file), and read back with the file and line of anything
//! that is not a saved entry.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use serde_json::Value;

/// Writes `path` through `fill`, atomically.
pub fn write_atomically(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    {
        let mut out = BufWriter::new(File::create(&temporary)?);
        fill(&mut out)?;
        out.flush()?;
        out.get_ref().sync_all()?;
    }
    fs::rename(&temporary, path)
}

/// Writes one JSON value per line.
pub fn write_json_lines<'a>(
    path: &Path,
    values: impl IntoIterator<Item = Value> + 'a,
) -> std::io::Result<()> {
    write_atomically(path, |out| {
        for value in values {
            serde_json::to_writer(&mut *out, &value)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    })
}

/// Reads a JSON-lines file, handing each value to `each`, which answers `None` for a value
/// that is not a saved entry; that, or a line that is not JSON, fails with file and line.
pub fn read_json_lines(
    path: &Path,
    mut each: impl FnMut(Value) -> Option<()>,
) -> std::io::Result<()> {
    for (n, line) in BufReader::new(File::open(path)?).lines().enumerate() {
        let line = line?;
        let accepted = serde_json::from_str(&line).ok().and_then(&mut each);
        if accepted.is_none() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: line {} is not a saved record", path.display(), n + 1),
            ));
        }
    }
    Ok(())
}
