//! Ids across a lost staging file: sync back writes the Salesforce Ids it creates onto the Halo
//! records (the pipelines' `{ salesforce: Id, halo: customfields.… }` mappings), and a run
//! with a fresh staging file links records by those ids (and case comments by their parent and
//! text) instead of duplicating anything on either side.

use serde_json::Value;

use etl::sandbox::server::{self, Options};

mod support;
use support::{halo_get, halo_token, live_records, project, ALL_PIPELINES};

fn run(root: &std::path::Path) -> Value {
    let (code, stdout, stderr) = support::etl_output(root, &["run", "--json"]);
    assert_eq!(code, 0, "{stderr}\n{stdout}");
    serde_json::from_str(&stdout).unwrap()
}

fn counts(sandbox: &server::Running) -> Vec<(String, usize)> {
    let token = halo_token(sandbox);
    let mut out: Vec<(String, usize)> =
        ["Account", "Contact", "Opportunity", "Case", "CaseComment"]
            .iter()
            .map(|o| (o.to_string(), live_records(sandbox, o).len()))
            .collect();
    for entity in ["Client", "Users", "Tickets"] {
        let listed = halo_get(
            sandbox,
            &token,
            &format!("{entity}?pageinate=true&page_size=1"),
        );
        out.push((
            entity.to_string(),
            listed["record_count"].as_u64().unwrap() as usize,
        ));
    }
    out
}

fn custom_field(record: &Value, name: &str) -> Option<String> {
    record["customfields"]
        .as_array()?
        .iter()
        .find(|f| f["name"] == name)?
        .get("value")?
        .as_str()
        .map(str::to_string)
}

#[test]
fn ids_survive_the_loss_of_the_staging_file() {
    let sandbox = server::start(Options {
        accounts: 8,
        ..Options::default()
    })
    .unwrap();
    let project = project(&sandbox, &ALL_PIPELINES);
    let first = run(&project.root);
    let created_back: u64 = first["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["direction"] == "sync back")
        .map(|p| p["created"].as_u64().unwrap())
        .sum();
    assert!(
        created_back >= 3,
        "the Halo-side opportunity, case and comment: {first}"
    );

    // The Halo-side tickets now carry the Ids of the records sync back created for them.
    let token = halo_token(&sandbox);
    let tickets = halo_get(&sandbox, &token, "Tickets?pageinate=true&page_size=100");
    let renewal = tickets["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["summary"] == "Halo-side renewal")
        .unwrap()
        .clone();
    let renewal = halo_get(&sandbox, &token, &format!("Tickets/{}", renewal["id"]));
    let opportunity_id = custom_field(&renewal, "CFSalesforceOpportunityId")
        .expect("the Opportunity Id is written to the ticket");
    let opportunity = live_records(&sandbox, "Opportunity")
        .into_iter()
        .find(|o| o["Id"] == opportunity_id.as_str())
        .expect("and it is the Opportunity sync back created");
    assert_eq!(opportunity["Name"], "Halo-side renewal");

    let before = counts(&sandbox);
    std::fs::remove_file(project.root.join(".etl/staging.duckdb")).unwrap();
    let second = run(&project.root);
    for entry in second["pipelines"].as_array().unwrap() {
        assert_eq!(entry["created"], 0, "nothing is created again: {entry}");
        assert_eq!(entry["failed"], 0, "{entry}");
    }
    assert_eq!(counts(&sandbox), before, "no duplicates on either side");
    let comments = second["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pipeline"] == "case_comments")
        .unwrap();
    assert_eq!(
        comments["linked"], 1,
        "the comment is matched by case and text: {comments}"
    );

    // And the run after that has nothing to do.
    let third = run(&project.root);
    for entry in third["pipelines"].as_array().unwrap() {
        assert_eq!(
            (entry["created"].as_u64(), entry["updated"].as_u64()),
            (Some(0), Some(0)),
            "{entry}"
        );
    }
}
