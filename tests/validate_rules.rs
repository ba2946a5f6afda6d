//! One bad file per validation rule: each must be reported with its code, message and exact
//! line, and a good file must produce nothing.

use std::path::{Path, PathBuf};

use etl::config::{self, Diagnostic};

const GOOD: &str = r#"pipeline: opportunities
salesforce:
  object: Opportunity
  where: IsDeleted = false
halo:
  entity: Tickets
  defaults: { tickettype_id: 23 }
  match: [summary]
fields:
  - { salesforce: Name, halo: summary, sync_back: true }
  - { salesforce: StageName, halo: customfields.CFSalesforceStage }
  - { salesforce: AccountId, halo: client_id }
"#;

fn no_env(name: &str) -> Option<String> {
    (name == "SET_VAR").then(|| "super-secret-value".to_string())
}

/// Writes the files into a fresh folder and validates its pipelines and etl.yaml.
fn validate(files: &[(&str, &str)]) -> (tempfile::TempDir, Vec<Diagnostic>) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let project = dir.path().join("etl.yaml");
    let workspace = config::load(&project, &[], &no_env);
    (dir, workspace.diagnostics)
}

fn only(files: &[(&str, &str)]) -> Diagnostic {
    let (_dir, diagnostics) = validate(files);
    assert_eq!(
        diagnostics.len(),
        1,
        "expected one diagnostic, got {diagnostics:#?}"
    );
    diagnostics.into_iter().next().unwrap()
}

fn pipeline(text: &str) -> Diagnostic {
    only(&[("pipelines/p.yaml", text)])
}

fn file_name(path: &Path) -> PathBuf {
    PathBuf::from(path.file_name().unwrap())
}

#[test]
fn a_good_pipeline_has_no_diagnostics() {
    let (_dir, diagnostics) = validate(&[("pipelines/p.yaml", GOOD)]);
    assert!(diagnostics.is_empty(), "{diagnostics:#?}");
}

#[test]
fn yaml_syntax_error() {
    let d = pipeline("pipeline: x\nfields: [a, b\nhalo: c\n");
    assert_eq!(d.code, "yaml-syntax");
    assert!(d.message.starts_with("YAML syntax error"), "{}", d.message);
    assert_eq!(d.line, 3);
}

#[test]
fn unknown_key_with_did_you_mean() {
    let d = pipeline(&GOOD.replace("fields:", "feilds:"));
    assert_eq!(d.code, "unknown-key");
    assert_eq!(d.message, "unknown key `feilds`");
    assert_eq!(d.label.as_deref(), Some("did you mean `fields`?"));
    assert_eq!((d.line, d.column), (9, 1));
}

#[test]
fn missing_required_key() {
    let d = pipeline(&GOOD.replace(
        "halo:
  entity: Tickets
  defaults: { tickettype_id: 23 }
  match: [summary]
",
        "",
    ));
    assert_eq!(d.code, "missing-key");
    assert_eq!(d.message, "missing required key `halo`");
    assert_eq!(
        d.hint.as_deref(),
        Some("The Halo side: entity, constant values and how existing records are matched.")
    );
}

#[test]
fn every_problem_in_a_file_is_reported_at_once() {
    let text = GOOD
        .replace("entity: Tickets", "entity: Tikets")
        .replace("sync_back: true", "sync_back: yes please")
        .replace("defaults:", "defualts:");
    let (_dir, diagnostics) = validate(&[("pipelines/p.yaml", &text)]);
    let codes: Vec<&str> = diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(
        codes,
        ["unknown-value", "unknown-key", "wrong-type"],
        "{diagnostics:#?}"
    );
    assert_eq!(
        diagnostics[0].label.as_deref(),
        Some("did you mean `Tickets`?")
    );
    assert_eq!(diagnostics[0].line, 6);
    assert_eq!(diagnostics[1].line, 7);
    assert_eq!(
        diagnostics[2].message,
        "expected true or false, found a string"
    );
    assert_eq!(diagnostics[2].line, 10);
}

#[test]
fn wrong_value_type() {
    let d = pipeline(&format!("{GOOD}attachments: [yes]\n"));
    assert_eq!(d.code, "wrong-type");
    assert_eq!(d.message, "expected true or false, found a list");
    assert_eq!(d.line, 13);
}

