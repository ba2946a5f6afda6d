//! Runs SOQL against the emulated org: checks names against the describe (with Salesforce's own
//! error wording and positions), filters, sorts and pages, and shapes records the way the REST
//! API returns them (`attributes`, nested parents, child subqueries, aggregate rows).

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use serde_json::{json, Map, Value};

use super::ids;
use super::indexes::{SortedOrder, ValueLookup};
use super::org::{Org, Record};
use crate::civil;
use crate::salesforce::catalog::{FieldInfo, ObjectInfo};
use crate::soql::{
    self, AggregateFunction, CompareOp, Condition, ErrorCode, FieldRef, Operand, Query, SelectItem,
    SoqlError, Value as Literal,
};

/// A field path resolved against the describe: the reference fields to follow, then the field.
#[derive(Debug, Clone)]
struct ResolvedPath {
    /// (reference field, relationship name) pairs to walk.
    hops: Vec<(String, String)>,
    field: FieldInfo,
}

/// A query that parsed and whose names all resolve, with the Ids of its matching records.
#[derive(Debug, Clone)]
pub struct Execution {
    pub query: Query,
    pub object: String,
    /// Matching record Ids, in result order (empty for aggregate queries).
    pub ids: Vec<String>,
    /// Rows of an aggregate query, already shaped.
    pub aggregate_rows: Option<Vec<Value>>,
    pub total_size: usize,
    /// `queryAll`: deleted rows included (also in subqueries).
    pub include_deleted: bool,
    /// The resolved path of each SELECT item that is a field, so pages need not resolve again.
    select_paths: Vec<Option<ResolvedPath>>,
}

const FIELD_HINT: &str = "If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.";
const RELATIONSHIP_HINT: &str = "If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names.";

fn field_error(field: &FieldRef, text: String) -> SoqlError {
    SoqlError::new(ErrorCode::InvalidField, text, field.span.start)
}

/// Salesforce lists `ContentDocumentLink` only for given documents or records: the query must
/// narrow it, in a condition that every result meets, to `ContentDocumentId` or
/// `LinkedEntityId` by `=` or `IN` (a list or a semi-join).
fn check_required_filter(org: &Org, query: &Query) -> Result<(), SoqlError> {
    fn narrowed_by_id(condition: &Condition) -> bool {
        let keyed = |operand: &Operand| {
            let name = operand.field().dotted();
            ["ContentDocumentId", "LinkedEntityId"]
                .iter()
                .any(|key| key.eq_ignore_ascii_case(&name))
        };
        match condition {
            Condition::And(parts) => parts.iter().any(narrowed_by_id),
            Condition::Compare {
                left,
                op: CompareOp::Eq,
                ..
            } => keyed(left),
            Condition::In {
                left,
                negated: false,
                ..
            }
            | Condition::InSubQuery {
                left,
                negated: false,
                ..
            } => keyed(left),
            _ => false,
        }
    }
    if org.object_name(&query.from.object) != Some("ContentDocumentLink") {
        return Ok(());
    }
    if query.where_clause.as_ref().is_some_and(narrowed_by_id) {
        return Ok(());
    }
    Err(SoqlError::unpositioned(
        ErrorCode::MalformedQuery,
        "Implementation restriction: ContentDocumentLink requires a filter by a single Id on ContentDocumentId or LinkedEntityId using the equals operator or multiple Id's using the IN operator.",
    ))
}

fn find_field<'a>(object: &'a ObjectInfo, name: &str) -> Option<&'a FieldInfo> {
    object
        .fields
        .iter()
        .find(|f| f.name.eq_ignore_ascii_case(name))
}

fn find_relationship<'a>(object: &'a ObjectInfo, name: &str) -> Option<&'a FieldInfo> {
    object.fields.iter().find(|f| {
        f.relationship_name
            .as_deref()
            .is_some_and(|r| r.eq_ignore_ascii_case(name))
    })
}

/// Resolves `path` on `object`, dropping a leading object name or alias.
fn resolve(
    org: &Org,
    object: &ObjectInfo,
    alias: Option<&str>,
    field: &FieldRef,
) -> Result<ResolvedPath, SoqlError> {
    let mut segments: &[String] = &field.path;
    if segments.len() > 1
        && (segments[0].eq_ignore_ascii_case(&object.name)
            || alias.is_some_and(|a| a.eq_ignore_ascii_case(&segments[0])))
    {
        segments = &segments[1..];
    }
    let mut current = object;
    let mut hops = Vec::new();
    for (i, segment) in segments.iter().enumerate() {
        if i + 1 == segments.len() {
            let info = find_field(current, segment).ok_or_else(|| {
                field_error(
                    field,
                    format!(
                        "No such column '{segment}' on entity '{}'. {FIELD_HINT}",
                        current.name
                    ),
                )
            })?;
            return Ok(ResolvedPath {
                hops,
                field: info.clone(),
            });
        }
        let reference = find_relationship(current, segment).ok_or_else(|| {
            field_error(
                field,
                format!(
                    "Didn't understand relationship '{segment}' in field path. {RELATIONSHIP_HINT}"
                ),
            )
        })?;
        let target = reference
            .reference_to
            .first()
            .and_then(|t| org.describe(t))
            .ok_or_else(|| {
                field_error(field, format!("Didn't understand relationship '{segment}' in field path. {RELATIONSHIP_HINT}"))
            })?;
        hops.push((
            reference.name.clone(),
            reference.relationship_name.clone().unwrap_or_default(),
        ));
        current = target;
    }
    Err(field_error(field, "empty field path".into()))
}

impl ResolvedPath {
    /// True when both paths name the same field through the same references.
    fn same_as(&self, other: &ResolvedPath) -> bool {
        self.field.name == other.field.name && self.hops == other.hops
    }

    /// The value at this path on `record`, following references through the org.
    fn value<'a>(&self, org: &'a Org, record: &'a Record) -> Option<&'a Value> {
        let mut current = record;
        for (reference, _) in &self.hops {
            let id = current.get(reference)?.as_str()?;
            current = org.get(id)?;
        }
        current.get(&self.field.name)
    }
}

/// One ORDER BY key resolved: the path, descending, and NULLS LAST if given.
type OrderBy = (ResolvedPath, bool, Option<bool>);

