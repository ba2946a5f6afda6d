//! Config: the YAML model of projects and pipelines, `${VAR}` interpolation, validation that
//! points at `file:line:col`, and the JSON Schemas generated from the model. Knows nothing of
//! the network.

pub mod diagnostic;
pub mod interpolate;
pub mod layout;
pub mod loader;
pub mod model;
pub mod rules;
pub mod schema;
mod shape;
mod suggest;
pub mod yaml;

pub use diagnostic::{Diagnostic, Severity, SourceFile};
pub use loader::{load, process_env, Workspace, PROJECT_FILE};
pub use model::{FieldMapping, ImportMode, Pipeline, Project};
pub use suggest::closest;