#[test]
fn import_mode_outside_the_set() {
    let d = pipeline(&format!("{GOOD}sync: {{ import: upsrt }}\n"));
    assert_eq!(d.code, "unknown-value");
    assert_eq!(
        d.message,
        "`upsrt` is not one of: create, update, upsert, off"
    );
    assert_eq!(d.label.as_deref(), Some("did you mean `upsert`?"));
    assert_eq!(d.line, 13);
}

#[test]
fn where_clause_that_does_not_parse_points_inside_the_query() {
    let d = pipeline(&GOOD.replace(
        "where: IsDeleted = false",
        "where: \"IsDeleted = false AND\"",
    ));
    assert_eq!(d.code, "soql");
    assert_eq!(
        d.message,
        "SOQL does not parse: unexpected token: <EOF> (MALFORMED_QUERY)"
    );
    assert_eq!((d.line, d.column), (4, 32));
}

#[test]
fn full_query_with_a_typo_in_from() {
    let d = pipeline(&GOOD.replace(
        "where: IsDeleted = false",
        "query: SELECT Id, Name FORM Opportunity",
    ));
    assert_eq!(d.code, "soql");
    assert!(
        d.message.contains("unexpected token: 'FORM'"),
        "{}",
        d.message
    );
    assert_eq!((d.line, d.column), (4, 26));
    assert_eq!(d.hint.as_deref(), Some("expected FROM"));
}

#[test]
fn query_from_another_object() {
    let d = pipeline(&GOOD.replace("where: IsDeleted = false", "query: SELECT Id FROM Account"));
    assert_eq!(d.code, "soql");
    assert_eq!(
        d.message,
        "the query reads `Account` but the pipeline's object is `Opportunity`"
    );
}

#[test]
fn lower_case_field_name_suggests_the_api_name() {
    let d = pipeline(&GOOD.replace("salesforce: StageName", "salesforce: stagename"));
    assert_eq!(d.code, "salesforce-field");
    assert_eq!(
        d.message,
        "Salesforce field names are case-sensitive API names: `stagename` should be `StageName`"
    );
    assert_eq!(d.label.as_deref(), Some("did you mean `StageName`?"));
    assert_eq!((d.line, d.column), (11, 19));
}

#[test]
fn custom_field_without_suffix() {
    let d = pipeline(&format!(
        "{GOOD}  - {{ salesforce: TaskType, halo: customfields.CFTaskType }}\n"
    ));
    assert_eq!(d.code, "salesforce-field");
    assert_eq!(d.label.as_deref(), Some("did you mean `TaskType__c`?"));
    assert_eq!(d.line, 13);
}

#[test]
fn fields_in_where_are_checked_too() {
    let d = pipeline(&GOOD.replace("where: IsDeleted = false", "where: isdeleted = false"));
    assert_eq!(d.code, "salesforce-field");
    assert_eq!(d.label.as_deref(), Some("did you mean `IsDeleted`?"));
    assert_eq!((d.line, d.column), (4, 10));
}

#[test]
fn relationship_path_with_a_typo() {
    let d = pipeline(&format!(
        "{GOOD}  - {{ salesforce: Ownr.Email, halo: customfields.CFOwner }}\n"
    ));
    assert_eq!(d.message, "no relationship `Ownr` on Opportunity");
    assert_eq!(d.label.as_deref(), Some("did you mean `Owner`?"));
}

#[test]
fn same_salesforce_field_mapped_twice() {
    let d = pipeline(&format!(
        "{GOOD}  - {{ salesforce: AccountId, halo: customfields.CFAccount }}\n"
    ));
    assert_eq!(d.code, "mapped-twice");
    assert_eq!(d.message, "Salesforce field `AccountId` is mapped twice");
    assert_eq!(d.label.as_deref(), Some("first mapped on line 12"));
    assert_eq!(d.line, 13);
}

#[test]
fn same_halo_field_mapped_twice() {
    let d = pipeline(&format!(
        "{GOOD}  - {{ salesforce: Description, halo: summary }}\n"
    ));
    assert_eq!(d.code, "mapped-twice");
    assert_eq!(d.message, "Halo field `summary` is mapped twice");
    assert_eq!(d.line, 13);
}

#[test]
fn read_only_field_cannot_sync_back() {
    let d = pipeline(&format!(
        "{GOOD}  - {{ salesforce: IsWon, halo: customfields.CFWon, sync_back: true }}\n"
    ));
    assert_eq!(d.code, "sync-back");
    assert_eq!(
        d.message,
        "`IsWon` is read-only in Salesforce and cannot be synced back"
    );
}

