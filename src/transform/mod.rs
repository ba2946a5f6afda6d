//! Transform: turns source records into target-shaped records (field maps, templates, value
//! maps, lookups). Knows nothing of where records come from or go.

pub mod template;
