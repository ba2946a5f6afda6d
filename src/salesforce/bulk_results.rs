//! Bulk API 2.0 ingest results paired back with the input rows they came from. Salesforce does
//! not keep the input's order in `successfulResults` and `failedResults`, and does not echo the
//! text it was sent: each row carries the values it read, in its own spelling (`912260031` comes
//! back as `9.12260031E8`, `1000` as `1000.0`). So a result row is read by its header's column
//! names, and paired with an input row in two passes: first by the exact text sent, then by
//! value, cell by cell (numbers by their numeric value, checkboxes without regard to case,
//! datetimes by the instant they name, an empty cell, `#N/A` and a missing column alike as
//! null). Each input row is paired at most once, so identical input rows are paired one to one
//! with identical result rows.

use std::collections::{HashMap, VecDeque};

use super::Error;

/// One results CSV: which input column each echoed column is, and its rows split into the
/// `sf__` columns and the echoed ones.
pub struct ResultsCsv {
    /// For each echoed column (after the `sf__` ones), the input column of the same name.
    columns: Vec<Option<usize>>,
    pub rows: Vec<ResultRow>,
}

pub struct ResultRow {
    /// `sf__Id` and `sf__Created`, or `sf__Id` and `sf__Error`.
    pub meta: Vec<String>,
    echoed: Vec<String>,
}

impl ResultsCsv {
    /// Reads a results CSV whose first `meta` columns are Salesforce's, naming the input columns
    /// (`input`) its other columns echo.
    pub fn read(data: &[u8], meta: usize, input: &[String]) -> Result<ResultsCsv, Error> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_reader(data);
        let header = reader
            .headers()
            .map_err(|e| Error::Protocol(format!("a Bulk result header is not CSV: {e}")))?;
        let columns = header
            .iter()
            .skip(meta)
            .map(|name| input.iter().position(|c| c.eq_ignore_ascii_case(name)))
            .collect();
        let mut rows = Vec::new();
        for row in reader.records() {
            let row =
                row.map_err(|e| Error::Protocol(format!("a Bulk result row is not CSV: {e}")))?;
            if row.len() < meta {
                return Err(Error::Protocol(format!(
                    "a Bulk result row has {} columns, fewer than Salesforce's own {meta}",
                    row.len()
                )));
            }
            let mut cells = row.iter().map(str::to_string);
            rows.push(ResultRow {
                meta: cells.by_ref().take(meta).collect(),
                echoed: cells.collect(),
            });
        }
        Ok(ResultsCsv { columns, rows })
    }

    /// Whether the rows echo input column `column`.
    fn echoes(&self, column: usize) -> bool {
        self.columns.contains(&Some(column))
    }

    /// A row's cells laid out as the input's `width` columns (`None` where it echoes none).
    fn aligned<'r>(&self, row: &'r ResultRow, width: usize) -> Vec<Option<&'r str>> {
        let mut cells = vec![None; width];
        for (position, column) in self.columns.iter().enumerate() {
            if let (Some(column), Some(cell)) = (column, row.echoed.get(position)) {
                cells[*column] = Some(cell.as_str());
            }
        }
        cells
    }
}

/// For every row of `results` (in order, file by file), the input row it echoes, if one is left.
/// `key` is the column that identifies a row (`Id` for updates, the external id for upserts);
/// without one, or when the results do not echo it, every column the results echo is compared.
pub fn pair(
    input: &[Vec<String>],
    width: usize,
    key: Option<usize>,
    results: &[&ResultsCsv],
) -> Vec<Vec<Option<usize>>> {
    let echoed_by_all = |column: usize| results.iter().all(|r| r.echoes(column));
    let compared: Vec<usize> = match key.filter(|&k| echoed_by_all(k)) {
        Some(key) => vec![key],
        None => (0..width).filter(|&c| echoed_by_all(c)).collect(),
    };
    let echoes: Vec<Vec<Option<&str>>> = results
        .iter()
        .flat_map(|file| file.rows.iter().map(|row| file.aligned(row, width)))
        .collect();
    let mut paired: Vec<Option<usize>> = vec![None; echoes.len()];
    let mut taken = vec![false; input.len()];
    for key_of in [
        exact_key as fn(&mut dyn Iterator<Item = &str>) -> String,
        value_key,
    ] {
        let mut waiting: HashMap<String, VecDeque<usize>> = HashMap::new();
        for (index, row) in input.iter().enumerate() {
            if !taken[index] {
                let mut cells = compared
                    .iter()
                    .map(|&c| row.get(c).map_or("", String::as_str));
                waiting
                    .entry(key_of(&mut cells))
                    .or_default()
                    .push_back(index);
            }
        }
        for (echo, cells) in echoes.iter().enumerate() {
            if paired[echo].is_some() {
                continue;
            }
            let mut values = compared.iter().map(|&c| cells[c].unwrap_or(""));
            if let Some(index) = waiting
                .get_mut(&key_of(&mut values))
                .and_then(VecDeque::pop_front)
            {
                taken[index] = true;
                paired[echo] = Some(index);
            }
        }
    }
    let mut out = Vec::with_capacity(results.len());
    let mut rest = paired.as_slice();
    for file in results {
        let (these, others) = rest.split_at(file.rows.len());
        out.push(these.to_vec());
        rest = others;
    }
    out
}

