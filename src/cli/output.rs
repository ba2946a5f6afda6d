//! Printing query results as a table for people, or as CSV or JSON for machines.

use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};

use super::TableFormat;
use crate::staging::{cell_to_json, cell_to_text, ResultTable};

pub fn print_result(result: &ResultTable, format: TableFormat) {
    match format {
        TableFormat::Table => {
            let mut table = Table::new();
            table.load_preset(UTF8_FULL_CONDENSED);
            table.set_header(&result.columns);
            for row in &result.rows {
                table.add_row(row.iter().map(cell_to_text));
            }
            println!("{table}");
            let n = result.rows.len();
            println!("({n} {})", if n == 1 { "row" } else { "rows" });
        }
        TableFormat::Csv => {
            println!("{}", csv_line(result.columns.iter().map(String::as_str)));
            for row in &result.rows {
                let cells: Vec<String> = row.iter().map(cell_to_text).collect();
                println!("{}", csv_line(cells.iter().map(String::as_str)));
            }
        }
        TableFormat::Json => {
            let rows: Vec<serde_json::Value> = result
                .rows
                .iter()
                .map(|row| {
                    serde_json::Value::Object(
                        result
                            .columns
                            .iter()
                            .zip(row)
                            .map(|(name, value)| (name.clone(), cell_to_json(value)))
                            .collect(),
                    )
                })
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&rows).unwrap_or_default()
            );
        }
    }
}

/// One CSV record (RFC 4180 quoting).
fn csv_line<'a>(cells: impl Iterator<Item = &'a str>) -> String {
    cells
        .map(|cell| {
            if cell.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", cell.replace('"', "\"\""))
            } else {
                cell.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::csv_line;

    #[test]
    fn quotes_csv_cells_that_need_it() {
        assert_eq!(
            csv_line(["a", "b,c", "say \"hi\""].into_iter()),
            "a,\"b,c\",\"say \"\"hi\"\"\""
        );
    }
}