#[test]
fn lookup_of_a_pipeline_that_does_not_exist() {
    let accounts = "pipeline: accounts\nsalesforce: { object: Account }\nhalo: { entity: Client, match: [name] }\nfields:\n  - { salesforce: Name, halo: name }\n";
    let text = GOOD.replace("halo: client_id }", "halo: client_id, lookup: acounts }");
    let (_dir, diagnostics) =
        validate(&[("pipelines/a.yaml", accounts), ("pipelines/p.yaml", &text)]);
    assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
    let d = &diagnostics[0];
    assert_eq!(d.code, "unknown-pipeline");
    assert_eq!(
        d.message,
        "`lookup` names pipeline `acounts`, which does not exist"
    );
    assert_eq!(d.label.as_deref(), Some("did you mean `accounts`?"));
    assert_eq!(file_name(&d.file), PathBuf::from("p.yaml"));
    assert_eq!(d.line, 12);
}

#[test]
fn lookup_without_depends_on_is_a_warning() {
    let accounts = "pipeline: accounts\nsalesforce: { object: Account }\nhalo: { entity: Client, match: [name] }\nfields:\n  - { salesforce: Name, halo: name }\n";
    let text = GOOD.replace("halo: client_id }", "halo: client_id, lookup: accounts }");
    let (_dir, diagnostics) =
        validate(&[("pipelines/a.yaml", accounts), ("pipelines/p.yaml", &text)]);
    assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
    assert_eq!(diagnostics[0].code, "lookup-order");
    assert!(!diagnostics[0].is_error());
}

#[test]
fn dependency_cycle() {
    let a = "pipeline: a\ndepends_on: [b]\nsalesforce: { object: Account }\nhalo: { entity: Client, match: [name] }\nfields:\n  - { salesforce: Name, halo: name }\n";
    let b = "pipeline: b\ndepends_on: [a]\nsalesforce: { object: Contact }\nhalo: { entity: Users, match: [emailaddress] }\nfields:\n  - { salesforce: Email, halo: emailaddress }\n";
    let (_dir, diagnostics) = validate(&[("pipelines/a.yaml", a), ("pipelines/b.yaml", b)]);
    assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
    assert_eq!(diagnostics[0].code, "dependency-cycle");
    assert_eq!(diagnostics[0].message, "dependency cycle: a → b → a");
    assert_eq!(diagnostics[0].line, 2);
}

#[test]
fn unknown_dependency() {
    let d = pipeline(&GOOD.replace(
        "salesforce:\n  object",
        "depends_on: [acounts]\nsalesforce:\n  object",
    ));
    assert_eq!(d.code, "unknown-pipeline");
    assert_eq!(d.line, 2);
}

#[test]
fn template_that_does_not_compile_points_at_its_line() {
    let text = format!("{GOOD}  - halo: details\n    template: |\n      {{{{ record.Name }}}}\n      {{{{ record.Description | upper }}\n");
    let d = pipeline(&text);
    assert_eq!(d.code, "template");
    assert!(
        d.message
            .starts_with("template does not compile: syntax error"),
        "{}",
        d.message
    );
    assert_eq!(d.line, 16);
    assert_eq!(
        d.hint.as_deref(),
        Some("line 2 of the template; templates use minijinja (Jinja2) syntax")
    );
}

#[test]
fn template_with_an_unknown_filter() {
    let d = pipeline(&format!(
        "{GOOD}  - {{ halo: details, template: \"{{{{ record.Name | shout }}}}\" }}\n"
    ));
    assert_eq!(d.code, "template");
    assert!(d.message.contains("unknown filter"), "{}", d.message);
    assert_eq!(d.line, 13);
}

#[test]
fn selection_ids_must_be_ids_of_the_object() {
    let d = pipeline(&format!(
        "{GOOD}selection:\n  exclude: [001000000000001AAA]\n"
    ));
    assert_eq!(d.code, "salesforce-id");
    assert_eq!(d.message, "`001000000000001AAA` is not an Opportunity Id");
    assert_eq!(d.line, 14);
}

