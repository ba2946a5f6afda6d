//! `etl diff`: what changed in the source between two runs of one pipeline — the records added,
//! removed and changed, and for each changed record the fields whose values differ (before →
//! after), as a table for people or JSON for machines. It reads only the staging file: the
//! extracted records by default (Salesforce's flat keys such as `Owner.Email`), or with
//! `--stage transformed` the Halo-shaped records (dotted leaf paths such as
//! `main_site.delivery_address.line1`). Numbers are compared by value, so `18` and `18.0` are
//! the same. What is compared is the source's state as of each run: a run that read only the
//! changes since a watermark (incremental) stands on the full run before it, so a record it did
//! not read again is not removed, while one read with Salesforce's deleted flag set is.

use std::io::Write;
use std::path::Path;

use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use serde_json::{Map, Value};

use super::{open_made_store, EXIT_CONFIG};
use crate::staging::{DiffRow, ExtractKind, Stage, StagedRun, StagingError, Store};
use crate::transform::changed_fields;

/// The flag a deleted record is read with. The extracted records of an import are Salesforce's
/// (`deleted_field` of its source adapter), read with the recycle bin when the pipeline acts on
/// deletes; such a record is not in the state as of that run.
const SOURCE_DELETED_FLAG: &str = "IsDeleted";

/// Which staged records to compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DiffStage {
    /// What was extracted from Salesforce (`<pipeline>_extracted`).
    Extracted,
    /// The Halo-shaped records (`<pipeline>_transformed`).
    Transformed,
}

