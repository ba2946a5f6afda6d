//! Finds and loads configuration files: the project file and pipeline files, from files or
//! folders. Each file goes through the same steps (parse → environment variables → shape →
//! typed model → rules), and every problem found along the way is collected.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::diagnostic::{Diagnostic, SourceFile};
use super::interpolate::{interpolate, Lookup};
use super::model::{Pipeline, Project};
use super::rules::{self, LoadedPipeline};
use super::schema;
use super::shape;
use super::yaml::{self, Loc, Node};

/// The project file's conventional name.
pub const PROJECT_FILE: &str = "etl.yaml";

/// Everything loaded for one command, with the problems found.
#[derive(Debug, Default)]
pub struct Workspace {
    /// Folder holding the project file (or the current folder); relative paths start here.
    pub root: PathBuf,
    pub project_file: Option<PathBuf>,
    pub project: Project,
    pub pipelines: Vec<LoadedPipeline>,
    pub diagnostics: Vec<Diagnostic>,
    /// Every file read, in order.
    pub files: Vec<PathBuf>,
}

impl Workspace {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// The staging file: `staging` from the project file, relative to it, or the default.
    pub fn staging_path(&self) -> PathBuf {
        let configured = self
            .project
            .staging
            .as_deref()
            .unwrap_or(".etl/staging.duckdb");
        self.root.join(configured)
    }

    /// The folder of pipeline files the project names, or `pipelines/`.
    pub fn pipelines_dir(&self) -> PathBuf {
        self.root
            .join(self.project.pipelines.as_deref().unwrap_or("pipelines"))
    }
}

fn is_project_file(path: &Path) -> bool {
    matches!(
        path.file_name().and_then(|n| n.to_str()),
        Some("etl.yaml" | "etl.yml")
    )
}

fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

/// Reads and checks the shape of one file. Returns the tree only when it is worth checking
/// further (it parsed); shape problems are in `out`.
fn read_checked(
    path: &Path,
    schema: &Value,
    env: Lookup,
    out: &mut Vec<Diagnostic>,
) -> Option<(SourceFile, Node)> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => {
            let file = SourceFile::new(path, "");
            out.push(
                file.error(
                    "read",
                    Loc::start(),
                    format!("cannot read the file: {error}"),
                )
                .hint("check the path and permissions"),
            );
            return None;
        }
    };
    let file = SourceFile::new(path, text);
    let mut tree = match yaml::parse(&file.text) {
        Ok(tree) => tree,
        Err(error) => {
            out.push(
                file.error(
                    "yaml-syntax",
                    error.loc,
                    format!("YAML syntax error: {}", error.message),
                )
                .hint("check indentation, quotes and brackets near this spot"),
            );
            return None;
        }
    };
    interpolate(&mut tree, &file, env, out);
    out.extend(shape::check(&tree, schema, &file));
    Some((file, tree))
}

/// Builds the typed model once the shape is known to be right.
fn typed<T: DeserializeOwned>(
    file: &SourceFile,
    tree: &Node,
    out: &mut Vec<Diagnostic>,
) -> Option<T> {
    match serde_json::from_value(tree.to_json()) {
        Ok(value) => Some(value),
        Err(error) => {
            // The shape check should have caught this; say what serde says rather than guess.
            out.push(file.error(
                "invalid",
                tree.loc,
                format!("invalid configuration: {error}"),
            ));
            None
        }
    }
}

/// Loads the project file at `path`.
pub fn load_project(path: &Path, env: Lookup, out: &mut Vec<Diagnostic>) -> Option<Project> {
    let before = out.len();
    let (file, tree) = read_checked(path, &schema::project_schema(), env, out)?;
    if out[before..].iter().any(Diagnostic::is_error) {
        return None;
    }
    let mut project: Project = typed(&file, &tree, out)?;
    resolve_trusted_certificates(&mut project, &project_root(path));
    rules::check_project(&file, &tree, &project, out);
    Some(project)
}

/// `trust_certificate` is relative to etl.yaml, wherever `etl` runs: made absolute here, where
/// the file's folder is known, so both connectors read the file the user meant.
fn resolve_trusted_certificates(project: &mut Project, root: &Path) {
    let connections = &mut project.connections;
    let paths = [
        connections
            .salesforce
            .as_mut()
            .and_then(|c| c.trust_certificate.as_mut()),
        connections
            .halo
            .as_mut()
            .and_then(|c| c.trust_certificate.as_mut()),
    ];
    for path in paths.into_iter().flatten() {
        let trimmed = path.trim();
        if !trimmed.is_empty() && Path::new(trimmed).is_relative() {
            *path = root.join(trimmed).to_string_lossy().into_owned();
        }
    }
}

/// A pipeline file after loading: fully loaded, or only its name when it has errors (so other
/// files that refer to it are not also reported).
pub enum PipelineLoad {
    Loaded(Box<LoadedPipeline>),
    Broken { name: Option<String> },
}

