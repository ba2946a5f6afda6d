//! The rules a pipeline must follow beyond its shape: Salesforce API names as the org spells
//! them, no field mapped twice, SOQL that parses, templates that compile, lookups and
//! dependencies that exist and do not loop, and secrets kept out of files. One file per scope:
//! `pipeline.rs` (one pipeline file on its own), `paths.rs` (field paths against the catalog
//! or, online, the org's describe), `workspace.rs` (across pipeline files), `project.rs` (the
//! project file). This file holds what they share: locating a diagnostic in the YAML tree, and
//! reading durations and rates.
mod paths;
mod pipeline;
mod project;
mod workspace;

pub use paths::{check_pipeline_online, Describes};
pub use pipeline::check_pipeline;
pub use project::check_project;
pub use workspace::{check_workspace, run_order};

use super::diagnostic::{Diagnostic, SourceFile};
use super::model::Pipeline;
use super::yaml::{Loc, Node};

/// A pipeline file as loaded: its text, located tree and typed model.
#[derive(Debug, Clone)]
pub struct LoadedPipeline {
    pub source: SourceFile,
    pub tree: Node,
    pub pipeline: Pipeline,
}

/// One step of a path into the YAML tree.
#[derive(Debug, Clone, Copy)]
pub enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// The node at `path`, if present.
pub fn node_at<'n>(tree: &'n Node, path: &[Step]) -> Option<&'n Node> {
    path.iter().try_fold(tree, |node, step| match step {
        Step::Key(key) => node.get(key),
        Step::Index(i) => node.at(*i),
    })
}

/// Where the value at `path` is, falling back to the nearest existing parent.
fn loc_at(tree: &Node, path: &[Step]) -> Loc {
    (0..=path.len())
        .rev()
        .find_map(|n| node_at(tree, &path[..n]).map(|node| node.loc))
        .unwrap_or(tree.loc)
}

/// Line and column of byte `offset` inside the string value `node`, accounting for the quote
/// that opens a quoted scalar. Block scalars are located at their first content line.
fn inner_position(file: &SourceFile, node: &Node, offset: usize) -> (usize, usize) {
    let value = node.as_str().unwrap_or("");
    let offset = offset.min(value.len());
    let quoted = matches!(
        file.text.as_bytes().get(node.loc.offset),
        Some(b'\'' | b'"')
    );
    let before = &value[..offset];
    let newlines = before.matches('\n').count();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let chars = before[line_start..].chars().count();
    if newlines == 0 {
        (node.loc.line, node.loc.column + chars + usize::from(quoted))
    } else {
        (node.loc.line + newlines, node.loc.column + chars)
    }
}

/// A diagnostic pointing `width` bytes into the string value `node` at `offset`.
fn inner_error(
    file: &SourceFile,
    node: &Node,
    offset: usize,
    width: usize,
    code: &'static str,
    message: String,
) -> Diagnostic {
    let (line, column) = inner_position(file, node, offset);
    file.error_at(code, line, column, width, message)
}

/// `300/5m` → 300 requests per 300 seconds.
pub fn parse_rate(text: &str) -> Option<(u32, u64)> {
    let (requests, window) = text.split_once('/')?;
    let requests: u32 = requests.trim().parse().ok().filter(|n| *n > 0)?;
    let seconds = parse_duration(window.trim()).filter(|s| *s > 0)?;
    Some((requests, seconds))
}

/// Seconds in a duration written as `30s`, `10m`, `2h` or `1d`.
pub fn parse_duration(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return None,
    };
    number.checked_mul(scale)
}