/// Everything a condition needs, resolved once.
enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Compare {
        path: ResolvedPath,
        function: Option<String>,
        op: CompareOp,
        value: Literal,
    },
    In {
        path: ResolvedPath,
        negated: bool,
        values: Vec<Literal>,
        /// The string literals as comparison keys, when every literal is a string: a record is
        /// then checked with one hash lookup instead of one comparison per literal (the
        /// connector's `ParentId IN (200 ids)` listings made that the sandbox's hot spot).
        keys: Option<HashSet<String>>,
    },
    InSubQuery {
        path: ResolvedPath,
        negated: bool,
        /// The subquery's values, lower-cased: Ids compare without regard to case, and a
        /// semi-join over a whole object holds as many as it has records.
        ids: HashSet<String>,
    },
    Includes {
        path: ResolvedPath,
        excludes: bool,
        values: Vec<String>,
    },
}

fn type_family(field: &FieldInfo) -> &'static str {
    match field.field_type.as_str() {
        "int" | "double" | "currency" | "percent" => "number",
        "boolean" => "boolean",
        "date" => "date",
        "datetime" => "datetime",
        "id" | "reference" => "id",
        _ => "string",
    }
}

fn check_literal(
    field: &FieldRef,
    info: &FieldInfo,
    value: &Literal,
    value_offset: usize,
) -> Result<(), SoqlError> {
    let family = type_family(info);
    let bad = match (family, value) {
        (_, Literal::Null) => false,
        ("number", Literal::Number(_)) => false,
        ("number", _) => true,
        ("boolean", Literal::Bool(_)) => false,
        ("boolean", _) => true,
        ("date", Literal::Date(_) | Literal::Relative(_)) => false,
        ("datetime", Literal::DateTime(_) | Literal::Relative(_)) => false,
        ("date" | "datetime", _) => true,
        ("string" | "id", Literal::String(_)) => false,
        _ => true,
    };
    if !bad {
        return Ok(());
    }
    let name = field.path.last().map_or("", String::as_str);
    let text = match (family, value) {
        ("string" | "id", _) => format!("value of filter criterion for field '{name}' must be of type string and should be enclosed in quotes"),
        ("number", Literal::String(_)) => format!("value of filter criterion for field '{name}' must be of type {} and should not be enclosed in quotes", info.field_type.replace("currency", "double").replace("percent", "double")),
        ("date", Literal::DateTime(_)) => format!("value of filter criterion for field '{name}' must be of type date and should not be enclosed in quotes"),
        ("datetime", Literal::Date(_)) => format!("value of filter criterion for field '{name}' must be of type dateTime and should not be enclosed in quotes"),
        _ => format!("value of filter criterion for field '{name}' must be of type {} and should not be enclosed in quotes", info.field_type),
    };
    Err(SoqlError::new(ErrorCode::InvalidField, text, value_offset))
}

struct Planner<'o> {
    org: &'o Org,
    object: &'o ObjectInfo,
    alias: Option<String>,
    include_deleted: bool,
}

impl<'o> Planner<'o> {
    fn resolve(&self, field: &FieldRef) -> Result<ResolvedPath, SoqlError> {
        resolve(self.org, self.object, self.alias.as_deref(), field)
    }

    fn filter(&self, condition: &Condition) -> Result<Filter, SoqlError> {
        Ok(match condition {
            Condition::And(parts) => Filter::And(
                parts
                    .iter()
                    .map(|p| self.filter(p))
                    .collect::<Result<_, _>>()?,
            ),
            Condition::Or(parts) => Filter::Or(
                parts
                    .iter()
                    .map(|p| self.filter(p))
                    .collect::<Result<_, _>>()?,
            ),
            Condition::Not(inner) => Filter::Not(Box::new(self.filter(inner)?)),
            Condition::Compare {
                left,
                op,
                value,
                value_span,
            } => {
                let path = self.resolve(left.field())?;
                let function = match left {
                    Operand::Function { name, .. } => Some(name.to_ascii_uppercase()),
                    Operand::Field(field) => {
                        if *op == CompareOp::Like && type_family(&path.field) != "string" {
                            return Err(field_error(
                                field,
                                format!(
                                    "invalid operator on {} field: LIKE",
                                    path.field.field_type
                                ),
                            ));
                        }
                        check_literal(field, &path.field, value, value_span.start)?;
                        None
                    }
                };
                Filter::Compare {
                    path,
                    function,
                    op: *op,
                    value: value.clone(),
                }
            }
            Condition::In {
                left,
                negated,
                values,
            } => {
                let path = self.resolve(left.field())?;
                for value in values {
                    check_literal(left.field(), &path.field, value, left.field().span.start)?;
                }
                let keys = values
                    .iter()
                    .map(|value| match value {
                        Literal::String(text) => Some(in_key(&path.field, text)),
                        _ => None,
                    })
                    .collect();
                Filter::In {
                    path,
                    negated: *negated,
                    values: values.clone(),
                    keys,
                }
            }
            Condition::InSubQuery {
                left,
                negated,
                query,
            } => {
                let path = self.resolve(left.field())?;
                check_required_filter(self.org, query)?;
                let inner = execute_query(self.org, query, self.include_deleted)?;
                let ids = match &inner.query.select.first() {
                    Some(SelectItem::Field { field, .. }) => {
                        let inner_object = self.org.describe(&inner.object).expect("resolved");
                        let inner_path = resolve(
                            self.org,
                            inner_object,
                            inner.query.from.alias.as_deref(),
                            field,
                        )?;
                        inner
                            .ids
                            .iter()
                            .filter_map(|id| self.org.get(id))
                            .filter_map(|r| {
                                inner_path
                                    .value(self.org, r)?
                                    .as_str()
                                    .map(str::to_ascii_lowercase)
                            })
                            .collect()
                    }
                    _ => HashSet::new(),
                };
                Filter::InSubQuery {
                    path,
                    negated: *negated,
                    ids,
                }
            }
            Condition::Includes {
                left,
                excludes,
                values,
            } => Filter::Includes {
                path: self.resolve(left.field())?,
                excludes: *excludes,
                values: values.clone(),
            },
        })
    }
}