/// Loads one pipeline file, checking its own rules.
pub fn load_pipeline(path: &Path, env: Lookup, out: &mut Vec<Diagnostic>) -> PipelineLoad {
    let before = out.len();
    let Some((source, tree)) = read_checked(path, &schema::pipeline_schema(), env, out) else {
        return PipelineLoad::Broken { name: None };
    };
    if out[before..].iter().any(Diagnostic::is_error) {
        let name = tree
            .get("pipeline")
            .and_then(Node::as_str)
            .map(str::to_string);
        return PipelineLoad::Broken { name };
    }
    let Some(pipeline) = typed::<Pipeline>(&source, &tree, out) else {
        return PipelineLoad::Broken { name: None };
    };
    rules::check_pipeline(&source, &tree, &pipeline, out);
    PipelineLoad::Loaded(Box::new(LoadedPipeline {
        source,
        tree,
        pipeline,
    }))
}

/// Expands folders into their YAML files (sorted, recursively); files stay as given.
fn expand(paths: &[PathBuf], out: &mut Vec<Diagnostic>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found = Vec::new();
            collect_yaml(path, &mut found);
            found.sort();
            files.extend(found);
        } else if path.exists() {
            files.push(path.clone());
        } else {
            let file = SourceFile::new(path, "");
            out.push(
                file.error("read", Loc::start(), "no such file or folder")
                    .hint("pass pipeline files or folders, e.g. `etl validate pipelines/`"),
            );
        }
    }
    files
}

fn collect_yaml(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_yaml(&path, found);
        } else if is_yaml(&path) {
            found.push(path);
        }
    }
}

/// Loads the project file (`project_file`, if it exists) and the pipelines at `paths`, checking
/// each file and then the rules across pipelines. With no paths, the project's pipeline folder
/// is read.
pub fn load(project_file: &Path, paths: &[PathBuf], env: Lookup) -> Workspace {
    let mut workspace = Workspace {
        root: project_root(project_file),
        ..Workspace::default()
    };
    let mut out = Vec::new();
    let mut project_path = project_file.exists().then(|| project_file.to_path_buf());
    let mut pipeline_files = Vec::new();
    for file in expand(paths, &mut out) {
        if is_project_file(&file) {
            if project_path.as_deref() != Some(file.as_path()) && project_path.is_some() {
                // A second project file named explicitly is checked on its own.
                workspace.files.push(file.clone());
                load_project(&file, env, &mut out);
            } else {
                project_path = Some(file);
            }
        } else {
            pipeline_files.push(file);
        }
    }
    if let Some(path) = &project_path {
        workspace.files.push(path.clone());
        if let Some(project) = load_project(path, env, &mut out) {
            workspace.project = project;
        }
        workspace.root = project_root(path);
        workspace.project_file = Some(path.clone());
    }
    if paths.is_empty() {
        let dir = workspace.pipelines_dir();
        if dir.is_dir() {
            pipeline_files = expand(&[dir], &mut out);
        }
    }
    let mut broken_names = Vec::new();
    for path in pipeline_files {
        workspace.files.push(path.clone());
        match load_pipeline(&path, env, &mut out) {
            PipelineLoad::Loaded(loaded) => workspace.pipelines.push(*loaded),
            PipelineLoad::Broken { name } => broken_names.extend(name),
        }
    }
    // Rules across files need every pipeline of the project, also when only some were named:
    // the others are read as context and their own problems are not reported here.
    let requested: Vec<PathBuf> = workspace
        .pipelines
        .iter()
        .map(|p| canonical(&p.source.path))
        .collect();
    let mut context = workspace.pipelines.clone();
    let dir = workspace.pipelines_dir();
    if !paths.is_empty() && dir.is_dir() {
        let mut ignored = Vec::new();
        for path in expand(&[dir], &mut ignored) {
            if !requested.contains(&canonical(&path)) && !is_project_file(&path) {
                match load_pipeline(&path, env, &mut ignored) {
                    PipelineLoad::Loaded(loaded) => context.push(*loaded),
                    PipelineLoad::Broken { name } => broken_names.extend(name),
                }
            }
        }
    }
    let mut across = Vec::new();
    let default_import = workspace.project.defaults.import.unwrap_or_default();
    rules::check_workspace(&context, &broken_names, default_import, &mut across);
    out.extend(
        across
            .into_iter()
            .filter(|d| requested.contains(&canonical(&d.file))),
    );
    workspace.diagnostics = out;
    workspace
}

/// The folder relative paths in a project file start from: the file's own folder.
pub fn project_root(project_file: &Path) -> PathBuf {
    project_file
        .parent()
        .map_or_else(PathBuf::new, Path::to_path_buf)
}

fn canonical(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
}

/// Reads variables from the process environment.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}
