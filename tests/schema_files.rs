//! The checked-in JSON Schemas must be exactly what the code generates (`etl schema --write schemas`).

use etl::config::schema::{pipeline_schema, project_schema, render};

fn check(name: &str, generated: String) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schemas")
        .join(name);
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "{} is out of date: run `cargo run -- schema --write schemas`",
        path.display()
    );
}

#[test]
fn pipeline_schema_is_current() {
    check("pipeline.schema.json", render(&pipeline_schema()));
}

#[test]
fn project_schema_is_current() {
    check("project.schema.json", render(&project_schema()));
}