impl DiffStage {
    fn stage(self) -> Stage {
        match self {
            DiffStage::Extracted => Stage::Extracted,
            DiffStage::Transformed => Stage::Transformed,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The pipeline, by name (as in `pipeline:` of its file).
    pub pipeline: String,
    /// The older run (default: the run before `--to`).
    #[arg(long, value_name = "RUN")]
    pub from: Option<String>,
    /// The newer run (default: the pipeline's latest run).
    #[arg(long, value_name = "RUN")]
    pub to: Option<String>,
    /// Which staged records to compare.
    #[arg(long, value_enum, default_value_t = DiffStage::Extracted)]
    pub stage: DiffStage,
    /// Print the differences as JSON.
    #[arg(long)]
    pub json: bool,
}

/// One field whose value differs; `None` is a field the record does not have (`null` in JSON,
/// as an empty value is).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct FieldChange {
    field: String,
    before: Option<Value>,
    after: Option<Value>,
}

/// The differences between two runs.
#[derive(Debug, Default)]
struct RunDiff {
    added: Vec<String>,
    removed: Vec<String>,
    /// Each changed record's id and its [`FieldChange`]s as compact JSON: held as `Value`s, the
    /// fields of 250,000 changed records took 714 MB.
    changed: Vec<(String, String)>,
}

/// The changed fields of a record of [`RunDiff::changed`].
fn field_changes(text: &str) -> Result<Vec<FieldChange>, serde_json::Error> {
    serde_json::from_str(text)
}

/// A problem that stops the command, already worded for the user.
struct Refusal(String);

impl From<StagingError> for Refusal {
    fn from(error: StagingError) -> Refusal {
        Refusal(error.to_string())
    }
}

pub fn run(project: &Path, args: DiffArgs) -> i32 {
    let store = match open_made_store(project) {
        Ok(store) => store,
        Err(code) => return code,
    };
    match diff(&store, &args) {
        Ok((from, to, found)) => {
            if args.json {
                print_json(&args.pipeline, &from.run_id, &to.run_id, &found);
            } else {
                print_table(&args, &from, &to, &found);
            }
            0
        }
        Err(Refusal(message)) => {
            eprintln!("error: {message}");
            EXIT_CONFIG
        }
    }
}

/// Picks the two runs and compares them.
fn diff(store: &Store, args: &DiffArgs) -> Result<(StagedRun, StagedRun, RunDiff), Refusal> {
    let stage = args.stage.stage();
    let pipeline = args.pipeline.as_str();
    let Some(runs) = store.pipeline_runs(pipeline, stage)? else {
        return Err(unknown_pipeline(store, pipeline, stage)?);
    };
    let (from, to) = pick_runs(store, pipeline, &runs, args)?;
    let mut found = RunDiff::default();
    let mut bad_json = None;
    store.diff_runs(
        pipeline,
        stage,
        &from.run_id,
        &to.run_id,
        Some(SOURCE_DELETED_FLAG),
        &mut |row: DiffRow| {
            match (row.before, row.after) {
                (None, Some(_)) => found.added.push(row.source_id),
                (Some(_), None) => found.removed.push(row.source_id),
                (Some(before), Some(after)) => match (as_object(&before), as_object(&after)) {
                    (Some(before), Some(after)) => {
                        let fields: Vec<FieldChange> = changed_fields(&before, &after)
                            .into_iter()
                            .map(|(field, before, after)| FieldChange {
                                field,
                                before,
                                after,
                            })
                            .collect();
                        if !fields.is_empty() {
                            match serde_json::to_string(&fields) {
                                Ok(text) => found.changed.push((row.source_id, text)),
                                Err(_) => {
                                    bad_json.get_or_insert(row.source_id);
                                }
                            }
                        }
                    }
                    _ => {
                        bad_json.get_or_insert(row.source_id);
                    }
                },
                (None, None) => {}
            }
            Ok(())
        },
    )?;
    if let Some(source_id) = bad_json {
        return Err(Refusal(format!(
            "the staged record {source_id} of {pipeline} is not a JSON object; \
             the staging file may have been edited by hand"
        )));
    }
    Ok((from, to, found))
}

fn as_object(text: &str) -> Option<Map<String, Value>> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

/// The error for a pipeline with no staged table: which pipelines do have runs.
fn unknown_pipeline(store: &Store, pipeline: &str, stage: Stage) -> Result<Refusal, Refusal> {
    let staged = store.staged_pipelines(stage)?;
    let table = format!("{pipeline}_{}", stage.suffix());
    Ok(Refusal(if staged.is_empty() {
        format!(
            "no pipeline {pipeline} in the staging file (no table {table}); \
             no pipeline has staged runs yet: `etl run` records each run"
        )
    } else {
        let names: Vec<String> = staged
            .iter()
            .map(|(name, runs)| {
                format!(
                    "{name} ({runs} {})",
                    if *runs == 1 { "run" } else { "runs" }
                )
            })
            .collect();
        format!(
            "no pipeline {pipeline} in the staging file (no table {table}); \
             pipelines with staged runs: {}",
            names.join(", ")
        )
    }))
}

/// The `--from` and `--to` runs, with their defaults: the latest run and the one before it.
fn pick_runs(
    store: &Store,
    pipeline: &str,
    runs: &[StagedRun],
    args: &DiffArgs,
) -> Result<(StagedRun, StagedRun), Refusal> {
    let position = |run_id: &str| -> Result<usize, Refusal> {
        if let Some(index) = runs.iter().position(|r| r.run_id == run_id) {
            return Ok(index);
        }
        let listed = list_runs(runs);
        Err(Refusal(match store.run_pipelines(run_id)? {
            None => format!(
                "no run {run_id} in the staging file; runs of {pipeline}: {listed} \
                 (`etl runs` lists every run)"
            ),
            Some(pipelines) => format!(
                "run {run_id} staged no records of {pipeline} (it ran {}); runs of {pipeline}: \
                 {listed}",
                if pipelines.is_empty() {
                    "no pipeline".to_string()
                } else {
                    pipelines.join(", ")
                }
            ),
        }))
    };
    let from = args.from.as_deref().map(position).transpose()?;
    let to = args.to.as_deref().map(position).transpose()?;
    let latest = runs.len().checked_sub(1);
    let to = match (to, latest) {
        (Some(to), _) => to,
        (None, Some(latest)) => latest,
        (None, None) => {
            return Err(Refusal(format!(
                "no run of {pipeline} has staged records yet: `etl run` it, change something \
                 in Salesforce and `etl run` again, then diff"
            )))
        }
    };
    let from = match from {
        Some(from) => from,
        None if to > 0 => to - 1,
        None if runs.len() == 1 => {
            return Err(Refusal(format!(
                "only one run of {pipeline} so far ({}): change something in Salesforce and \
                 `etl run` again",
                runs[0].run_id
            )))
        }
        None => {
            return Err(Refusal(format!(
                "{} is the first run of {pipeline}: there is no run before it to compare with; \
                 give --from (runs of {pipeline}: {})",
                runs[to].run_id,
                list_runs(runs)
            )))
        }
    };
    Ok((runs[from].clone(), runs[to].clone()))
}

/// How many runs an error message names (the newest); `etl runs` has them all.
const LISTED_RUNS: usize = 5;

fn list_runs(runs: &[StagedRun]) -> String {
    if runs.is_empty() {
        return "none yet".to_string();
    }
    let older = runs.len().saturating_sub(LISTED_RUNS);
    let listed = runs[older..]
        .iter()
        .map(|r| r.run_id.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    if older > 0 {
        format!("{listed} and {older} older")
    } else {
        listed
    }
}

/// `--json`: written as it is serialised, with the values borrowed from `found` (building it
/// as a `Value` first held the whole diff twice more).
fn print_json(pipeline: &str, from: &str, to: &str, found: &RunDiff) {
    #[derive(serde::Serialize)]
    struct Changed<'a> {
        source_id: &'a str,
        fields: Vec<FieldChange>,
    }
    /// The changed records, each's fields read back from their text as it is written.
    struct ChangedRecords<'a>(&'a [(String, String)]);
    impl serde::Serialize for ChangedRecords<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            use serde::ser::{Error, SerializeSeq};
            let mut records = serializer.serialize_seq(Some(self.0.len()))?;
            for (source_id, fields) in self.0 {
                let fields = field_changes(fields).map_err(S::Error::custom)?;
                records.serialize_element(&Changed { source_id, fields })?;
            }
            records.end()
        }
    }
    #[derive(serde::Serialize)]
    struct Report<'a> {
        pipeline: &'a str,
        from: &'a str,
        to: &'a str,
        added: &'a [String],
        removed: &'a [String],
        changed: ChangedRecords<'a>,
    }
    let report = Report {
        pipeline,
        from,
        to,
        added: &found.added,
        removed: &found.removed,
        changed: ChangedRecords(&found.changed),
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    // A closed stdout (`etl diff … | head`) ends the output; there is nothing else to do.
    if serde_json::to_writer_pretty(&mut out, &report).is_ok() {
        let _ = writeln!(out);
    }
}

