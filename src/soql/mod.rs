//! SOQL: one parser for the whole tool.
//!
//! `etl validate` uses it to check the `where` and `query` of a pipeline offline, and the
//! Salesforce sandbox executes the same syntax tree. Positions are kept on every token so that
//! errors can point inside the query, laid out the way Salesforce lays them out
//! (`ERROR at Row:1:Column:N`).

mod ast;
mod error;
mod lexer;
mod parser;

pub use ast::{
    AggregateFunction, CompareOp, Condition, DateLiteral, FieldRef, FromClause, Operand, OrderItem,
    Query, SelectItem, Span, Value,
};
pub use error::{ErrorCode, SoqlError};
pub use parser::{parse, parse_condition};
