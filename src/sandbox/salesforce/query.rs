//! Runs SOQL against the emulated org: checks names against the describe (with Salesforce's own
//! error wording and positions), filters, sorts and pages, and shapes records the way the REST
//! API returns them (`attributes`, nested parents, child subqueries, aggregate rows). This file
//! runs a query and sorts and pages its records; `names.rs` checks and resolves its names,
//! `filter.rs` evaluates its conditions, `shape.rs` shapes what it returns.

mod filter;
mod names;
mod shape;

use filter::{compare, in_key, Filter};
use names::{check_required_filter, field_error, type_family, OrderBy, Planner, ResolvedPath};
use shape::{aggregate, child_relationship};
pub use shape::{attributes, project, project_paging_children, ChildPaging};

use std::cmp::Ordering;

use serde_json::Value;

use super::indexes::{SortedOrder, ValueLookup};
use super::org::{Org, Record};
use crate::civil;
use crate::salesforce::catalog::FieldInfo;
use crate::soql::{self, ErrorCode, Query, SelectItem, SoqlError, Value as Literal};
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

#[cfg(test)]
mod tests {
    use super::super::ids;
    use super::filter::like;
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