/// Rows of the table printed at a time (each page has its own header and column widths).
const TABLE_PAGE_ROWS: usize = 1_000;

/// The longest value a table cell shows; `--json` has them whole.
const CELL_CHARS: usize = 60;

/// A value as a table cell: text as is, other values as JSON, a missing field empty.
fn cell(value: Option<&Value>) -> String {
    let text = match value {
        None | Some(Value::Null) => return String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    if text.chars().count() > CELL_CHARS {
        let cut: String = text.chars().take(CELL_CHARS - 1).collect();
        format!("{cut}…")
    } else {
        text
    }
}

fn print_table(args: &DiffArgs, from: &StagedRun, to: &StagedRun, found: &RunDiff) {
    let stage = match args.stage {
        DiffStage::Extracted => "extracted",
        DiffStage::Transformed => "transformed",
    };
    // An incremental run's count is of the records it read (those that changed), not of the
    // state it stands for.
    let describe = |run: &StagedRun| {
        let kind = match run.kind {
            ExtractKind::Full => "",
            ExtractKind::Incremental => "incremental, ",
        };
        format!(
            "{} (etl {}, {}, {kind}{} {})",
            run.run_id,
            run.command,
            run.started_at,
            run.rows,
            if run.rows == 1 { "record" } else { "records" }
        )
    };
    println!(
        "{} ({stage} records): {} → {}",
        args.pipeline,
        describe(from),
        describe(to)
    );
    let total = found.added.len() + found.removed.len() + found.changed.len();
    if total > 0 {
        let added = found.added.iter().map(|id| [id.clone(), "added".into()]);
        let removed = found
            .removed
            .iter()
            .map(|id| [id.clone(), "removed".into()]);
        let bare = added
            .chain(removed)
            .map(|[id, change]| [id, change, String::new(), String::new(), String::new()]);
        let changed = found.changed.iter().flat_map(|(id, fields)| {
            // The text was written from these fields by this command.
            let fields = field_changes(fields).unwrap_or_default();
            fields.into_iter().map(move |field| {
                [
                    id.clone(),
                    "changed".to_string(),
                    field.field,
                    cell(field.before.as_ref()),
                    cell(field.after.as_ref()),
                ]
            })
        });
        let mut rows = bare.chain(changed).peekable();
        // A table is laid out whole, so a large diff is printed a page of rows at a time.
        while rows.peek().is_some() {
            let mut table = Table::new();
            table.load_preset(UTF8_FULL_CONDENSED);
            table.set_header(["source_id", "change", "field", "before", "after"]);
            for row in rows.by_ref().take(TABLE_PAGE_ROWS) {
                table.add_row(row);
            }
            println!("{table}");
        }
    } else {
        println!("no differences");
    }
    println!(
        "{} added, {} removed, {} changed",
        found.added.len(),
        found.removed.len(),
        found.changed.len()
    );
}

#[cfg(test)]
mod tests {
    use super::cell;
    use serde_json::json;

    #[test]
    fn cells_show_text_bare_and_cut_long_values() {
        assert_eq!(cell(Some(&json!("Acme"))), "Acme");
        assert_eq!(cell(Some(&json!(18.5))), "18.5");
        assert_eq!(cell(None), "");
        assert_eq!(cell(Some(&json!(null))), "");
        let long = cell(Some(&json!("x".repeat(100))));
        assert_eq!(long.chars().count(), super::CELL_CHARS);
        assert!(long.ends_with('…'));
    }
}