#[test]
fn match_keys_must_be_mapped() {
    let d = pipeline(&GOOD.replace("  match: [summary]", "  match: [sumary]"));
    assert_eq!(d.code, "match-key");
    assert_eq!(d.label.as_deref(), Some("did you mean `summary`?"));
}

#[test]
fn missing_environment_variable_names_the_variable_and_line() {
    let project = "connections:\n  halo:\n    base_url: https://halo.example\n    client_id: ${HALO_ID}\n    client_secret: ${SET_VAR}\n";
    let d = only(&[("etl.yaml", project), ("pipelines/p.yaml", GOOD)]);
    assert_eq!(d.code, "missing-env");
    assert_eq!(d.message, "environment variable `HALO_ID` is not set");
    assert_eq!(d.line, 4);
    assert!(!d.render(None).contains("super-secret-value"));
}

#[test]
fn literal_secrets_are_flagged_and_masked() {
    let project = "connections:\n  halo:\n    base_url: https://halo.example\n    client_id: abc\n    client_secret: hunter2hunter2\n";
    let d = only(&[("etl.yaml", project), ("pipelines/p.yaml", GOOD)]);
    assert_eq!(d.code, "literal-secret");
    assert!(!d.is_error());
    assert!(!d.render(None).contains("hunter2"), "{}", d.render(None));
    assert_eq!(d.line, 5);
}

#[test]
fn sign_in_flow_needs_its_settings() {
    let project = "connections:\n  salesforce:\n    login_url: https://login.salesforce.com\n    client_id: ${SET_VAR}\n    flow: jwt_bearer\n";
    let (_dir, diagnostics) = validate(&[("etl.yaml", project), ("pipelines/p.yaml", GOOD)]);
    let messages: Vec<&str> = diagnostics.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "this sign-in flow needs `username` under connections.salesforce",
            "this sign-in flow needs `private_key_file` under connections.salesforce"
        ]
    );
}

#[test]
fn client_credentials_need_the_orgs_my_domain_host() {
    let project = "connections:\n  salesforce:\n    login_url: https://login.salesforce.com/\n    client_id: ${SET_VAR}\n    client_secret: ${SET_VAR}\n    flow: client_credentials\n";
    let (_dir, diagnostics) = validate(&[("etl.yaml", project), ("pipelines/p.yaml", GOOD)]);
    assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
    let d = &diagnostics[0];
    assert_eq!(d.code, "login-url");
    assert_eq!(d.line, 3);
    assert!(d.message.contains("My Domain"), "{}", d.message);
    let at_my_domain = project.replace("login.salesforce.com", "acme.my.salesforce.com");
    let (_dir, diagnostics) = validate(&[("etl.yaml", &at_my_domain), ("pipelines/p.yaml", GOOD)]);
    assert!(diagnostics.is_empty(), "{diagnostics:#?}");
}

#[test]
fn the_example_project_is_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = config::load(&root.join("etl.yaml"), &[], &|_| None);
    assert!(
        workspace.diagnostics.is_empty(),
        "{:#?}",
        workspace.diagnostics
    );
    let names: Vec<&str> = workspace
        .pipelines
        .iter()
        .map(|p| p.pipeline.pipeline.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "accounts",
            "case_comments",
            "cases",
            "contacts",
            "opportunities"
        ]
    );
    let order = config::rules::run_order(
        &workspace
            .pipelines
            .iter()
            .map(|p| p.pipeline.clone())
            .collect::<Vec<_>>(),
    );
    let ordered: Vec<&str> = order.iter().map(|&i| names[i]).collect();
    assert_eq!(
        ordered,
        [
            "accounts",
            "contacts",
            "opportunities",
            "cases",
            "case_comments"
        ]
    );
}

#[test]
fn yaml_1_1_words_are_strings_and_duplicate_keys_are_named() {
    let d = pipeline(&format!("{GOOD}attachments: yes\n"));
    assert_eq!(d.message, "expected true or false, found a string");
    let d = pipeline(&GOOD.replace(
        "halo:\n  entity: Tickets",
        "halo:\n  entity: Tickets\n  entity: Client",
    ));
    assert_eq!(d.code, "duplicate-key");
    assert_eq!(d.message, "`entity` is given twice");
    assert_eq!(d.line, 7);
}

