//! Property tests (proptest) that throw generated input at the three parsers a user's text goes
//! through: the pipeline / project YAML loader, the SOQL parser and template rendering. Each
//! must answer with diagnostics or an error, never panic, and never hang. Inputs are arbitrary
//! text, YAML-ish documents built from the keys of the example pipelines, and mutations of valid
//! queries and templates. The default is a modest number of cases per target so `cargo test`
//! stays fast; set `PROPTEST_CASES` for a longer run (see "Fuzzing" in the README). Every input
//! that ever failed is kept below as an explicit regression test.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{json, Map, Value};

use etl::config::loader::{load, load_pipeline, load_project};
use etl::config::Pipeline;
use etl::transform::template;
use etl::transform::{Direction, Lookups, Transformer};

/// `PROPTEST_CASES` when set, else 256 cases per target.
fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256);
    Config {
        cases,
        // Regressions are kept as explicit tests at the end of this file instead.
        failure_persistence: None,
        ..Config::default()
    }
}

/// Runs `work` on its own thread and fails (instead of hanging the suite) when it has not
/// finished after a generous minute: a watchdog against hangs, not a speed check.
fn finishes<T: Send + 'static>(what: &str, work: impl FnOnce() -> T + Send + 'static) -> T {
    let (send, receive) = mpsc::channel();
    std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(move || {
            let _ = send.send(work());
        })
        .unwrap();
    match receive.recv_timeout(Duration::from_secs(60)) {
        Ok(value) => value,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what} did not finish: it hangs"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what} panicked"),
    }
}

// ---------------------------------------------------------------------------------------------
// The YAML loader

fn no_env(_: &str) -> Option<String> {
    None
}

fn some_env(name: &str) -> Option<String> {
    name.len().is_multiple_of(2).then(|| format!("v-{name}"))
}

/// Loads `text` as a pipeline file, as a project file and as a whole workspace; every answer
/// is diagnostics, never a panic.
fn load_everywhere(dir: &Path, text: &[u8]) {
    let pipelines = dir.join("pipelines");
    std::fs::create_dir_all(&pipelines).unwrap();
    let pipeline = pipelines.join("fuzzed.yaml");
    std::fs::write(&pipeline, text).unwrap();
    let project = dir.join("etl.yaml");
    std::fs::write(&project, text).unwrap();
    let mut out = Vec::new();
    let _ = load_pipeline(&pipeline, &no_env, &mut out);
    let _ = load_pipeline(&pipeline, &some_env, &mut out);
    let _ = load_project(&project, &some_env, &mut out);
    let workspace = load(&project, &[], &some_env);
    let valid_utf8_yaml = std::str::from_utf8(text).is_ok();
    if !valid_utf8_yaml {
        // Bytes that are not UTF-8 are a `read` error, with a position.
        assert!(out.iter().any(|d| d.is_error()));
    }
    // Diagnostics render without panicking too (what `etl validate` prints).
    for diagnostic in out.iter().chain(&workspace.diagnostics) {
        let _ = format!("{diagnostic:?}");
    }
}

const TOP_KEYS: &[&str] = &[
    "pipeline",
    "description",
    "depends_on",
    "salesforce",
    "halo",
    "sync",
    "fields",
    "attachments",
    "selection",
    "deletes",
    "project",
    "staging",
    "pipelines",
    "connections",
    "defaults",
    "token_store",
];
const INNER_KEYS: &[&str] = &[
    "object",
    "where",
    "query",
    "incremental",
    "field",
    "lookback",
    "entity",
    "match",
    "defaults",
    "import",
    "sync_back",
    "create",
    "update",
    "stages",
    "names",
    "default",
    "salesforce",
    "halo",
    "template",
    "lookup",
    "by",
    "if_not_found",
    "values",
    "login_url",
    "api_version",
    "flow",
    "client_id",
    "client_secret",
    "base_url",
    "tenant",
    "rate_limit",
    "batch_size",
    "ids",
    "exclude",
    "from_salesforce",
    "from_halo",
    "salesforce_inactive",
    "inactive",
    "active",
    "hard_delete_check",
];
const SCALARS: &[&str] = &[
    "Account",
    "Client",
    "Name",
    "Owner.Email",
    "main_site.delivery_address.line1",
    "customfields.CFSalesforceStage",
    "IsDeleted = false",
    "CloseDate >= LAST_N_DAYS:365",
    "SELECT Id FROM Account WHERE",
    "SystemModstamp",
    "5m",
    "every_run",
    "deactivate",
    "upsert",
    "true",
    "false",
    "null",
    "~",
    "0",
    "-1",
    "3.5e400",
    "99999999999999999999999",
    "\"{{ record.Name }}\"",
    "\"{% for i in range(3) %}{{ i }}{% endfor %}\"",
    "\"{{ lookup('accounts', record.AccountId) }}\"",
    "${SF_SECRET}",
    "${MISSING:-fallback}",
    "${",
    "'unterminated",
    "\"",
    "{ a: 1",
    "[1, 2",
    "&anchor x",
    "*anchor",
    "!!binary aGVsbG8=",
    "|",
    ">-",
    "accounts",
    "Agent",
    "empty",
    "\u{feff}",
    "é☃𝄞",
    "",
];