/// Day range `[start, end]` (inclusive day numbers) of a relative date literal.
fn relative_range(name: &str, n: Option<i64>, today: i64) -> (i64, i64) {
    let n = n.unwrap_or(0);
    let (year, month, _) = civil::civil_from_days(today);
    let month_start = |y: i64, m: i64| {
        let total = y * 12 + (m - 1);
        civil::days_from_civil(total.div_euclid(12), (total.rem_euclid(12) + 1) as u32, 1)
    };
    let (y, m) = (year, i64::from(month));
    let weekday = (today + 4).rem_euclid(7); // 0 = Sunday, as Salesforce weeks start on Sunday
    let week_start = today - weekday;
    let quarter_first_month = (m - 1) / 3 * 3 + 1;
    match name {
        "YESTERDAY" => (today - 1, today - 1),
        "TODAY" => (today, today),
        "TOMORROW" => (today + 1, today + 1),
        "LAST_WEEK" => (week_start - 7, week_start - 1),
        "THIS_WEEK" => (week_start, week_start + 6),
        "NEXT_WEEK" => (week_start + 7, week_start + 13),
        "LAST_MONTH" => (month_start(y, m - 1), month_start(y, m) - 1),
        "THIS_MONTH" => (month_start(y, m), month_start(y, m + 1) - 1),
        "NEXT_MONTH" => (month_start(y, m + 1), month_start(y, m + 2) - 1),
        "LAST_90_DAYS" => (today - 90, today),
        "NEXT_90_DAYS" => (today, today + 90),
        "THIS_QUARTER" | "THIS_FISCAL_QUARTER" => (
            month_start(y, quarter_first_month),
            month_start(y, quarter_first_month + 3) - 1,
        ),
        "LAST_QUARTER" | "LAST_FISCAL_QUARTER" => (
            month_start(y, quarter_first_month - 3),
            month_start(y, quarter_first_month) - 1,
        ),
        "NEXT_QUARTER" | "NEXT_FISCAL_QUARTER" => (
            month_start(y, quarter_first_month + 3),
            month_start(y, quarter_first_month + 6) - 1,
        ),
        "THIS_YEAR" | "THIS_FISCAL_YEAR" => (month_start(y, 1), month_start(y + 1, 1) - 1),
        "LAST_YEAR" | "LAST_FISCAL_YEAR" => (month_start(y - 1, 1), month_start(y, 1) - 1),
        "NEXT_YEAR" | "NEXT_FISCAL_YEAR" => (month_start(y + 1, 1), month_start(y + 2, 1) - 1),
        "LAST_N_DAYS" => (today - n, today),
        "NEXT_N_DAYS" => (today + 1, today + n),
        "N_DAYS_AGO" => (today - n, today - n),
        "LAST_N_WEEKS" => (week_start - 7 * n, week_start - 1),
        "NEXT_N_WEEKS" => (week_start + 7, week_start + 7 * (n + 1) - 1),
        "N_WEEKS_AGO" => (week_start - 7 * n, week_start - 7 * n + 6),
        "LAST_N_MONTHS" => (month_start(y, m - n), month_start(y, m) - 1),
        "NEXT_N_MONTHS" => (month_start(y, m + 1), month_start(y, m + 1 + n) - 1),
        "N_MONTHS_AGO" => (month_start(y, m - n), month_start(y, m - n + 1) - 1),
        "LAST_N_QUARTERS" | "LAST_N_FISCAL_QUARTERS" => (
            month_start(y, quarter_first_month - 3 * n),
            month_start(y, quarter_first_month) - 1,
        ),
        "NEXT_N_QUARTERS" | "NEXT_N_FISCAL_QUARTERS" => (
            month_start(y, quarter_first_month + 3),
            month_start(y, quarter_first_month + 3 + 3 * n) - 1,
        ),
        "N_QUARTERS_AGO" | "N_FISCAL_QUARTERS_AGO" => (
            month_start(y, quarter_first_month - 3 * n),
            month_start(y, quarter_first_month - 3 * n + 3) - 1,
        ),
        "LAST_N_YEARS" | "LAST_N_FISCAL_YEARS" => (month_start(y - n, 1), month_start(y, 1) - 1),
        "NEXT_N_YEARS" | "NEXT_N_FISCAL_YEARS" => {
            (month_start(y + 1, 1), month_start(y + 1 + n, 1) - 1)
        }
        "N_YEARS_AGO" | "N_FISCAL_YEARS_AGO" => {
            (month_start(y - n, 1), month_start(y - n + 1, 1) - 1)
        }
        _ => (today, today),
    }
}

/// Orders a record value against a literal; `None` when they cannot be compared.
/// How `compare` sees a string for equality: ids by their 18-character form, any case; other
/// text case-insensitively.
fn in_key(field: &FieldInfo, text: &str) -> String {
    if type_family(field) == "id" {
        ids::normalize(text)
            .unwrap_or_else(|| text.to_string())
            .to_ascii_lowercase()
    } else {
        text.to_lowercase()
    }
}

fn compare(field: &FieldInfo, value: &Value, literal: &Literal, today: i64) -> Option<Ordering> {
    match literal {
        Literal::Null => None,
        Literal::Bool(b) => value.as_bool().map(|v| v.cmp(b)),
        Literal::Number(n) => {
            let right: f64 = n.parse().ok()?;
            value.as_f64()?.partial_cmp(&right)
        }
        Literal::String(s) => {
            let left = value.as_str()?;
            if type_family(field) == "id" {
                let right = ids::normalize(s).unwrap_or_else(|| s.clone());
                Some(left.to_ascii_lowercase().cmp(&right.to_ascii_lowercase()))
            } else {
                Some(left.to_lowercase().cmp(&s.to_lowercase()))
            }
        }
        Literal::Date(d) => civil::parse_date(value.as_str()?)?.partial_cmp(&civil::parse_date(d)?),
        Literal::DateTime(d) => {
            civil::parse_datetime(value.as_str()?)?.partial_cmp(&civil::parse_datetime(d)?)
        }
        Literal::Relative(r) => {
            let day = civil::parse_date(value.as_str()?)?;
            let (start, end) = relative_range(&r.name, r.n, today);
            Some(if day < start {
                Ordering::Less
            } else if day > end {
                Ordering::Greater
            } else {
                Ordering::Equal
            })
        }
    }
}

/// SOQL LIKE: `%` any run, `_` one character, case-insensitive, `\%` / `\_` literal.
fn like(text: &str, pattern: &str) -> bool {
    let text: Vec<char> = text.to_lowercase().chars().collect();
    let mut tokens: Vec<(char, bool)> = Vec::new(); // (char, is_wildcard)
    let mut chars = pattern
        .to_lowercase()
        .chars()
        .collect::<Vec<_>>()
        .into_iter();
    while let Some(c) = chars.next() {
        match c {
            '\\' => tokens.extend(chars.next().map(|n| (n, false))),
            '%' | '_' => tokens.push((c, true)),
            c => tokens.push((c, false)),
        }
    }
    // Dynamic programming over (pattern position, text position): linear in their product, so
    // no pattern can make a query backtrack for ever.
    let mut reachable = vec![false; text.len() + 1];
    reachable[0] = true;
    for &(c, wildcard) in &tokens {
        let mut next = vec![false; text.len() + 1];
        match (c, wildcard) {
            ('%', true) => {
                let mut seen = false;
                for (i, slot) in next.iter_mut().enumerate() {
                    seen |= reachable[i];
                    *slot = seen;
                }
            }
            (c, wildcard) => {
                for i in 0..text.len() {
                    if reachable[i] && ((c == '_' && wildcard) || text[i] == c) {
                        next[i + 1] = true;
                    }
                }
            }
        }
        reachable = next;
    }
    reachable[text.len()]
}