#[test]
fn if_not_found_needs_a_lookup_and_its_default() {
    let (_dir, diagnostics) = validate(&[
        (
            "pipelines/p.yaml",
            &GOOD.replace(
                "  - { salesforce: AccountId, halo: client_id }",
                "  - { salesforce: AccountId, halo: client_id, lookup: { entity: Agent, by: email }, if_not_found: default }",
            ),
        ),
    ]);
    let d = diagnostics
        .iter()
        .find(|d| d.code == "if-not-found")
        .unwrap_or_else(|| panic!("{diagnostics:#?}"));
    assert_eq!(d.line, 12);
    assert!(d.message.contains("needs a `default`"));
    let d = pipeline(&GOOD.replace(
        "  - { salesforce: AccountId, halo: client_id }",
        "  - { salesforce: AccountId, halo: client_id, if_not_found: empty }",
    ));
    assert_eq!((d.code, d.line), ("if-not-found", 12));
    assert_eq!(d.severity, config::Severity::Warning);
}

#[test]
fn if_not_found_null_is_caught() {
    let d = pipeline(&GOOD.replace(
        "  - { salesforce: AccountId, halo: client_id }",
        "  - { salesforce: AccountId, halo: client_id, lookup: { entity: Agent, by: email }, if_not_found: null }",
    ));
    assert_eq!((d.code, d.line), ("if-not-found", 12));
    assert!(
        d.hint
            .as_deref()
            .unwrap_or_default()
            .contains("if_not_found: empty"),
        "{d:?}"
    );
}

#[test]
fn sync_back_stages_and_match_fields_are_checked() {
    let with_sync = |sync: &str| GOOD.replace("fields:\n", &format!("{sync}fields:\n"));
    // A default stage that is not one of the names, with a suggestion.
    let d = pipeline(&with_sync(
        "sync:\n  stages:\n    salesforce: StageName\n    halo: [salesforce_stage]\n    names: [Prospecting, Closed Won]\n    default: Prospectin\n",
    ));
    assert_eq!((d.code, d.line), ("stages", 14), "{d:?}");
    assert!(d.message.contains("`Prospectin`"), "{d:?}");
    // A stage field the object does not have.
    let d = pipeline(&with_sync(
        "sync:\n  stages:\n    salesforce: Stage\n    halo: [salesforce_stage]\n    names: [Prospecting]\n    default: Prospecting\n",
    ));
    assert_eq!((d.code, d.line), ("salesforce-field", 11), "{d:?}");
    // One spelled in the wrong case: said as for a mapped field, with the same hint.
    let d = pipeline(&with_sync(
        "sync:\n  stages:\n    salesforce: stagename\n    halo: [salesforce_stage]\n    names: [Prospecting]\n    default: Prospecting\n",
    ));
    assert_eq!(
        d.message,
        "Salesforce field names are case-sensitive API names: `stagename` should be `StageName`"
    );
    assert!(d.hint.is_some(), "{d:?}");
    // A sync-back match field that sync back does not write.
    let d = pipeline(&with_sync(
        "sync:\n  sync_back: { create: true, match: [Nmae] }\n",
    ));
    assert_eq!((d.code, d.line), ("match-key", 10), "{d:?}");
    assert!(d.message.contains("`Nmae`"), "{d:?}");
    // Well-formed settings pass.
    let (_dir, diagnostics) = validate(&[(
        "pipelines/p.yaml",
        &with_sync(
            "sync:\n  sync_back: { create: true, match: [Name] }\n  conflicts: halo_wins\n  stages:\n    salesforce: StageName\n    halo: [salesforce_stage]\n    names: [Prospecting]\n    default: prospecting\n",
        ),
    )]);
    assert!(diagnostics.is_empty(), "{diagnostics:#?}");
}

#[test]
fn deletes_toward_salesforce_need_a_field_to_deactivate() {
    let d = pipeline(&format!(
        "{GOOD}sync: {{ sync_back: {{ update: true }} }}\ndeletes:\n  from_halo: deactivate\n"
    ));
    assert_eq!(d.code, "deletes");
    assert_eq!(
        d.message,
        "`from_halo: deactivate` needs the Opportunity field that marks a record inactive"
    );
    assert_eq!(d.line, 15);
    assert!(d
        .hint
        .as_deref()
        .unwrap_or_default()
        .contains("salesforce_inactive"));
}

#[test]
fn deletes_from_halo_without_sync_back_is_a_warning() {
    let d = pipeline(&format!("{GOOD}deletes: {{ from_halo: delete }}\n"));
    assert_eq!(d.code, "deletes");
    assert!(!d.is_error());
    assert_eq!(d.line, 13);
}

