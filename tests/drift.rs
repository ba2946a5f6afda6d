//! Schema drift end to end: a run stages the describe of each pipeline's object; fields added,
//! removed or changed in type in the org since then are reported by the next run (and stop it
//! under `schema_drift: fail`), and a mapped field deleted in the org stops the pipeline with a
//! message naming the mapping.

use serde_json::Value;

use etl::salesforce::catalog;
use etl::sandbox::server::{self, Options, Running};

mod support;
use support::{pipeline, project, Project};

fn run(project: &Project) -> (i32, Value, String) {
    support::etl_json(&project.root, &["run", "--json"])
}

fn change_org(sandbox: &Running, change: impl FnOnce(&mut etl::sandbox::salesforce::org::Org)) {
    let state = sandbox.salesforce_state();
    let mut state = state.lock().unwrap();
    change(&mut state.org);
}

#[test]
fn drift_is_reported_and_a_deleted_mapped_field_stops_the_run() {
    let sandbox = server::start(Options {
        accounts: 5,
        ..Options::default()
    })
    .unwrap();
    let project = project(&sandbox, &["accounts"]);
    project.import_only("accounts");
    let (code, first, stderr) = run(&project);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        pipeline(&first, "accounts")["schema_drift"],
        Value::Array(vec![])
    );

    // An admin adds a field and changes another's type.
    change_org(&sandbox, |org| {
        org.add_custom_field(
            "Account",
            catalog::field_from_line("Region__c string 80 cun"),
        )
        .unwrap();
        org.add_custom_field(
            "Account",
            catalog::field_from_line("External_Id__c double 18 cun"),
        )
        .unwrap();
    });
    let (code, second, stderr) = run(&project);
    // (People see each change as `schema drift accounts: Account.Region__c added (string)`.)
    assert_eq!(code, 0, "warn is the default: {stderr}");
    let drift = pipeline(&second, "accounts")["schema_drift"].clone();
    assert_eq!(
        drift,
        serde_json::json!([
            "Account.External_Id__c changed type: string → double",
            "Account.Region__c added (string)"
        ]),
        "{second}"
    );
    let (_, third, _) = run(&project);
    assert_eq!(
        pipeline(&third, "accounts")["schema_drift"],
        Value::Array(vec![]),
        "reported once, then the new describe is the reference"
    );

    // Under `fail`, a change stops the pipeline before any data moves, until accepted.
    project.edit(
        "accounts",
        "  where: IsDeleted = false",
        "  where: IsDeleted = false\n  schema_drift: fail",
    );
    change_org(&sandbox, |org| {
        org.remove_field("Account", "Region__c").unwrap()
    });
    for _ in 0..2 {
        let (code, _, stderr) = run(&project);
        assert_eq!(code, 2, "{stderr}");
        assert!(
            stderr.contains("the fields of Account changed since run")
                && stderr.contains("Region__c removed (was string)")
                && stderr.contains("schema_drift: warn"),
            "{stderr}"
        );
    }

    // A mapped field deleted in the org always stops the run, naming the mapping.
    project.edit("accounts", "  schema_drift: fail", "  schema_drift: warn");
    change_org(&sandbox, |org| {
        org.remove_field("Account", "Website").unwrap()
    });
    let (code, _, stderr) = run(&project);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("Account has no field `Website` (fields[1]) (it was there in run"),
        "{stderr}"
    );
}
