//! `etl sql`: run a query against the staging file and print the result.

use std::io::Read;
use std::path::Path;

use super::output::print_result;
use super::{open_store, TableFormat, EXIT_CONFIG};

pub fn run(project: &Path, query: &str, format: TableFormat) -> i32 {
    let query = if query == "-" {
        let mut text = String::new();
        if let Err(error) = std::io::stdin().read_to_string(&mut text) {
            eprintln!("error: cannot read the query from stdin: {error}");
            return EXIT_CONFIG;
        }
        text
    } else {
        query.to_string()
    };
    if query.trim().is_empty() {
        eprintln!("error: the query is empty");
        return EXIT_CONFIG;
    }
    let store = match open_store(project) {
        Ok(store) => store,
        Err(code) => return code,
    };
    match store.query(query.trim().trim_end_matches(';')) {
        Ok(result) => {
            print_result(&result, format);
            0
        }
        Err(error) => {
            eprintln!("error: {error}");
            EXIT_CONFIG
        }
    }
}