#[test]
fn hard_delete_check_must_be_a_schedule() {
    let d = pipeline(&format!("{GOOD}deletes: {{ hard_delete_check: daily }}\n"));
    assert_eq!(d.code, "hard-delete-check");
    assert_eq!(
        d.message,
        "`daily` is not `every_run`, `never` or an interval"
    );
    assert_eq!(d.line, 13);
}

#[test]
fn full_listing_must_be_a_schedule() {
    let d = pipeline(&format!(
        "{GOOD}sync: {{ sync_back: {{ update: true }}, full_listing: daily }}\n"
    ));
    assert_eq!(d.code, "full-listing");
    assert_eq!(d.message, "`daily` is not `every_run` or an interval");
    assert_eq!(d.line, 13);
}

#[test]
fn listing_lookback_must_be_a_short_duration() {
    let d = pipeline(&format!("{GOOD}sync:\n  listing_lookback: a minute\n"));
    assert_eq!(d.code, "duration");
    assert_eq!(d.message, "`a minute` is not a duration");
    assert_eq!(d.line, 14);
    let d = pipeline(&format!("{GOOD}sync:\n  listing_lookback: 2h\n"));
    assert_eq!(d.message, "`2h` is longer than an hour");
    for settings in [
        "full_listing: every_run",
        "full_listing: 24h",
        "full_listing: 30m, listing_lookback: 0s",
        "listing_lookback: 5m",
    ] {
        let text = format!("{GOOD}sync: {{ sync_back: {{ update: true }}, {settings} }}\n");
        let (_dir, diagnostics) = validate(&[("pipelines/p.yaml", &text)]);
        assert!(diagnostics.is_empty(), "{settings}: {diagnostics:#?}");
    }
}

#[test]
fn salesforce_inactive_field_must_exist() {
    let d = pipeline(&format!(
        "{GOOD}sync: {{ sync_back: {{ update: true }} }}\ndeletes:\n  from_halo: deactivate\n  salesforce_inactive: {{ field: StageNme, inactive: Closed Lost }}\n"
    ));
    assert_eq!(d.code, "salesforce-field");
    assert_eq!(d.label.as_deref(), Some("did you mean `StageName`?"));
    assert_eq!(d.line, 16);
}

#[test]
fn both_forms_of_deletes_are_valid() {
    for deletes in [
        "deletes: deactivate\n".to_string(),
        "sync: { sync_back: { update: true } }\ndeletes: { from_salesforce: delete, from_halo: deactivate, salesforce_inactive: { field: StageName, inactive: Closed Lost, active: Prospecting }, hard_delete_check: 24h }\n".to_string(),
        "deletes: { hard_delete_check: never }\n".to_string(),
    ] {
        let (_dir, diagnostics) = validate(&[("pipelines/p.yaml", &format!("{GOOD}{deletes}"))]);
        assert!(diagnostics.is_empty(), "{deletes}: {diagnostics:#?}");
    }
}

#[test]
fn the_object_form_of_deletes_has_its_own_keys() {
    let d = pipeline(&format!("{GOOD}deletes: {{ from_hallo: delete }}\n"));
    assert_eq!(d.code, "unknown-key");
    assert_eq!(d.label.as_deref(), Some("did you mean `from_halo`?"));
    assert_eq!(d.line, 13);
    let d = pipeline(&format!("{GOOD}deletes: deactivat\n"));
    assert_eq!(d.code, "unknown-value");
    assert_eq!(d.label.as_deref(), Some("did you mean `deactivate`?"));
}

#[test]
fn incremental_with_a_whole_query_is_refused_at_its_line() {
    let text = GOOD.replace(
        "  where: IsDeleted = false\n",
        "  query: SELECT Id, Name, StageName, AccountId FROM Opportunity\n  incremental: SystemModstamp\n",
    );
    let d = pipeline(&text);
    assert_eq!(d.code, "incremental");
    assert!(
        d.message.contains("cannot go with a whole `query`"),
        "{}",
        d.message
    );
    assert_eq!(d.line, 5);
    assert!(d.hint.as_deref().unwrap().contains("`where`"), "{d:#?}");
}