/// A YAML-ish document: lines of `key: value`, `- { key: value, ... }` and nested blocks at
/// random indentation, from the keys and values the example pipelines use.
fn yamlish() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        proptest::sample::select(TOP_KEYS),
        proptest::sample::select(INNER_KEYS),
    ];
    let scalar = proptest::sample::select(SCALARS);
    let line = (0usize..4, key, scalar, 0u8..6).prop_map(|(indent, key, value, form)| {
        let pad = "  ".repeat(indent);
        match form {
            0 => format!("{pad}{key}: {value}"),
            1 => format!("{pad}{key}:"),
            2 => format!("{pad}- {{ {key}: {value}, halo: name }}"),
            3 => format!("{pad}- {value}"),
            4 => format!("{pad}{key}: [{value}, {value}]"),
            _ => format!("{pad}# {value}"),
        }
    });
    proptest::collection::vec(line, 0..40).prop_map(|lines| lines.join("\n"))
}

/// A valid pipeline file with one line replaced, dropped, duplicated or re-indented.
fn mutated_pipeline() -> impl Strategy<Value = String> {
    let files: Vec<String> = [
        "accounts",
        "contacts",
        "opportunities",
        "cases",
        "case_comments",
    ]
    .iter()
    .map(|name| {
        std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("pipelines/{name}.yaml")),
        )
        .unwrap()
    })
    .collect();
    (
        proptest::sample::select(files),
        any::<prop::sample::Index>(),
        0u8..5,
        ".{0,20}",
    )
        .prop_map(|(text, at, how, junk)| {
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            let i = at.index(lines.len());
            match how {
                0 => lines[i] = junk,
                1 => {
                    lines.remove(i);
                }
                2 => lines.insert(i, lines[i].clone()),
                3 => lines[i] = format!(" {}", lines[i]),
                _ => {
                    let line = &lines[i];
                    let cut = at.index(line.len() + 1);
                    let cut = (0..=cut).rev().find(|c| line.is_char_boundary(*c)).unwrap();
                    lines[i] = format!("{}{junk}{}", &line[..cut], &line[cut..]);
                }
            }
            lines.join("\n")
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn yaml_loader_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let dir = tempfile::tempdir().unwrap();
        load_everywhere(dir.path(), &bytes);
    }

    #[test]
    fn yaml_loader_never_panics_on_yamlish_text(text in yamlish()) {
        let dir = tempfile::tempdir().unwrap();
        load_everywhere(dir.path(), text.as_bytes());
    }

    #[test]
    fn yaml_loader_never_panics_on_mutated_pipelines(text in mutated_pipeline()) {
        let dir = tempfile::tempdir().unwrap();
        load_everywhere(dir.path(), text.as_bytes());
    }
}

// ---------------------------------------------------------------------------------------------
// The SOQL parser

const VALID_QUERIES: &[&str] = &[
    "SELECT Id, Name FROM Account",
    "SELECT Id, Name, Owner.Email FROM Account WHERE IsDeleted = false ORDER BY Name LIMIT 10",
    "SELECT Id FROM Opportunity WHERE CloseDate >= LAST_N_DAYS:365 AND StageName IN ('Closed Won', 'Closed Lost')",
    "SELECT COUNT() FROM Contact WHERE Email LIKE '%@example.com'",
    "SELECT AccountId, COUNT(Id) FROM Contact GROUP BY AccountId",
    "SELECT Id, (SELECT Id, Body FROM CaseComments) FROM Case WHERE Status != 'Closed'",
    "SELECT Id FROM Account WHERE (Name = 'a' OR Name = 'b') AND NOT Industry = null OFFSET 5",
    "SELECT Id FROM Account WHERE SystemModstamp > 2024-01-01T00:00:00Z AND Amount > -1500.5",
];