/// The cells as sent, each length-prefixed so that no cell's text can run into the next.
fn exact_key(cells: &mut dyn Iterator<Item = &str>) -> String {
    let mut key = String::new();
    for cell in cells {
        key.push_str(&cell.len().to_string());
        key.push(':');
        key.push_str(cell);
    }
    key
}

/// The cells by the values they name (see `value_of`).
fn value_key(cells: &mut dyn Iterator<Item = &str>) -> String {
    exact_key(
        &mut cells
            .map(value_of)
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str),
    )
}

/// A cell's value in one spelling, tagged by kind: `e` null (empty, `#N/A`), `b` a checkbox, `n`
/// a number (the shortest digits of its double, as Salesforce holds numbers), `t` a datetime
/// (milliseconds since the epoch), `s` any other text, trimmed.
fn value_of(cell: &str) -> String {
    let text = cell.trim();
    if text.is_empty() || text == "#N/A" {
        return "e".into();
    }
    if text.eq_ignore_ascii_case("true") {
        return "b1".into();
    }
    if text.eq_ignore_ascii_case("false") {
        return "b0".into();
    }
    if is_number(text) {
        if let Ok(number) = text.parse::<f64>() {
            if number.is_finite() {
                // `-0` and `0` are one value.
                let number = if number == 0.0 { 0.0 } else { number };
                return format!("n{number:e}");
            }
        }
    }
    if text.len() > 10 && text.as_bytes()[10] == b'T' {
        if let Some(millis) = crate::civil::parse_datetime(text) {
            return format!("t{millis}");
        }
    }
    format!("s{text}")
}

