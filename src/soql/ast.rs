//! The SOQL syntax tree: what a query selects, from where, under which condition and order.

/// Byte range of a piece of the query text, for error positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

/// A field or relationship path such as `Name`, `Owner.Email` or `Account.Owner.Name`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldRef {
    pub path: Vec<String>,
    pub span: Span,
}

impl FieldRef {
    /// The path joined with dots, as written.
    pub fn dotted(&self) -> String {
        self.path.join(".")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateFunction {
    Count,
    CountDistinct,
    Sum,
    Avg,
    Min,
    Max,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SelectItem {
    Field {
        field: FieldRef,
        alias: Option<String>,
    },
    /// `COUNT()`, `COUNT(Id)`, `MAX(Amount) total`, …
    Aggregate {
        function: AggregateFunction,
        field: Option<FieldRef>,
        alias: Option<String>,
        span: Span,
    },
    /// A parent-to-child subquery: `(SELECT Id FROM Attachments)`.
    SubQuery { query: Box<Query>, span: Span },
}

#[derive(Debug, Clone, PartialEq)]
pub struct FromClause {
    pub object: String,
    pub alias: Option<String>,
    pub span: Span,
}

/// The left-hand side of a comparison or an ORDER BY item: a field, or a date function of one
/// (`CALENDAR_YEAR(CloseDate)`).
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Field(FieldRef),
    Function {
        name: String,
        field: FieldRef,
        span: Span,
    },
}

impl Operand {
    pub fn field(&self) -> &FieldRef {
        match self {
            Operand::Field(field) | Operand::Function { field, .. } => field,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    Like,
}

/// Relative date literals such as `TODAY` or `LAST_N_DAYS:30`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateLiteral {
    /// Upper-case name, e.g. `LAST_N_DAYS`.
    pub name: String,
    /// The `:n` argument of the `_N_` literals.
    pub n: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    String(String),
    /// Kept as written so that `23` and `23.0` round-trip; parse with `str::parse::<f64>`.
    Number(String),
    /// `2024-01-31`
    Date(String),
    /// `2024-01-31T10:00:00Z`, `2024-01-31T10:00:00.000+0100`
    DateTime(String),
    Relative(DateLiteral),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    And(Vec<Condition>),
    Or(Vec<Condition>),
    Not(Box<Condition>),
    Compare {
        left: Operand,
        op: CompareOp,
        value: Value,
        value_span: Span,
    },
    /// `x IN (…)` / `x NOT IN (…)`
    In {
        left: Operand,
        negated: bool,
        values: Vec<Value>,
    },
    /// `x IN (SELECT …)` semi-join
    InSubQuery {
        left: Operand,
        negated: bool,
        query: Box<Query>,
    },
    /// Multi-select picklists: `x INCLUDES ('a;b', 'c')` / `EXCLUDES`
    Includes {
        left: Operand,
        excludes: bool,
        values: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderItem {
    pub operand: Operand,
    pub descending: bool,
    /// `Some(true)` for NULLS LAST, `Some(false)` for NULLS FIRST, `None` for the default.
    pub nulls_last: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub select: Vec<SelectItem>,
    pub from: FromClause,
    pub where_clause: Option<Condition>,
    pub group_by: Vec<FieldRef>,
    pub order_by: Vec<OrderItem>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
}

impl Query {
    /// Every field the query reads, in the order written (SELECT list, WHERE, GROUP BY,
    /// ORDER BY), not descending into subqueries: those name another object.
    pub fn field_refs(&self) -> Vec<&FieldRef> {
        let mut out = Vec::new();
        for item in &self.select {
            match item {
                SelectItem::Field { field, .. } => out.push(field),
                SelectItem::Aggregate {
                    field: Some(field), ..
                } => out.push(field),
                _ => {}
            }
        }
        if let Some(condition) = &self.where_clause {
            condition.collect_fields(&mut out);
        }
        out.extend(self.group_by.iter());
        out.extend(self.order_by.iter().map(|o| o.operand.field()));
        out
    }

    /// True for `SELECT COUNT() FROM …`, whose result is only a total size.
    pub fn is_count_only(&self) -> bool {
        matches!(
            self.select.as_slice(),
            [SelectItem::Aggregate {
                function: AggregateFunction::Count,
                field: None,
                ..
            }]
        )
    }
}

impl Condition {
    /// Adds every field this condition reads to `out`.
    pub fn collect_fields<'a>(&'a self, out: &mut Vec<&'a FieldRef>) {
        match self {
            Condition::And(parts) | Condition::Or(parts) => {
                for part in parts {
                    part.collect_fields(out);
                }
            }
            Condition::Not(inner) => inner.collect_fields(out),
            Condition::Compare { left, .. }
            | Condition::In { left, .. }
            | Condition::InSubQuery { left, .. }
            | Condition::Includes { left, .. } => out.push(left.field()),
        }
    }
}