/// The value a date function gives for a date or datetime (`CALENDAR_YEAR(CloseDate)`).
fn date_function(name: &str, value: &Value) -> Option<Value> {
    let day = civil::parse_date(value.as_str()?)?;
    let (y, m, d) = civil::civil_from_days(day);
    Some(match name {
        "CALENDAR_YEAR" | "FISCAL_YEAR" => json!(y),
        "CALENDAR_MONTH" | "FISCAL_MONTH" => json!(m),
        "CALENDAR_QUARTER" | "FISCAL_QUARTER" => json!((m - 1) / 3 + 1),
        "DAY_IN_MONTH" => json!(d),
        "DAY_ONLY" => json!(civil::format_date(day)),
        "DAY_IN_WEEK" => json!((day + 4).rem_euclid(7) + 1),
        "DAY_IN_YEAR" => json!(day - civil::days_from_civil(y, 1, 1) + 1),
        _ => return None,
    })
}

impl Filter {
    /// A literal every matching record's value at `path` is at least (by [`compare`]), when
    /// the condition implies one: `path > v`, `path >= v` or `path = v`, one of an AND's parts,
    /// or the same bound on every part of an OR (a keyset's `(t > x OR (t = x AND Id > y))`).
    /// A null never passes such a comparison, so a record without a value is below the bound.
    fn lower_bound(&self, path: &ResolvedPath) -> Option<&Literal> {
        match self {
            Filter::Compare {
                path: own,
                function: None,
                op: CompareOp::Gt | CompareOp::GtEq | CompareOp::Eq,
                value,
            } if own.same_as(path) && *value != Literal::Null => Some(value),
            Filter::And(parts) => parts.iter().find_map(|p| p.lower_bound(path)),
            Filter::Or(parts) => {
                let (first, rest) = parts.split_first()?;
                let bound = first.lower_bound(path)?;
                rest.iter()
                    .all(|p| p.lower_bound(path) == Some(bound))
                    .then_some(bound)
            }
            _ => None,
        }
    }

    /// A field of the queried object and the comparison keys ([`in_key`]) its value must have
    /// for a record to match, when the condition says so: `field IN ('a', 'b')`, `field = 'a'`,
    /// or one of an AND's parts. Every matching record is among those holding one of the keys.
    fn candidate_keys(&self) -> Option<(&ResolvedPath, Vec<String>)> {
        match self {
            Filter::In {
                path,
                negated: false,
                keys: Some(keys),
                ..
            } if path.hops.is_empty() => Some((path, keys.iter().cloned().collect())),
            Filter::Compare {
                path,
                function: None,
                op: CompareOp::Eq,
                value: Literal::String(text),
            } if path.hops.is_empty() => Some((path, vec![in_key(&path.field, text)])),
            Filter::And(parts) => parts.iter().find_map(Filter::candidate_keys),
            _ => None,
        }
    }

    fn matches(&self, org: &Org, record: &Record, today: i64) -> bool {
        match self {
            Filter::And(parts) => parts.iter().all(|p| p.matches(org, record, today)),
            Filter::Or(parts) => parts.iter().any(|p| p.matches(org, record, today)),
            Filter::Not(inner) => !inner.matches(org, record, today),
            Filter::Compare {
                path,
                function,
                op,
                value,
            } => {
                let raw = path.value(org, record).filter(|v| !v.is_null());
                let computed;
                let actual = match function {
                    Some(name) => {
                        computed = raw.and_then(|v| date_function(name, v));
                        computed.as_ref()
                    }
                    None => raw,
                };
                match (actual, value) {
                    (None, Literal::Null) => *op == CompareOp::Eq,
                    (Some(_), Literal::Null) => *op == CompareOp::NotEq,
                    (None, _) => *op == CompareOp::NotEq,
                    (Some(actual), literal) => {
                        if *op == CompareOp::Like {
                            return match (actual.as_str(), literal) {
                                (Some(text), Literal::String(pattern)) => like(text, pattern),
                                _ => false,
                            };
                        }
                        let ordering = if function.is_some() {
                            match literal {
                                Literal::Number(n) => actual
                                    .as_f64()
                                    .zip(n.parse::<f64>().ok())
                                    .and_then(|(a, b)| a.partial_cmp(&b)),
                                Literal::Date(d) => actual.as_str().map(|a| a.cmp(d.as_str())),
                                _ => None,
                            }
                        } else {
                            compare(&path.field, actual, literal, today)
                        };
                        match ordering {
                            None => *op == CompareOp::NotEq,
                            Some(ordering) => match op {
                                CompareOp::Eq => ordering == Ordering::Equal,
                                CompareOp::NotEq => ordering != Ordering::Equal,
                                CompareOp::Lt => ordering == Ordering::Less,
                                CompareOp::LtEq => ordering != Ordering::Greater,
                                CompareOp::Gt => ordering == Ordering::Greater,
                                CompareOp::GtEq => ordering != Ordering::Less,
                                CompareOp::Like => false,
                            },
                        }
                    }
                }
            }
            Filter::In {
                path,
                negated,
                keys: Some(keys),
                ..
            } => {
                let found = path
                    .value(org, record)
                    .and_then(Value::as_str)
                    .is_some_and(|actual| keys.contains(&in_key(&path.field, actual)));
                found != *negated
            }
            Filter::In {
                path,
                negated,
                values,
                keys: None,
            } => {
                let actual = path.value(org, record).filter(|v| !v.is_null());
                let found = values.iter().any(|literal| match (actual, literal) {
                    (None, Literal::Null) => true,
                    (Some(a), l) => compare(&path.field, a, l, today) == Some(Ordering::Equal),
                    _ => false,
                });
                found != *negated
            }
            Filter::InSubQuery { path, negated, ids } => {
                let found = path
                    .value(org, record)
                    .and_then(Value::as_str)
                    .is_some_and(|id| ids.contains(&id.to_ascii_lowercase()));
                found != *negated
            }
            Filter::Includes {
                path,
                excludes,
                values,
            } => {
                let selected: Vec<String> = path
                    .value(org, record)
                    .and_then(Value::as_str)
                    .map(|v| v.split(';').map(|s| s.trim().to_lowercase()).collect())
                    .unwrap_or_default();
                let any = values.iter().any(|group| {
                    group
                        .split(';')
                        .map(|s| s.trim().to_lowercase())
                        .all(|part| selected.contains(&part))
                });
                any != *excludes
            }
        }
    }
}

