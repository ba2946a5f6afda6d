//! Transform: turns source records into target-shaped records (field maps, templates, value
//! maps, lookups). Knows nothing of where records come from or go.
//!
//! The engine compiles a [`Transformer`] per pipeline and direction, calls
//! [`Transformer::transform`] per record with its [`Lookups`], and compares results with
//! [`record_hash`] and [`changed_fields`].

pub mod filters;
pub mod hash;
pub mod path;
pub mod template;
pub mod transformer;
pub mod value_map;

pub use hash::{canonical_json, changed_fields, record_hash};
pub use transformer::{Direction, FieldProblem, Lookups, TransformError, Transformed, Transformer};
pub use value_map::same_value;
