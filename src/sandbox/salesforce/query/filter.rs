//! A resolved condition evaluated on one record: comparisons with Salesforce's typing, `IN`
//! lists, semi-joins, `LIKE`, `INCLUDES`, date functions and relative dates (`LAST_N_DAYS:7`).

use std::cmp::Ordering;
use std::collections::HashSet;

use serde_json::{json, Value};

use super::names::{type_family, ResolvedPath};
use crate::civil;
use crate::salesforce::catalog::FieldInfo;
use crate::sandbox::salesforce::ids;
use crate::sandbox::salesforce::org::{Org, Record};
use crate::soql::{CompareOp, Value as Literal};

/// Everything a condition needs, resolved once.
pub(super) enum Filter {
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

/// Day range `[start, end]` (inclusive day numbers) of a relative date literal.
pub(super) fn relative_range(name: &str, n: Option<i64>, today: i64) -> (i64, i64) {
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
pub(super) fn in_key(field: &FieldInfo, text: &str) -> String {
    if type_family(field) == "id" {
        ids::normalize(text)
            .unwrap_or_else(|| text.to_string())
            .to_ascii_lowercase()
    } else {
        text.to_lowercase()
    }
}

pub(super) fn compare(
    field: &FieldInfo,
    value: &Value,
    literal: &Literal,
    today: i64,
) -> Option<Ordering> {
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
pub(super) fn like(text: &str, pattern: &str) -> bool {
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
pub(super) fn date_function(name: &str, value: &Value) -> Option<Value> {
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
    pub(super) fn lower_bound(&self, path: &ResolvedPath) -> Option<&Literal> {
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
    pub(super) fn candidate_keys(&self) -> Option<(&ResolvedPath, Vec<String>)> {
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

    pub(super) fn matches(&self, org: &Org, record: &Record, today: i64) -> bool {
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