const TOKENS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "AND",
    "OR",
    "NOT",
    "IN",
    "LIKE",
    "GROUP BY",
    "ORDER BY",
    "LIMIT",
    "OFFSET",
    "ASC",
    "DESC",
    "NULLS FIRST",
    "COUNT()",
    "(",
    ")",
    ",",
    ".",
    "=",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "'",
    "'x'",
    "'\\'",
    "\\",
    "Id",
    "Name",
    "Account",
    "Owner.Email",
    ":",
    "LAST_N_DAYS:",
    "TODAY",
    "2024-02-30",
    "2024-01-01T00:00:00Z",
    "1e999",
    "-",
    "0.",
    "99999999999999999999",
    "null",
    "true",
    "é",
    "\u{0}",
    " ",
];

/// A valid query with a token inserted, removed or replaced, or cut short.
fn mutated_query() -> impl Strategy<Value = String> {
    (
        proptest::sample::select(VALID_QUERIES),
        proptest::collection::vec(
            (
                any::<prop::sample::Index>(),
                proptest::sample::select(TOKENS),
                0u8..4,
            ),
            1..5,
        ),
    )
        .prop_map(|(query, edits)| {
            let mut words: Vec<String> = query.split(' ').map(str::to_string).collect();
            for (at, token, how) in edits {
                if words.is_empty() {
                    words.push(token.to_string());
                    continue;
                }
                let i = at.index(words.len());
                match how {
                    0 => words.insert(i, token.to_string()),
                    1 => {
                        words.remove(i);
                    }
                    2 => words[i] = token.to_string(),
                    _ => words[i] = format!("{}{token}", words[i]),
                }
            }
            words.join(" ")
        })
}

fn tokens_soup() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(TOKENS), 0..30).prop_map(|t| t.join(" "))
}

