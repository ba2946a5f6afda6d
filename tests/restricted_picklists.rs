//! Restricted picklists, over real HTTP against the sandbox org: describe marks them
//! (`restrictedPicklist`), and a value outside the list is refused per record with Salesforce's
//! `INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST` in a single-record write, in Collections (the other
//! records still land when `allOrNone` is false) and in a Bulk API 2.0 ingest job (the failed
//! row's `sf__Error`). End to end, `etl run` reports a sync-back record the org refused with
//! Salesforce's message and goes on with the others.

use serde_json::{json, Value};

use etl::sandbox::server::{self, Options, Running};

mod support;
use support::{
    agent, direction, halo_post, halo_token, live_records, project, reply,
    salesforce_token as token, staging_rows, Reply,
};

const API: &str = "/services/data/v62.0";

/// The stages of a new org without `Id. Decision Makers`, which this org's admin removed and
/// restricted the picklist (the example pipeline still lists it).
const RESTRICTED_STAGES: &str = "Opportunity StageName picklist 255 cur values=Prospecting|Qualification|Needs Analysis|Value Proposition|Perception Analysis|Proposal/Price Quote|Negotiation/Review|Closed Won|Closed Lost\n";

fn start(accounts: u64) -> Running {
    server::start(Options {
        accounts,
        ..Options::default()
    })
    .unwrap()
}

/// A sandbox over a data folder whose custom-field file also restricts `StageName`.
fn start_with_restricted_stages(dir: &std::path::Path, accounts: u64) -> Running {
    let default_fields =
        "Opportunity TaskType__c picklist 255 cunr values=New Business|Renewal|Upgrade\n";
    std::fs::write(
        dir.join("salesforce-custom-fields.txt"),
        format!("{default_fields}{RESTRICTED_STAGES}"),
    )
    .unwrap();
    server::start(Options {
        accounts,
        data_dir: Some(dir.to_path_buf()),
        ..Options::default()
    })
    .unwrap()
}

fn call(sandbox: &Running, token: &str, method: &str, path: &str, body: Option<&Value>) -> Reply {
    let url = format!("{}{API}{path}", sandbox.salesforce_url);
    let auth = format!("Bearer {token}");
    let text = body.map(Value::to_string).unwrap_or_default();
    reply(match method {
        "GET" => agent().get(url).header("Authorization", &auth).call(),
        "POST" => agent()
            .post(url)
            .header("Authorization", &auth)
            .header("Content-Type", "application/json")
            .send(text),
        "PATCH" => agent()
            .patch(url)
            .header("Authorization", &auth)
            .header("Content-Type", "application/json")
            .send(text),
        _ => unreachable!("test helper"),
    })
}

fn field<'a>(describe: &'a Value, name: &str) -> &'a Value {
    describe["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no field {name}"))
}