fn sort_key_compare(
    a: Option<&Value>,
    b: Option<&Value>,
    descending: bool,
    nulls_last: Option<bool>,
) -> Ordering {
    let nulls_last = nulls_last.unwrap_or(descending);
    let a = a.filter(|v| !v.is_null());
    let b = b.filter(|v| !v.is_null());
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => {
            if nulls_last {
                Ordering::Greater
            } else {
                Ordering::Less
            }
        }
        (Some(_), None) => {
            if nulls_last {
                Ordering::Less
            } else {
                Ordering::Greater
            }
        }
        (Some(x), Some(y)) => {
            let ordering = match (x, y) {
                (Value::Number(p), Value::Number(q)) => p
                    .as_f64()
                    .partial_cmp(&q.as_f64())
                    .unwrap_or(Ordering::Equal),
                (Value::Bool(p), Value::Bool(q)) => p.cmp(q),
                (Value::String(p), Value::String(q)) => p.to_lowercase().cmp(&q.to_lowercase()),
                _ => Ordering::Equal,
            };
            if descending {
                ordering.reverse()
            } else {
                ordering
            }
        }
    }
}

/// Parses and runs `text`. `include_deleted` is `queryAll`.
pub fn execute(org: &Org, text: &str, include_deleted: bool) -> Result<Execution, SoqlError> {
    let query = soql::parse(text)?;
    check_required_filter(org, &query)?;
    execute_query(org, &query, include_deleted)
}

fn execute_query(org: &Org, query: &Query, include_deleted: bool) -> Result<Execution, SoqlError> {
    let object_name = org.object_name(&query.from.object).ok_or_else(|| {
        SoqlError::new(
            ErrorCode::InvalidType,
            format!(
                "sObject type '{}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.",
                query.from.object
            ),
            query.from.span.start,
        )
    })?;
    let object = org.describe(object_name).expect("named by the org");
    let planner = Planner {
        org,
        object,
        alias: query.from.alias.clone(),
        include_deleted,
    };
    // Resolve every selected name first so errors come in query order, as Salesforce's do.
    let mut has_aggregate = false;
    let mut select_paths = Vec::with_capacity(query.select.len());
    for item in &query.select {
        match item {
            SelectItem::Field { field, .. } => {
                select_paths.push(Some(planner.resolve(field)?));
                continue;
            }
            SelectItem::Aggregate { field, .. } => {
                has_aggregate = true;
                if let Some(field) = field {
                    planner.resolve(field)?;
                }
            }
            SelectItem::SubQuery { query: sub, .. } => {
                child_relationship(org, object, sub)?;
            }
        }
        select_paths.push(None);
    }
    let filter = query
        .where_clause
        .as_ref()
        .map(|c| planner.filter(c))
        .transpose()?;
    let group_paths: Vec<ResolvedPath> = query
        .group_by
        .iter()
        .map(|f| planner.resolve(f))
        .collect::<Result<_, _>>()?;
    let order: Vec<OrderBy> = query
        .order_by
        .iter()
        .map(|o| {
            Ok((
                planner.resolve(o.operand.field())?,
                o.descending,
                o.nulls_last,
            ))
        })
        .collect::<Result<_, SoqlError>>()?;
    let aggregated = has_aggregate || !group_paths.is_empty();
    if aggregated {
        for item in &query.select {
            if let SelectItem::Field { field, .. } = item {
                let grouped = query
                    .group_by
                    .iter()
                    .any(|g| g.dotted().eq_ignore_ascii_case(&field.dotted()));
                if !grouped {
                    return Err(field_error(
                        field,
                        format!("Field must be grouped or aggregated: {}", field.dotted()),
                    ));
                }
            }
        }
    }

    let today = civil::now_millis().div_euclid(86_400_000);
    let wanted = |r: &&Record| {
        (include_deleted || r.get("IsDeleted") != Some(&Value::Bool(true)))
            && filter.as_ref().is_none_or(|f| f.matches(org, r, today))
    };
    let records = org.records(object_name);
    let offset = query.offset.unwrap_or(0) as usize;
    let candidates = filter
        .as_ref()
        .and_then(Filter::candidate_keys)
        .map(|(path, keys)| {
            let field = &path.field;
            let lookup = org
                .indexes()
                .lookup(&format!("{object_name} {}", field.name), || {
                    value_lookup(records, field)
                });
            let mut positions: Vec<usize> = keys
                .iter()
                .filter_map(|key| lookup.get(key))
                .flatten()
                .copied()
                .collect();
            // Table order, each record once, as a scan would have found them.
            positions.sort_unstable();
            positions.dedup();
            positions
        });
    let matched: Vec<&Record> = if let Some(positions) = candidates {
        let mut matched: Vec<&Record> = positions
            .iter()
            .map(|&p| &records[p])
            .filter(wanted)
            .collect();
        if !aggregated && !order.is_empty() {
            matched.sort_by(|a, b| order_compare(org, &order, a, b));
        }
        matched
    } else if order.is_empty() || aggregated {
        records.iter().filter(wanted).collect()
    } else {
        // In ORDER BY order from the remembered sort, starting at the lower bound the WHERE
        // clause sets on the first key, and only as far as OFFSET + LIMIT.
        let sorted = org.indexes().order(&order_key(object_name, &order), || {
            sort_records(org, records, &order)
        });
        let start = filter
            .as_ref()
            .and_then(|f| f.lower_bound(&order[0].0))
            .filter(|_| sorted.searchable)
            .map_or(0, |bound| {
                first_at_bound(org, records, &sorted, &order[0], bound, today)
            });
        let limit = query
            .limit
            .map_or(usize::MAX, |l| offset.saturating_add(l as usize));
        sorted.positions[start..]
            .iter()
            .map(|&p| &records[p])
            .filter(wanted)
            .take(limit)
            .collect()
    };

    if aggregated {
        let rows = aggregate(org, query, &planner, &group_paths, &matched)?;
        if query.is_count_only() {
            let total = matched.len();
            return Ok(Execution {
                query: query.clone(),
                object: object_name.to_string(),
                ids: Vec::new(),
                aggregate_rows: Some(Vec::new()),
                total_size: total,
                include_deleted,
                select_paths,
            });
        }
        let total = rows.len();
        return Ok(Execution {
            query: query.clone(),
            object: object_name.to_string(),
            ids: Vec::new(),
            aggregate_rows: Some(rows),
            total_size: total,
            include_deleted,
            select_paths,
        });
    }

    let ids: Vec<String> = matched
        .into_iter()
        .skip(offset)
        .take(query.limit.map_or(usize::MAX, |l| l as usize))
        .filter_map(|r| r.get("Id").and_then(Value::as_str).map(str::to_string))
        .collect();
    let total = ids.len();
    Ok(Execution {
        query: query.clone(),
        object: object_name.to_string(),
        ids,
        aggregate_rows: None,
        total_size: total,
        include_deleted,
        select_paths,
    })
}

