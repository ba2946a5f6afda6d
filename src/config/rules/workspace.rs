//! The rules across a project's pipeline files: unique names, `depends_on` and `lookup`
//! targets that exist, no cycles, and the order pipelines run in.

use std::collections::{HashMap, HashSet};

use super::pipeline::check_lost_creates;
use super::{loc_at, LoadedPipeline, Step};
use crate::config::diagnostic::{Diagnostic, SourceFile};
use crate::config::model::{ImportMode, Pipeline};
use crate::config::suggest::closest;
use crate::config::yaml::Loc;

/// Rules across pipeline files (unique names, known `depends_on` and `lookup` targets, no
/// cycles) and those that need the project's defaults.
/// `other_names` are pipelines whose files have errors of their own: known, but not checkable.
pub fn check_workspace(
    pipelines: &[LoadedPipeline],
    other_names: &[String],
    default_import: ImportMode,
    out: &mut Vec<Diagnostic>,
) {
    for loaded in pipelines {
        check_lost_creates(loaded, default_import, out);
    }
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for (i, loaded) in pipelines.iter().enumerate() {
        let name = loaded.pipeline.pipeline.as_str();
        if let Some(first) = by_name.get(name) {
            let other = &pipelines[*first].source.path;
            out.push(
                loaded
                    .source
                    .error(
                        "duplicate-pipeline",
                        loc_at(&loaded.tree, &[Step::Key("pipeline")]),
                        format!("pipeline `{name}` is defined twice"),
                    )
                    .hint(format!(
                        "also defined in {}; pipeline names must be unique",
                        other.display()
                    )),
            );
        } else {
            by_name.insert(name, i);
        }
    }
    let names: Vec<&str> = by_name
        .keys()
        .copied()
        .chain(other_names.iter().map(String::as_str))
        .collect();
    let unknown = |file: &SourceFile, loc: Loc, target: &str, what: &str| {
        let mut diagnostic = file.error(
            "unknown-pipeline",
            loc,
            format!("{what} names pipeline `{target}`, which does not exist"),
        );
        if let Some(suggestion) = closest(target, names.iter().copied()) {
            diagnostic = diagnostic.label(format!("did you mean `{suggestion}`?"));
        }
        let mut known = names.clone();
        known.sort_unstable();
        diagnostic.hint(format!("known pipelines: {}", known.join(", ")))
    };
    for loaded in pipelines {
        let (tree, file) = (&loaded.tree, &loaded.source);
        for (i, dependency) in loaded.pipeline.depends_on.iter().enumerate() {
            if !names.contains(&dependency.as_str()) {
                out.push(unknown(
                    file,
                    loc_at(tree, &[Step::Key("depends_on"), Step::Index(i)]),
                    dependency,
                    "`depends_on`",
                ));
            }
        }
        let before = ancestors(pipelines, &by_name, &loaded.pipeline.pipeline);
        for (i, mapping) in loaded.pipeline.fields.iter().enumerate() {
            let Some(target) = mapping.lookup.as_ref().and_then(|l| l.pipeline()) else {
                continue;
            };
            let loc = loc_at(
                tree,
                &[Step::Key("fields"), Step::Index(i), Step::Key("lookup")],
            );
            if !names.contains(&target) {
                out.push(unknown(file, loc, target, "`lookup`"));
            } else if by_name.contains_key(target)
                && !before.contains(target)
                && target != loaded.pipeline.pipeline
            {
                out.push(
                    file.error(
                        "lookup-order",
                        loc,
                        format!("`lookup: {target}` reads a pipeline that may run after this one"),
                    )
                    .hint(format!(
                        "add `{target}` to depends_on so its id map is filled first"
                    ))
                    .warning(),
                );
            }
        }
    }
    report_cycles(pipelines, &by_name, out);
}

/// Every pipeline `name` depends on, directly or not.
fn ancestors<'p>(
    pipelines: &'p [LoadedPipeline],
    by_name: &HashMap<&str, usize>,
    name: &str,
) -> HashSet<&'p str> {
    let mut seen = HashSet::new();
    let mut stack: Vec<&str> = by_name
        .get(name)
        .map(|i| {
            pipelines[*i]
                .pipeline
                .depends_on
                .iter()
                .map(String::as_str)
                .collect()
        })
        .unwrap_or_default();
    while let Some(next) = stack.pop() {
        if let Some(i) = by_name.get(next) {
            let loaded = &pipelines[*i];
            if seen.insert(loaded.pipeline.pipeline.as_str()) {
                stack.extend(loaded.pipeline.depends_on.iter().map(String::as_str));
            }
        }
    }
    seen
}

fn report_cycles(
    pipelines: &[LoadedPipeline],
    by_name: &HashMap<&str, usize>,
    out: &mut Vec<Diagnostic>,
) {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn visit(
        index: usize,
        pipelines: &[LoadedPipeline],
        by_name: &HashMap<&str, usize>,
        marks: &mut [Mark],
        stack: &mut Vec<usize>,
        out: &mut Vec<Diagnostic>,
    ) {
        marks[index] = Mark::Active;
        stack.push(index);
        let loaded = &pipelines[index];
        for (d, dependency) in loaded.pipeline.depends_on.iter().enumerate() {
            let Some(&next) = by_name.get(dependency.as_str()) else {
                continue;
            };
            match marks[next] {
                Mark::Active => {
                    let from = stack.iter().position(|&s| s == next).unwrap_or(0);
                    let mut cycle: Vec<&str> = stack[from..]
                        .iter()
                        .map(|&s| pipelines[s].pipeline.pipeline.as_str())
                        .collect();
                    cycle.push(dependency);
                    let loc = loc_at(&loaded.tree, &[Step::Key("depends_on"), Step::Index(d)]);
                    out.push(
                        loaded
                            .source
                            .error("dependency-cycle", loc, format!("dependency cycle: {}", cycle.join(" → ")))
                            .hint("pipelines run in depends_on order, so a cycle can never start; remove one link"),
                    );
                }
                Mark::New => visit(next, pipelines, by_name, marks, stack, out),
                Mark::Done => {}
            }
        }
        stack.pop();
        marks[index] = Mark::Done;
    }
    let mut marks = vec![Mark::New; pipelines.len()];
    for index in 0..pipelines.len() {
        if marks[index] == Mark::New && by_name.values().any(|&i| i == index) {
            visit(index, pipelines, by_name, &mut marks, &mut Vec::new(), out);
        }
    }
}

/// Order in which pipelines run: every pipeline after those it depends on, otherwise in the
/// order given. Pipelines in a cycle are left out (validation reports the cycle).
pub fn run_order(pipelines: &[Pipeline]) -> Vec<usize> {
    let mut done: Vec<usize> = Vec::new();
    let mut progress = true;
    while progress {
        progress = false;
        for (i, pipeline) in pipelines.iter().enumerate() {
            if done.contains(&i) {
                continue;
            }
            let ready = pipeline.depends_on.iter().all(|d| {
                pipelines
                    .iter()
                    .position(|p| &p.pipeline == d)
                    .is_none_or(|j| done.contains(&j))
            });
            if ready {
                done.push(i);
                progress = true;
            }
        }
    }
    done
}