fn an_account(sandbox: &Running) -> String {
    live_records(sandbox, "Account")[0]["Id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn opportunity(account: &str, name: &str, task_type: &str) -> Value {
    json!({"Name": name, "StageName": "Prospecting", "CloseDate": "2026-12-31",
           "AccountId": account, "TaskType__c": task_type})
}

fn refusal(value: &str, field: &str) -> Value {
    json!({"message": format!("bad value for restricted picklist field: {value}"),
           "errorCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "fields": [field]})
}

#[test]
fn describe_marks_restricted_picklists_and_the_data_folder_can_restrict_a_standard_one() {
    let sandbox = start(1);
    let token = token(&sandbox);
    let describe = call(
        &sandbox,
        &token,
        "GET",
        "/sobjects/Opportunity/describe",
        None,
    )
    .json();
    // A custom picklist made in Setup is restricted; StageName is not in a new org.
    assert_eq!(field(&describe, "TaskType__c")["restrictedPicklist"], true);
    assert_eq!(field(&describe, "StageName")["restrictedPicklist"], false);
    assert_eq!(field(&describe, "Name")["restrictedPicklist"], false);

    let dir = tempfile::tempdir().unwrap();
    let restricted = start_with_restricted_stages(dir.path(), 1);
    let token = self::token(&restricted);
    let describe = call(
        &restricted,
        &token,
        "GET",
        "/sobjects/Opportunity/describe",
        None,
    )
    .json();
    let stage = field(&describe, "StageName");
    assert_eq!(stage["restrictedPicklist"], true);
    assert_eq!(stage["picklistValues"].as_array().unwrap().len(), 9);
    // Redefined in place: StageName keeps its position among the fields.
    let names: Vec<&str> = describe["fields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    let position = |n: &str| names.iter().position(|x| *x == n).unwrap();
    assert!(position("StageName") < position("Amount"), "{names:?}");
}

#[test]
fn single_record_writes_refuse_a_value_outside_a_restricted_picklist() {
    let sandbox = start(2);
    let token = token(&sandbox);
    let account = an_account(&sandbox);

    let refused = call(
        &sandbox,
        &token,
        "POST",
        "/sobjects/Opportunity",
        Some(&opportunity(&account, "Bad type", "Cross-sell")),
    );
    assert_eq!(refused.status, 400);
    assert_eq!(
        refused.json(),
        json!([refusal("Cross-sell", "TaskType__c")])
    );
    assert!(!live_records(&sandbox, "Opportunity")
        .iter()
        .any(|o| o["Name"] == "Bad type"));

    let created = call(
        &sandbox,
        &token,
        "POST",
        "/sobjects/Opportunity",
        Some(&opportunity(&account, "Good type", "Renewal")),
    );
    assert_eq!(created.status, 201, "{}", created.text());
    let id = created.json()["id"].as_str().unwrap().to_string();

    // An update is checked the same way (and values compare exactly: case matters).
    let refused = call(
        &sandbox,
        &token,
        "PATCH",
        &format!("/sobjects/Opportunity/{id}"),
        Some(&json!({"TaskType__c": "renewal"})),
    );
    assert_eq!(refused.status, 400);
    assert_eq!(refused.json(), json!([refusal("renewal", "TaskType__c")]));
    // A null clears a nillable restricted picklist.
    let cleared = call(
        &sandbox,
        &token,
        "PATCH",
        &format!("/sobjects/Opportunity/{id}"),
        Some(&json!({"TaskType__c": null})),
    );
    assert_eq!(cleared.status, 204, "{}", cleared.text());

    // StageName is not restricted in a new org: a real org accepted "In Progress".
    let open_stage = call(
        &sandbox,
        &token,
        "PATCH",
        &format!("/sobjects/Opportunity/{id}"),
        Some(&json!({"StageName": "In Progress"})),
    );
    assert_eq!(open_stage.status, 204, "{}", open_stage.text());
}

#[test]
fn collections_refuse_the_bad_record_and_keep_the_others_unless_all_or_none() {
    let sandbox = start(2);
    let token = token(&sandbox);
    let account = an_account(&sandbox);
    let records = |prefix: &str| {
        let mut list = Vec::new();
        for (n, task_type) in ["New Business", "Side deal", "Upgrade"].iter().enumerate() {
            let mut record = opportunity(&account, &format!("{prefix} {n}"), task_type);
            record["attributes"] = json!({"type": "Opportunity"});
            list.push(record);
        }
        Value::Array(list)
    };

    let results = call(
        &sandbox,
        &token,
        "POST",
        "/composite/sobjects",
        Some(&json!({"allOrNone": false, "records": records("Partial")})),
    );
    assert_eq!(results.status, 200);
    let results = results.json();
    assert_eq!(results[0]["success"], true, "{results}");
    assert_eq!(results[2]["success"], true, "{results}");
    assert_eq!(
        results[1],
        json!({"success": false, "errors": [{"statusCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
               "message": "bad value for restricted picklist field: Side deal", "fields": ["TaskType__c"]}]})
    );
    let landed: Vec<String> = live_records(&sandbox, "Opportunity")
        .iter()
        .filter_map(|o| o["Name"].as_str())
        .filter(|n| n.starts_with("Partial"))
        .map(str::to_string)
        .collect();
    assert_eq!(landed, ["Partial 0", "Partial 2"]);

    let results = call(
        &sandbox,
        &token,
        "POST",
        "/composite/sobjects",
        Some(&json!({"allOrNone": true, "records": records("Whole")})),
    )
    .json();
    assert_eq!(
        results[1]["errors"][0]["statusCode"],
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    );
    assert_eq!(
        results[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert!(!live_records(&sandbox, "Opportunity")
        .iter()
        .any(|o| o["Name"].as_str().is_some_and(|n| n.starts_with("Whole"))));
}

#[test]
fn bulk_ingest_fails_the_bad_row_with_salesforces_error() {
    let sandbox = start(2);
    let token = token(&sandbox);
    let account = an_account(&sandbox);
    let job = call(
        &sandbox,
        &token,
        "POST",
        "/jobs/ingest",
        Some(&json!({"object": "Opportunity", "operation": "insert", "contentType": "CSV", "lineEnding": "LF"})),
    )
    .json();
    let id = job["id"].as_str().unwrap().to_string();
    let csv = format!(
        "Name,StageName,CloseDate,AccountId,TaskType__c\n\
         Bulk good,Prospecting,2026-12-31,{account},Renewal\n\
         Bulk bad,Prospecting,2026-12-31,{account},Wholesale\n\
         Bulk none,Prospecting,2026-12-31,{account},\n"
    );
    let uploaded = reply(
        agent()
            .put(format!(
                "{}{API}/jobs/ingest/{id}/batches",
                sandbox.salesforce_url
            ))
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", "text/csv")
            .send(csv),
    );
    assert_eq!(uploaded.status, 201);
    call(
        &sandbox,
        &token,
        "PATCH",
        &format!("/jobs/ingest/{id}"),
        Some(&json!({"state": "UploadComplete"})),
    );
    let done = call(&sandbox, &token, "GET", &format!("/jobs/ingest/{id}"), None).json();
    assert_eq!(done["state"], "JobComplete", "{done}");
    assert_eq!(done["numberRecordsProcessed"], 3);
    assert_eq!(done["numberRecordsFailed"], 1);
    let failed = call(
        &sandbox,
        &token,
        "GET",
        &format!("/jobs/ingest/{id}/failedResults/"),
        None,
    )
    .text();
    let row = failed.lines().nth(1).unwrap();
    assert!(
        row.starts_with("\"\",\"INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST:bad value for restricted picklist field: Wholesale:TaskType__c --\",\"Bulk bad\""),
        "{failed}"
    );
    assert_eq!(failed.lines().count(), 2, "{failed}");
    let names: Vec<String> = live_records(&sandbox, "Opportunity")
        .iter()
        .filter_map(|o| o["Name"].as_str())
        .filter(|n| n.starts_with("Bulk"))
        .map(str::to_string)
        .collect();
    assert_eq!(names, ["Bulk good", "Bulk none"]);
}

#[test]
fn etl_run_reports_a_stage_the_org_refuses_and_syncs_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = start_with_restricted_stages(dir.path(), 6);
    let project = project(&sandbox, &["accounts", "contacts", "opportunities"]);
    let token = halo_token(&sandbox);
    let ticket = |summary: &str, stage: &str| {
        halo_post(
            &sandbox,
            &token,
            "Tickets",
            json!([{"summary": summary, "tickettype_id": 3, "client_id": 2,
                    "salesforce_stage": stage, "targetdate": "2026-12-01T00:00:00"}]),
        )["id"]
            .as_u64()
            .unwrap()
    };
    // The pipeline's stage names still list `Id. Decision Makers`; the org no longer does.
    let refused = ticket("Deciding", "Id. Decision Makers");
    let accepted = ticket("Negotiating", "Negotiation/Review");

    let (code, stdout, stderr) = support::etl_output(&project.root, &["run", "--json"]);
    assert_eq!(code, 1, "failed records exit 1: {stderr}\n{stdout}");
    let summary: Value = serde_json::from_str(&stdout).unwrap();
    let back = direction(&summary, "opportunities", "sync back");
    assert_eq!(back["failed"], 1, "{summary}");
    // Ours and the renewal ticket the Halo sandbox is seeded with.
    assert_eq!(back["created"], 2, "{summary}");
    assert_eq!(
        back["failures"],
        json!([[refused.to_string(), "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST: bad value for restricted picklist field: Id. Decision Makers (fields: StageName)"]]),
        "{summary}"
    );

    let run_id = summary["run_id"].as_str().unwrap();
    let result = |halo_id: u64| {
        let rows = staging_rows(
            &project.root,
            &format!(
                "SELECT status, error_message FROM opportunities_back_results \
                 WHERE run_id = '{run_id}' AND source_id = '{halo_id}'"
            ),
        );
        assert_eq!(rows.len(), 1, "{rows:?}");
        rows[0].clone()
    };
    let failure = result(refused);
    assert_eq!(failure["status"], "failed", "{failure}");
    assert_eq!(
        failure["error_message"],
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST: bad value for restricted picklist field: Id. Decision Makers (fields: StageName)"
    );
    assert_eq!(result(accepted)["status"], "created");
    let opportunities = live_records(&sandbox, "Opportunity");
    assert!(opportunities
        .iter()
        .any(|o| o["Name"] == "Negotiating" && o["StageName"] == "Negotiation/Review"));
    assert!(!opportunities.iter().any(|o| o["Name"] == "Deciding"));
}