/// Parses as a query and as a condition, and lays out any error as Salesforce does.
fn parse_soql(text: &str) {
    if let Err(error) = etl::soql::parse(text) {
        let _ = error.salesforce_message(text);
        let _ = error.row_column(text);
    }
    if let Err(error) = etl::soql::parse_condition(text) {
        let _ = error.salesforce_message(text);
        let _ = error.row_column(text);
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn soql_parser_never_panics_on_arbitrary_text(text in "\\PC{0,200}") {
        parse_soql(&text);
    }

    #[test]
    fn soql_parser_never_panics_on_mutated_queries(text in mutated_query()) {
        parse_soql(&text);
    }

    #[test]
    fn soql_parser_never_panics_on_token_soup(text in tokens_soup()) {
        parse_soql(&text);
    }

    #[test]
    fn soql_valid_queries_still_parse_with_any_spacing(query in proptest::sample::select(VALID_QUERIES), spaces in "[ \t\r\n]{1,4}") {
        let spaced = query.replace(' ', &spaces);
        prop_assert!(etl::soql::parse(&spaced).is_ok(), "{spaced:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Template rendering

struct NoLookups;

impl Lookups for NoLookups {
    fn linked(&self, pipeline: &str, _: Option<&str>, source_id: &str) -> Option<Value> {
        (pipeline.len() + source_id.len())
            .is_multiple_of(2)
            .then(|| json!(7))
    }
    fn search(&self, _: &str, _: &str, _: &Value) -> Option<Value> {
        None
    }
    fn source_of(&self, _: &str, _: &Value) -> Option<Value> {
        None
    }
}

fn template_pipeline(template: &str) -> Option<Pipeline> {
    serde_json::from_value(json!({
        "pipeline": "fuzzed",
        "salesforce": { "object": "Account" },
        "halo": { "entity": "Client" },
        "fields": [
            { "salesforce": "Name", "halo": "name" },
            { "halo": "customfields.CFFuzzed", "template": template },
        ],
    }))
    .ok()
}

/// Checks the template as `etl validate` does, then renders it through a [`Transformer`] over
/// `record` as a run does.
fn render_everywhere(text: String, record: Map<String, Value>) {
    finishes("a template", move || {
        let _ = template::check(&text);
        let _ = template::record_fields(&text);
        if let Some(pipeline) = template_pipeline(&text) {
            if let Ok(transformer) = Transformer::new(&pipeline, Direction::Import) {
                let _ = transformer.transform(&record, &NoLookups);
            }
        }
    });
}

const TEMPLATE_PIECES: &[&str] = &[
    "{{ record.Name }}",
    "{{ record.Owner.Email }}",
    "{{ record['BillingCity'] }}",
    "{{ value }}",
    "{{ record.Name | upper }}",
    "{{ record.Amount | round(2) }}",
    "{{ record.Name | default('x') }}",
    "{{ record.Missing | trim }}",
    "{{ lookup('accounts', record.AccountId) }}",
    "{{ lookup('', 1) }}",
    "{{ record.Name ~ record.Amount }}",
    "{{ record.Amount * 3 }}",
    "{{ 'ab' * 4 }}",
    "{{ 1 / 0 }}",
    "{{ 9223372036854775807 + 1 }}",
    "{% if record.Name %}",
    "{% else %}",
    "{% endif %}",
    "{% for i in range(5) %}",
    "{% for x in record.Tags %}",
    "{% endfor %}",
    "{% set y = record.Name %}",
    "{{ y }}",
    "{% raw %}",
    "{% endraw %}",
    "{{",
    "}}",
    "{%",
    "%}",
    "{#",
    "#}",
    "|",
    "(",
    ")",
    "[",
    "]",
    "text ",
    "é☃",
    "\n",
];

fn template_soup() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(TEMPLATE_PIECES), 0..20)
        .prop_map(|p| p.concat())
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,20}".prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[A-Za-z]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn record() -> impl Strategy<Value = Map<String, Value>> {
    proptest::collection::btree_map(
        proptest::sample::select(
            &[
                "Name",
                "Amount",
                "Owner",
                "BillingCity",
                "AccountId",
                "Tags",
                "Id",
            ][..],
        ),
        json_value(),
        0..7,
    )
    .prop_map(|m| m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn templates_never_panic_on_arbitrary_text(text in "\\PC{0,120}", record in record()) {
        render_everywhere(text, record);
    }

    #[test]
    fn templates_never_panic_on_template_soup(text in template_soup(), record in record()) {
        render_everywhere(text, record);
    }
}

// ---------------------------------------------------------------------------------------------
// Regressions and limits: inputs found by the properties above or chosen to probe a limit.

#[test]
fn a_huge_range_is_refused_rather_than_looped() {
    // minijinja refuses ranges over 100,000 items, so this ends at once with an error.
    let env = template::environment();
    let rendered = finishes("range(99999999)", move || {
        env.render_str("{% for i in range(99999999) %}{{ i }}{% endfor %}", ())
            .map_err(|e| e.to_string())
    });
    assert!(rendered.unwrap_err().contains("too many elements"));
}

#[test]
fn deeply_nested_yaml_is_a_diagnostic_not_a_stack_overflow() {
    for text in [
        "[".repeat(100_000),
        "{a: ".repeat(100_000),
        format!("fields:\n{}", "- ".repeat(50_000)),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        finishes("deeply nested YAML", move || {
            load_everywhere(&root, text.as_bytes())
        });
    }
}

/// Found by probing limits: 100,000 nested parentheses (or NOTs) in a `where:` overflowed the
/// stack of the recursive-descent parser and aborted the process — `etl validate` included.
/// The parser now refuses more than a few hundred levels with a SOQL error.
#[test]
fn deeply_nested_soql_conditions_are_an_error_not_a_stack_overflow() {
    for text in [
        format!(
            "SELECT Id FROM Account WHERE {}Name = 'a'",
            "(".repeat(100_000)
        ),
        format!("{}Name = 'a'", "NOT ".repeat(100_000)),
    ] {
        finishes("deeply nested SOQL", move || parse_soql(&text));
    }
    let refused = etl::soql::parse_condition(&format!("{}Name = 'a'", "NOT ".repeat(1000)))
        .expect_err("too deep");
    assert!(refused.to_string().contains("nests more than"), "{refused}");
    let fine = format!("{}Name = 'a'{}", "(".repeat(50), ")".repeat(50));
    assert!(etl::soql::parse_condition(&fine).is_ok());
}

#[test]
fn deeply_nested_templates_are_an_error_not_a_stack_overflow() {
    for text in [
        format!("{{{{ {}1 }}}}", "(".repeat(100_000)),
        "{% if x %}".repeat(10_000),
        format!("{{{{ {} }}}}", "[".repeat(100_000)),
    ] {
        render_everywhere(text, Map::new());
    }
}

/// Found while probing limits: minijinja refuses one `range()` over 100,000 items, but two
/// nested loops of 100,000 each are 10^10 iterations; templates now run on a fuel budget, so
/// `template::check` (what `etl validate` runs) and every record's transform stop with an error.
#[test]
fn nested_loops_cannot_hang_a_template() {
    let text = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";
    let refused = template::check(text).expect_err("the loops run out of fuel");
    assert!(format!("{refused:?}").contains("fuel"), "{refused:?}");
    render_everywhere(
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}".into(),
        Map::new(),
    );
}