/// How two records compare by an ORDER BY.
fn order_compare(org: &Org, order: &[OrderBy], a: &Record, b: &Record) -> Ordering {
    for (path, descending, nulls_last) in order {
        let ordering = sort_key_compare(
            path.value(org, a),
            path.value(org, b),
            *descending,
            *nulls_last,
        );
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    Ordering::Equal
}

/// Where in an ascending, searchable sorted order the records whose first key is at least
/// `bound` start: every record before it is null (nulls first) or below the bound.
fn first_at_bound(
    org: &Org,
    records: &[Record],
    sorted: &SortedOrder,
    (path, _, nulls_last): &OrderBy,
    bound: &Literal,
    today: i64,
) -> usize {
    let nulls_first = !nulls_last.unwrap_or(false);
    sorted.positions.partition_point(|&p| {
        match path.value(org, &records[p]).filter(|v| !v.is_null()) {
            None => nulls_first,
            Some(value) => compare(&path.field, value, bound, today) == Some(Ordering::Less),
        }
    })
}

/// The positions of a table's records by the comparison key ([`in_key`]) of a text field's
/// value.
fn value_lookup(records: &[Record], field: &FieldInfo) -> ValueLookup {
    let mut lookup = ValueLookup::new();
    for (position, record) in records.iter().enumerate() {
        if let Some(text) = record.get(&field.name).and_then(Value::as_str) {
            lookup
                .entry(in_key(field, text))
                .or_default()
                .push(position);
        }
    }
    lookup
}

/// The key an ORDER BY's sorted order is remembered under.
fn order_key(object: &str, order: &[OrderBy]) -> String {
    let keys: Vec<_> = order
        .iter()
        .map(|(path, descending, nulls_last)| {
            (&path.hops, &path.field.name, descending, nulls_last)
        })
        .collect();
    format!("{object} {keys:?}")
}

/// Every record of a table (deleted ones too) in ORDER BY order, ties in table order, and
/// whether the first key can be binary-searched: every value of it has the JSON kind its
/// field type compares as, and dates and datetimes, sorted as text, are also in time order.
fn sort_records(org: &Org, records: &[Record], order: &[OrderBy]) -> SortedOrder {
    let mut positions: Vec<usize> = (0..records.len()).collect();
    positions.sort_by(|&a, &b| order_compare(org, order, &records[a], &records[b]));
    let (first, descending, _) = &order[0];
    let family = type_family(&first.field);
    let mut previous_time = i64::MIN;
    // Only ascending orders are searched (from a lower bound).
    let searchable = !descending
        && positions.iter().all(|&p| {
            let Some(value) = first.value(org, &records[p]).filter(|v| !v.is_null()) else {
                return true;
            };
            let time = match family {
                "datetime" => value.as_str().and_then(civil::parse_datetime),
                "date" => value.as_str().and_then(civil::parse_date),
                "number" => return value.is_number(),
                "boolean" => return value.is_boolean(),
                _ => return value.is_string(),
            };
            match time {
                Some(time) if time >= previous_time => {
                    previous_time = time;
                    true
                }
                _ => false,
            }
        });
    SortedOrder {
        positions,
        searchable,
    }
}

/// The child object, its field pointing at the parent, and the relationship name as the
/// describe spells it, for a subquery's FROM.
fn child_relationship<'o>(
    org: &'o Org,
    parent: &ObjectInfo,
    sub: &Query,
) -> Result<(&'o ObjectInfo, String, String), SoqlError> {
    let invalid = || {
        SoqlError::new(
            ErrorCode::InvalidType,
            format!(
                "Didn't understand relationship '{}' in FROM part of query call. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names.",
                sub.from.object
            ),
            sub.from.span.start,
        )
    };
    let (relationship, child_name) = parent
        .child_relationships
        .iter()
        .find(|(rel, _)| rel.eq_ignore_ascii_case(&sub.from.object))
        .ok_or_else(invalid)?;
    let child = org.describe(child_name).ok_or_else(invalid)?;
    let field = child
        .fields
        .iter()
        .find(|f| f.field_type == "reference" && f.reference_to.iter().any(|t| t == &parent.name))
        .ok_or_else(invalid)?;
    Ok((child, field.name.clone(), relationship.clone()))
}