/// Decimal notation: a sign, digits with at most one point, an exponent (`-12.5`, `9.12260031E8`,
/// `.5`). Not `inf`, `NaN` or hex, which `f64::from_str` would also take.
fn is_number(text: &str) -> bool {
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
        None => (unsigned, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok =
        !(whole.is_empty() && fraction.is_empty()) && digits(whole) && digits(fraction);
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::{is_number, pair, value_of, ResultsCsv};

    fn columns(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    fn rows(rows: &[&[&str]]) -> Vec<Vec<String>> {
        rows.iter()
            .map(|r| r.iter().map(|c| c.to_string()).collect())
            .collect()
    }

    #[test]
    fn values_in_salesforces_spelling_are_the_values_sent() {
        for (sent, echoed) in [
            ("912260031", "9.12260031E8"),
            ("912260031.0", "9.12260031E8"),
            ("1000", "1000.0"),
            ("0.0001", "1.0E-4"),
            ("-0", "0.0"),
            ("true", "TRUE"),
            ("false", "False"),
            ("#N/A", ""),
            ("2024-01-02T03:04:05.000+0000", "2024-01-02T03:04:05.000Z"),
            ("2024-01-02T05:04:05+02:00", "2024-01-02T03:04:05.000Z"),
            (" Leeds ", "Leeds"),
        ] {
            assert_eq!(value_of(sent), value_of(echoed), "{sent} vs {echoed}");
        }
        for (a, b) in [
            ("1000", "1000.5"),
            ("true", "1"),
            ("Leeds", "leeds"),
            ("2024-01-02", "2024-01-03"),
            ("", "0"),
        ] {
            assert_ne!(value_of(a), value_of(b), "{a} vs {b}");
        }
        assert!(is_number("-12.5") && is_number(".5") && is_number("1e-3") && is_number("7."));
        assert!(!is_number("inf") && !is_number("NaN") && !is_number("1e") && !is_number("."));
        assert!(!is_number("1.2.3") && !is_number("0x10") && !is_number("12a"));
    }

    #[test]
    fn echoed_rows_pair_by_value_whatever_their_order_and_column_case() {
        let input_columns = columns(&["Name", "Amount", "IsPrivate", "Description"]);
        let input = rows(&[
            &["A", "912260031", "false", "#N/A"],
            &["B", "1234.5", "true", ""],
            &["C", "5", "false", "x"],
        ]);
        let ok = ResultsCsv::read(
            b"\"sf__Id\",\"sf__Created\",\"name\",\"Amount\",\"IsPrivate\",\"Description\"\n\
              \"006B\",\"true\",\"B\",\"1234.5\",\"true\",\"\"\n\
              \"006A\",\"true\",\"A\",\"9.12260031E8\",\"false\",\"\"\n",
            2,
            &input_columns,
        )
        .unwrap();
        let failed = ResultsCsv::read(
            b"\"sf__Id\",\"sf__Error\",\"Name\",\"Amount\",\"IsPrivate\",\"Description\"\n\
              \"\",\"FIELD_CUSTOM_VALIDATION_EXCEPTION:no:Amount --\",\"C\",\"5.0\",\"false\",\"x\"\n",
            2,
            &input_columns,
        )
        .unwrap();
        let paired = pair(&input, input_columns.len(), None, &[&ok, &failed]);
        assert_eq!(paired, vec![vec![Some(1), Some(0)], vec![Some(2)]]);
        assert_eq!(
            failed.rows[0].meta[1],
            "FIELD_CUSTOM_VALIDATION_EXCEPTION:no:Amount --"
        );
    }

    #[test]
    fn identical_rows_pair_one_to_one() {
        let input_columns = columns(&["Name", "Amount"]);
        let input = rows(&[
            &["Same", "10"],
            &["Other", "10"],
            &["Same", "10"],
            &["Same", "10"],
        ]);
        let ok = ResultsCsv::read(
            b"sf__Id,sf__Created,Name,Amount\n\
              0061,true,Same,10.0\n0062,true,Other,10.0\n0063,true,Same,10.0\n",
            2,
            &input_columns,
        )
        .unwrap();
        let failed = ResultsCsv::read(
            b"sf__Id,sf__Error,Name,Amount\n,DUPLICATE_VALUE:taken:Name --,Same,10\n",
            2,
            &input_columns,
        )
        .unwrap();
        // The failure echoes the text sent and pairs in the first pass; the successes take the
        // two identical rows left, one each, and no row twice.
        let paired = pair(&input, input_columns.len(), None, &[&ok, &failed]);
        assert_eq!(paired, vec![vec![Some(2), Some(1), Some(3)], vec![Some(0)]]);
    }

    #[test]
    fn an_exact_echo_is_not_taken_by_a_row_that_only_matches_by_value() {
        // A text field holding `01234` and `1234`: each echo is the exact text of its own row,
        // though both read as the number 1234.
        let input_columns = columns(&["PostalCode"]);
        let input = rows(&[&["1234"], &["01234"]]);
        let ok = ResultsCsv::read(
            b"sf__Id,sf__Created,PostalCode\n0031,true,01234\n0032,true,1234\n",
            2,
            &input_columns,
        )
        .unwrap();
        let paired = pair(&input, 1, None, &[&ok]);
        assert_eq!(paired, vec![vec![Some(1), Some(0)]]);
    }

    #[test]
    fn updates_pair_by_their_id_and_unknown_rows_stay_unpaired() {
        let input_columns = columns(&["Id", "Amount"]);
        let input = rows(&[&["006000000000001AAA", "1"], &["006000000000002AAA", "2"]]);
        let ok = ResultsCsv::read(
            b"sf__Id,sf__Created,Id,Amount,Extra\n\
              006000000000002AAA,false,006000000000002AAA,2.0,z\n\
              006000000000009AAA,false,006000000000009AAA,9.0,z\n",
            2,
            &input_columns,
        )
        .unwrap();
        let paired = pair(&input, 2, Some(0), &[&ok]);
        assert_eq!(paired, vec![vec![Some(1), None]]);
    }

    #[test]
    fn a_row_shorter_than_salesforces_columns_is_an_error() {
        let read = ResultsCsv::read(b"sf__Id,sf__Created,Name\nonly\n", 2, &columns(&["Name"]));
        assert!(read.is_err());
    }
}