#[test]
fn in_flight_below_one_is_refused() {
    let (_dir, diagnostics) = validate(&[
        ("pipelines/p.yaml", GOOD),
        ("etl.yaml", "defaults:\n  in_flight: 0\n"),
    ]);
    assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
    assert_eq!(diagnostics[0].line, 2, "{diagnostics:#?}");
}

#[test]
fn creates_that_a_stopped_run_would_repeat_are_a_warning() {
    // No match keys: a Halo record whose create was not staged is created again.
    let without_match = GOOD.replace("  match: [summary]\n", "");
    let d = pipeline(&without_match);
    assert_eq!((d.code, d.line), ("lost-create", 6), "{d:?}");
    assert!(!d.is_error());
    assert!(d.hint.as_deref().unwrap_or_default().contains("halo.match"));
    // Found again without match keys: by the Salesforce Id the Halo record keeps, which the
    // sync back's listing relinks; or never created, when the import only updates.
    let keeps_id = without_match.replace(
        "fields:\n",
        "sync: { sync_back: { update: true } }\nfields:\n  - { salesforce: Id, halo: customfields.CFSalesforceId }\n",
    );
    let (_dir, diagnostics) = validate(&[("pipelines/p.yaml", &keeps_id)]);
    assert!(diagnostics.is_empty(), "{diagnostics:#?}");
    let updates_only = without_match.replace("fields:\n", "sync: { import: update }\nfields:\n");
    let (_dir, diagnostics) = validate(&[("pipelines/p.yaml", &updates_only)]);
    assert!(diagnostics.is_empty(), "{diagnostics:#?}");
    // The project's default import mode counts for pipelines that set none.
    let (_dir, diagnostics) = validate(&[
        ("pipelines/p.yaml", &without_match),
        ("etl.yaml", "defaults:\n  import: update\n"),
    ]);
    assert!(
        diagnostics.iter().all(|d| d.code != "lost-create"),
        "{diagnostics:#?}"
    );
    // Sync back creating Salesforce records: safe with the import's match keys or its own.
    let creates_back = |sync: &str| GOOD.replace("fields:\n", &format!("{sync}fields:\n"));
    let (_dir, diagnostics) = validate(&[(
        "pipelines/p.yaml",
        &creates_back("sync: { sync_back: { create: true } }\n"),
    )]);
    assert!(diagnostics.is_empty(), "{diagnostics:#?}");
    let d = pipeline(&creates_back(
        "sync: { import: off, sync_back: { create: true } }\n",
    ));
    assert_eq!((d.code, d.line), ("lost-create", 9), "{d:?}");
    assert!(d.message.contains("Salesforce record"), "{d:?}");
    let (_dir, diagnostics) = validate(&[(
        "pipelines/p.yaml",
        &creates_back("sync: { import: off, sync_back: { create: true, match: [Name] } }\n"),
    )]);
    assert!(diagnostics.is_empty(), "{diagnostics:#?}");
}

#[test]
fn a_search_lookup_cannot_sync_back() {
    let d = pipeline(&format!(
        "{GOOD}  - {{ salesforce: OwnerId, halo: agent_id, lookup: {{ entity: Agent, by: email }}, sync_back: true }}\n"
    ));
    assert_eq!(d.code, "sync-back");
    assert_eq!(
        d.message,
        "a search lookup cannot be synced back: the Halo value cannot be turned back into the Salesforce one"
    );
    assert_eq!(d.line, 13);
}

#[test]
fn halo_list_takes_values_or_lists_of_values() {
    let with_list = |list: &str| {
        GOOD.replace(
            "  match: [summary]\n",
            &format!("  match: [summary]\n  list: {list}\n"),
        ) + "sync:\n  sync_back: { update: true }\n"
    };
    let (_dir, diagnostics) =
        validate(&[("pipelines/p.yaml", &with_list("{ tickettype_id: [4, 7] }"))]);
    assert!(diagnostics.is_empty(), "{diagnostics:#?}");
    let d = pipeline(&with_list("{ tickettype_id: [[4]] }"));
    assert_eq!((d.code, d.line), ("halo-list", 9), "{d:?}");
    // Without sync back, nothing is listed.
    let text = GOOD.replace(
        "  match: [summary]\n",
        "  match: [summary]\n  list: { tickettype_id: 4 }\n",
    );
    let d = pipeline(&text);
    assert_eq!(d.code, "halo-list");
    assert_eq!(d.severity, etl::config::Severity::Warning, "{d:?}");
}