fn aggregate(
    org: &Org,
    query: &Query,
    planner: &Planner,
    group_paths: &[ResolvedPath],
    matched: &[&Record],
) -> Result<Vec<Value>, SoqlError> {
    let mut groups: Vec<(Vec<Value>, Vec<&Record>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for record in matched {
        let key: Vec<Value> = group_paths
            .iter()
            .map(|p| p.value(org, record).cloned().unwrap_or(Value::Null))
            .collect();
        let text = serde_json::to_string(&key).unwrap_or_default();
        let slot = *index.entry(text).or_insert_with(|| {
            groups.push((key, Vec::new()));
            groups.len() - 1
        });
        groups[slot].1.push(record);
    }
    if groups.is_empty() && group_paths.is_empty() {
        groups.push((Vec::new(), Vec::new()));
    }
    let mut rows = Vec::new();
    for (key, members) in groups {
        let mut row = Map::new();
        row.insert("attributes".into(), json!({"type": "AggregateResult"}));
        let mut expr = 0;
        for item in &query.select {
            match item {
                SelectItem::Field { field, alias } => {
                    let position = query
                        .group_by
                        .iter()
                        .position(|g| g.dotted().eq_ignore_ascii_case(&field.dotted()));
                    let name = alias
                        .clone()
                        .unwrap_or_else(|| field.path.last().cloned().unwrap_or_default());
                    row.insert(name, position.map_or(Value::Null, |p| key[p].clone()));
                }
                SelectItem::Aggregate {
                    function,
                    field,
                    alias,
                    ..
                } => {
                    let name = alias.clone().unwrap_or_else(|| {
                        let n = format!("expr{expr}");
                        expr += 1;
                        n
                    });
                    let values: Vec<&Value> = match field {
                        Some(f) => {
                            let path = planner.resolve(f)?;
                            members
                                .iter()
                                .filter_map(|r| path.value(org, r))
                                .filter(|v| !v.is_null())
                                .collect()
                        }
                        None => Vec::new(),
                    };
                    let numbers = || values.iter().filter_map(|v| v.as_f64());
                    let value = match function {
                        AggregateFunction::Count if field.is_none() => json!(members.len()),
                        AggregateFunction::Count => json!(values.len()),
                        AggregateFunction::CountDistinct => {
                            let mut seen: Vec<String> =
                                values.iter().map(|v| v.to_string()).collect();
                            seen.sort();
                            seen.dedup();
                            json!(seen.len())
                        }
                        AggregateFunction::Sum => json!(numbers().sum::<f64>()),
                        AggregateFunction::Avg => {
                            let n: Vec<f64> = numbers().collect();
                            if n.is_empty() {
                                Value::Null
                            } else {
                                json!(n.iter().sum::<f64>() / n.len() as f64)
                            }
                        }
                        AggregateFunction::Min => values
                            .iter()
                            .min_by(|a, b| sort_key_compare(Some(a), Some(b), false, None))
                            .map_or(Value::Null, |v| (*v).clone()),
                        AggregateFunction::Max => values
                            .iter()
                            .max_by(|a, b| sort_key_compare(Some(a), Some(b), false, None))
                            .map_or(Value::Null, |v| (*v).clone()),
                    };
                    row.insert(name, value);
                }
                SelectItem::SubQuery { span, .. } => {
                    return Err(SoqlError::new(
                        ErrorCode::MalformedQuery,
                        "Aggregate query does not support subqueries",
                        span.start,
                    ));
                }
            }
        }
        rows.push(Value::Object(row));
    }
    Ok(rows)
}

/// The `attributes` object of a record in a response.
pub fn attributes(object: &str, id: Option<&str>, version: &str) -> Value {
    // Built by hand: this runs once per record of every page.
    let mut map = Map::with_capacity(2);
    map.insert("type".into(), Value::String(object.to_string()));
    if let Some(id) = id {
        map.insert(
            "url".into(),
            Value::String(format!("/services/data/v{version}/sobjects/{object}/{id}")),
        );
    }
    Value::Object(map)
}

/// Shapes one matching record as the REST API returns it: selected fields in SELECT order,
/// parents as nested objects, children as nested query results (`null` when there are none).
pub fn project(
    org: &Org,
    execution: &Execution,
    record: &Record,
    version: &str,
) -> Result<Value, SoqlError> {
    let object = org.describe(&execution.object).expect("resolved");
    let alias = execution.query.from.alias.as_deref();
    let mut out = Map::new();
    out.insert(
        "attributes".into(),
        attributes(
            &execution.object,
            record.get("Id").and_then(Value::as_str),
            version,
        ),
    );
    for (index, item) in execution.query.select.iter().enumerate() {
        match item {
            SelectItem::Field { field, .. } => {
                match execution.select_paths.get(index).and_then(Option::as_ref) {
                    Some(path) => insert_path(org, &mut out, record, path, version),
                    None => {
                        let path = resolve(org, object, alias, field)?;
                        insert_path(org, &mut out, record, &path, version);
                    }
                }
            }
            SelectItem::SubQuery { query: sub, .. } => {
                let (child, parent_field, relationship) = child_relationship(org, object, sub)?;
                let parent_id = record.get("Id").and_then(Value::as_str).unwrap_or_default();
                let mut sub = (**sub).clone();
                sub.from.object = child.name.clone();
                let mut inner = execute_query(org, &sub, execution.include_deleted)?;
                inner.ids.retain(|id| {
                    org.get(id)
                        .and_then(|r| r.get(&parent_field))
                        .and_then(Value::as_str)
                        == Some(parent_id)
                });
                if inner.ids.is_empty() {
                    out.insert(relationship, Value::Null);
                } else {
                    let records: Vec<Value> = inner
                        .ids
                        .iter()
                        .filter_map(|id| org.get(id))
                        .map(|r| {
                            project(
                                org,
                                &Execution {
                                    object: child.name.clone(),
                                    ..inner.clone()
                                },
                                r,
                                version,
                            )
                        })
                        .collect::<Result<_, _>>()?;
                    out.insert(
                        relationship,
                        json!({"totalSize": records.len(), "done": true, "records": records}),
                    );
                }
            }
            SelectItem::Aggregate { .. } => {}
        }
    }
    Ok(Value::Object(out))
}

fn insert_path(
    org: &Org,
    out: &mut Map<String, Value>,
    record: &Record,
    path: &ResolvedPath,
    version: &str,
) {
    let mut target = out;
    let mut current = Some(record);
    for (reference, relationship) in &path.hops {
        let parent = current
            .and_then(|r| r.get(reference))
            .and_then(Value::as_str)
            .and_then(|id| org.get(id));
        let entry = target.entry(relationship.clone()).or_insert(Value::Null);
        match parent {
            Some(parent) => {
                if entry.is_null() {
                    let object = org
                        .object_of_id(parent.get("Id").and_then(Value::as_str).unwrap_or_default())
                        .unwrap_or_default();
                    *entry = json!({"attributes": attributes(object, parent.get("Id").and_then(Value::as_str), version)});
                }
                current = Some(parent);
                target = entry.as_object_mut().expect("just made an object");
            }
            None => return, // an empty lookup is `null`, as Salesforce returns it
        }
    }
    let value = current
        .and_then(|r| r.get(&path.field.name))
        .cloned()
        .unwrap_or(Value::Null);
    let value = if path.field.field_type == "address" {
        // A compound address reads as an object of its component fields, as in the REST API
        // (`null` when every component is empty).
        let prefix = path.field.name.strip_suffix("Address").unwrap_or_default();
        let mut parts = Map::new();
        for (key, suffix) in [
            ("city", "City"),
            ("country", "Country"),
            ("geocodeAccuracy", "GeocodeAccuracy"),
            ("latitude", "Latitude"),
            ("longitude", "Longitude"),
            ("postalCode", "PostalCode"),
            ("state", "State"),
            ("street", "Street"),
        ] {
            let part = current
                .and_then(|r| r.get(&format!("{prefix}{suffix}")))
                .cloned()
                .unwrap_or(Value::Null);
            parts.insert(key.into(), part);
        }
        if parts.values().all(Value::is_null) {
            Value::Null
        } else {
            Value::Object(parts)
        }
    } else if path.field.field_type == "base64" {
        // Blob fields read as the URL of their content, as in the REST API.
        let id = current
            .and_then(|r| r.get("Id"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let object = org.object_of_id(id).unwrap_or_default();
        Value::String(format!(
            "/services/data/v{version}/sobjects/{object}/{id}/{}",
            path.field.name
        ))
    } else {
        value
    };
    target.insert(path.field.name.clone(), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(n: u64, modstamp: &str, created: &str, deleted: bool) -> Record {
        let mut record = Record::new();
        record.insert("Id".into(), ids::make("001", n).into());
        record.insert("Name".into(), format!("Account {n}").into());
        record.insert("IsDeleted".into(), deleted.into());
        record.insert("SystemModstamp".into(), modstamp.into());
        record.insert("CreatedDate".into(), created.into());
        record
    }

    fn stamp(second: u64) -> String {
        format!(
            "2024-01-01T00:{:02}:{:02}.000+0000",
            second / 60,
            second % 60
        )
    }

    /// Every Id a keyset read returns, page by page, as the connector asks for them.
    fn keyset_read(org: &Org, page: usize) -> Vec<String> {
        let mut seen: Vec<String> = Vec::new();
        let mut after: Option<(String, String)> = None;
        loop {
            let condition = after.as_ref().map_or(String::new(), |(at, id)| {
                format!(" WHERE (SystemModstamp > {at} OR (SystemModstamp = {at} AND Id > '{id}'))")
            });
            let text = format!(
                "SELECT Id, SystemModstamp FROM Account{condition} ORDER BY SystemModstamp ASC, Id ASC LIMIT {page}"
            );
            let ids = execute(org, &text, false).unwrap().ids;
            let Some(last) = ids.last() else {
                return seen;
            };
            let modstamp = org.get(last).unwrap()["SystemModstamp"].as_str().unwrap();
            let at = civil::salesforce_datetime(civil::parse_datetime(modstamp).unwrap())
                .replace("+0000", "Z");
            after = Some((at, last.clone()));
            seen.extend(ids);
        }
    }

    #[test]
    fn keyset_pages_read_every_record_once_in_order_and_see_writes() {
        let mut org = Org::new();
        // Stamps out of table order, shared by three records each, and some deleted.
        let mut expected = Vec::new();
        for n in 1..=40 {
            let second = (n * 7) % 13;
            let deleted = n % 9 == 0;
            org.put("Account", account(n, &stamp(second), &stamp(0), deleted));
            if !deleted {
                let id = ids::make("001", n);
                // 18-character Ids compare without case, as the sandbox's `Id >` does.
                expected.push((second, id.to_ascii_lowercase(), id));
            }
        }
        expected.sort();
        let expected: Vec<String> = expected.into_iter().map(|(_, _, id)| id).collect();
        assert_eq!(keyset_read(&org, 4), expected);
        assert_eq!(keyset_read(&org, 1000), expected);

        // A write moves a record to the end; the remembered order must not hide it.
        let first = expected[0].clone();
        assert!(org.touch(&first, Record::new(), "005000000000001AAA"));
        let again = keyset_read(&org, 4);
        assert_eq!(again.last(), Some(&first));
        assert_eq!(again.len(), expected.len());
    }

    #[test]
    fn in_and_equals_read_the_records_they_name_and_see_writes() {
        let mut org = Org::new();
        for n in 1..=6 {
            org.put("Account", account(n, &stamp(n), &stamp(0), n == 4));
        }
        let run = |org: &Org, text: &str| execute(org, text, false).unwrap().ids;
        let id = |n| ids::make("001", n);
        assert_eq!(
            run(&org, "SELECT Id FROM Account WHERE Name = 'ACCOUNT 3'"),
            [id(3)]
        );
        let fifteen = |n| id(n)[..15].to_string();
        let text = format!(
            "SELECT Id FROM Account WHERE Id IN ('{}', '{}', '{}') ORDER BY Name DESC",
            fifteen(2),
            id(5),
            fifteen(4)
        );
        assert_eq!(run(&org, &text), [id(5), id(2)], "deleted 4 left out");

        let mut renamed = Record::new();
        renamed.insert("Name".into(), "Other".into());
        assert!(org.touch(&id(3), renamed, "005000000000001AAA"));
        assert!(run(&org, "SELECT Id FROM Account WHERE Name = 'Account 3'").is_empty());
        assert_eq!(
            run(&org, "SELECT Id FROM Account WHERE Name = 'other'"),
            [id(3)]
        );
    }

    #[test]
    fn datetimes_in_mixed_formats_are_still_filtered_right() {
        let mut org = Org::new();
        // As text 00:30 sorts before 01:00+0100, which is 00:00 UTC: text order is not time
        // order, so the sorted order must not be binary-searched.
        org.put(
            "Account",
            account(1, &stamp(1), "2024-01-01T00:30:00.000+0000", false),
        );
        org.put(
            "Account",
            account(2, &stamp(2), "2024-01-01T01:00:00.000+0100", false),
        );
        let ids = execute(
            &org,
            "SELECT Id FROM Account WHERE CreatedDate > 2024-01-01T00:15:00Z ORDER BY CreatedDate LIMIT 10",
            false,
        )
        .unwrap()
        .ids;
        assert_eq!(ids, [ids::make("001", 1)]);
    }

    #[test]
    fn a_limit_with_an_offset_counts_from_the_bound() {
        let mut org = Org::new();
        for n in 1..=10 {
            org.put("Account", account(n, &stamp(n), &stamp(0), false));
        }
        let ids = execute(
            &org,
            "SELECT Id FROM Account WHERE SystemModstamp >= 2024-01-01T00:00:04Z ORDER BY SystemModstamp LIMIT 2 OFFSET 1",
            false,
        )
        .unwrap()
        .ids;
        assert_eq!(ids, [ids::make("001", 5), ids::make("001", 6)]);
        // Descending: the bound is not searched for, the newest come first.
        let ids = execute(
            &org,
            "SELECT Id FROM Account WHERE SystemModstamp >= 2024-01-01T00:00:04Z ORDER BY SystemModstamp DESC LIMIT 2",
            false,
        )
        .unwrap()
        .ids;
        assert_eq!(ids, [ids::make("001", 10), ids::make("001", 9)]);
    }

    #[test]
    fn like_patterns() {
        assert!(like("Acme Ltd", "acme%"));
        assert!(like("Globex Inc.", "%INC_"));
        assert!(!like("Acme Ltd", "Acme"));
        assert!(like("100% sure", "100\\% %"));
        assert!(!like("100 sure", "100\\%%"));
        let long = "a".repeat(5000);
        assert!(
            !like(&long, &format!("{}b", "%a".repeat(40))),
            "no exponential backtracking"
        );
    }
}
