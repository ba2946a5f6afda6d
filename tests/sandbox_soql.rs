//! SOQL against the emulated org: a table of valid queries with the rows they must return, and
//! invalid ones with Salesforce's error code, wording and column.

use serde_json::{json, Value};

use etl::civil;
use etl::sandbox::salesforce::org::{Org, Record};
use etl::sandbox::salesforce::query::{execute, project};

fn record(pairs: Value) -> Record {
    pairs.as_object().unwrap().clone()
}

/// A small org whose every row is known.
fn org() -> (Org, Vec<String>) {
    let mut org = Org::new();
    let admin = "005000000000001AAA";
    let today = civil::now_millis().div_euclid(86_400_000);
    let u1 = org.create("User", record(json!({"FirstName": "Ada", "LastName": "Lovelace", "Email": "ada@example.com", "Username": "ada@example.com", "Alias": "ada", "IsActive": true})), admin);
    let u2 = org.create("User", record(json!({"FirstName": "Grace", "LastName": "Hopper", "Email": "grace@example.com", "Username": "grace@example.com", "Alias": "gh", "IsActive": true})), admin);
    let a1 = org.create("Account", record(json!({"Name": "Acme Ltd", "Type": "Customer - Direct", "BillingCity": "London", "AnnualRevenue": 1000000.0, "NumberOfEmployees": 50, "OwnerId": u1})), admin);
    let a2 = org.create("Account", record(json!({"Name": "Globex Inc.", "Type": "Prospect", "BillingCity": "Boston", "AnnualRevenue": null, "NumberOfEmployees": 7, "OwnerId": u2})), admin);
    let a3 = org.create(
        "Account",
        record(json!({"Name": "Initech", "Type": "Other", "BillingCity": "Austin", "OwnerId": u1})),
        admin,
    );
    org.get_mut(&a3)
        .unwrap()
        .insert("IsDeleted".into(), json!(true));
    org.create("Contact", record(json!({"FirstName": "Alan", "LastName": "Turing", "Email": "alan@acme.test", "AccountId": a1, "OwnerId": u1})), admin);
    org.create("Contact", record(json!({"FirstName": "Edsger", "LastName": "Dijkstra", "Email": "edsger@acme.test", "AccountId": a1, "OwnerId": u1})), admin);
    org.create("Contact", record(json!({"FirstName": "Barbara", "LastName": "Liskov", "Email": null, "AccountId": null, "OwnerId": u2})), admin);
    org.create("Opportunity", record(json!({"Name": "Big deal", "StageName": "Closed Won", "Amount": 5000.0, "CloseDate": civil::format_date(today - 10), "AccountId": a1, "IsWon": true, "OwnerId": u1})), admin);
    org.create("Opportunity", record(json!({"Name": "Small deal", "StageName": "Prospecting", "Amount": 100.0, "CloseDate": civil::format_date(today + 40), "AccountId": a2, "IsWon": false, "OwnerId": u2})), admin);
    org.create("Opportunity", record(json!({"Name": "Old deal", "StageName": "Closed Lost", "Amount": null, "CloseDate": "2020-06-30", "AccountId": a2, "IsWon": false, "OwnerId": u2})), admin);
    let case = org.create("Case", record(json!({"Subject": "Printer offline", "Status": "New", "Priority": "High", "AccountId": a1, "OwnerId": u1})), admin);
    org.create(
        "CaseComment",
        record(json!({"ParentId": case, "CommentBody": "Rebooted it", "IsPublished": true})),
        admin,
    );
    org.create(
        "CaseComment",
        record(json!({"ParentId": case, "CommentBody": "Internal note", "IsPublished": false})),
        admin,
    );
    org.create("Attachment", record(json!({"ParentId": a1, "Name": "contract.pdf", "ContentType": "application/pdf", "BodyLength": 3})), admin);
    (org, vec![a1, a2, a3, u1, u2])
}

/// Runs a query and returns `field` of every row (nested paths with dots).
fn column(org: &Org, soql: &str, field: &str, all: bool) -> Vec<Value> {
    let execution = execute(org, soql, all).unwrap_or_else(|e| panic!("{soql}: {e}"));
    if let Some(rows) = &execution.aggregate_rows {
        return rows
            .iter()
            .map(|r| {
                r.pointer(&format!("/{}", field.replace('.', "/")))
                    .cloned()
                    .unwrap_or(Value::Null)
            })
            .collect();
    }
    execution
        .ids
        .iter()
        .map(|id| {
            let row = project(org, &execution, org.get(id).unwrap(), "62.0").unwrap();
            row.pointer(&format!("/{}", field.replace('.', "/")))
                .cloned()
                .unwrap_or(Value::Null)
        })
        .collect()
}

fn names(org: &Org, soql: &str) -> Vec<String> {
    column(org, soql, "Name", false)
        .into_iter()
        .map(|v| v.as_str().unwrap_or("<null>").to_string())
        .collect()
}

#[test]
fn valid_queries_return_the_expected_rows() {
    let (org, _) = org();
    let cases: &[(&str, &[&str])] = &[
        ("SELECT Name FROM Account ORDER BY Name", &["Acme Ltd", "Globex Inc."]),
        ("select name from account order by name desc", &["Globex Inc.", "Acme Ltd"]),
        ("SELECT Name FROM Account WHERE Name = 'acme ltd'", &["Acme Ltd"]),
        ("SELECT Name FROM Account WHERE Name != 'Acme Ltd'", &["Globex Inc."]),
        ("SELECT Name FROM Account WHERE Name <> 'Acme Ltd'", &["Globex Inc."]),
        ("SELECT Name FROM Account WHERE Name LIKE 'Acme%'", &["Acme Ltd"]),
        ("SELECT Name FROM Account WHERE Name LIKE '%INC_'", &["Globex Inc."]),
        ("SELECT Name FROM Account WHERE Name LIKE 'Acme'", &[]),
        ("SELECT Name FROM Account WHERE Type IN ('Prospect', 'Other')", &["Globex Inc."]),
        ("SELECT Name FROM Account WHERE Type NOT IN ('Prospect')", &["Acme Ltd"]),
        ("SELECT Name FROM Account WHERE AnnualRevenue = null", &["Globex Inc."]),
        ("SELECT Name FROM Account WHERE AnnualRevenue != null", &["Acme Ltd"]),
        ("SELECT Name FROM Account WHERE AnnualRevenue > 500000", &["Acme Ltd"]),
        ("SELECT Name FROM Account WHERE AnnualRevenue >= 1000000.0", &["Acme Ltd"]),
        ("SELECT Name FROM Account WHERE AnnualRevenue < 5", &[]),
        ("SELECT Name FROM Account WHERE NumberOfEmployees <= 7", &["Globex Inc."]),
        ("SELECT Name FROM Account WHERE NOT Name = 'Acme Ltd'", &["Globex Inc."]),
        ("SELECT Name FROM Account WHERE Name = 'Acme Ltd' OR BillingCity = 'Boston' ORDER BY Name", &["Acme Ltd", "Globex Inc."]),
        ("SELECT Name FROM Account WHERE Name = 'Acme Ltd' AND BillingCity = 'Boston'", &[]),
        ("SELECT Name FROM Account WHERE (Name = 'Acme Ltd' OR Name = 'Globex Inc.') AND BillingCity = 'Boston'", &["Globex Inc."]),
        ("SELECT Name FROM Account WHERE Owner.Email = 'ada@example.com'", &["Acme Ltd"]),
        ("SELECT Name FROM Account WHERE Owner.FirstName LIKE 'Gr%'", &["Globex Inc."]),
        ("SELECT Name FROM Account WHERE IsDeleted = false ORDER BY Name", &["Acme Ltd", "Globex Inc."]),
        ("SELECT Name FROM Account ORDER BY Name LIMIT 1", &["Acme Ltd"]),
        ("SELECT Name FROM Account ORDER BY Name LIMIT 1 OFFSET 1", &["Globex Inc."]),
        ("SELECT Name FROM Account ORDER BY AnnualRevenue NULLS FIRST", &["Globex Inc.", "Acme Ltd"]),
        ("SELECT Name FROM Account ORDER BY AnnualRevenue DESC NULLS LAST", &["Acme Ltd", "Globex Inc."]),
        ("SELECT Name FROM Account ORDER BY AnnualRevenue ASC NULLS LAST", &["Acme Ltd", "Globex Inc."]),
        ("SELECT Name FROM Account WHERE CreatedDate = TODAY ORDER BY Name", &["Acme Ltd", "Globex Inc."]),
        ("SELECT Name FROM Account WHERE CreatedDate = LAST_N_DAYS:3 ORDER BY Name", &["Acme Ltd", "Globex Inc."]),
        ("SELECT Name FROM Account WHERE CreatedDate < YESTERDAY", &[]),
        ("SELECT Name FROM Account WHERE CreatedDate > 2020-01-01T00:00:00Z ORDER BY Name", &["Acme Ltd", "Globex Inc."]),
        ("SELECT Name FROM Account WHERE CreatedDate < 2020-01-01T00:00:00.000+0000", &[]),
        ("SELECT Name FROM Opportunity WHERE CloseDate < TODAY ORDER BY Name", &["Big deal", "Old deal"]),
        ("SELECT Name FROM Opportunity WHERE CloseDate = LAST_N_DAYS:30", &["Big deal"]),
        ("SELECT Name FROM Opportunity WHERE CloseDate = NEXT_N_DAYS:60", &["Small deal"]),
        ("SELECT Name FROM Opportunity WHERE CloseDate > 2021-01-01 ORDER BY Amount DESC", &["Big deal", "Small deal"]),
        ("SELECT Name FROM Opportunity WHERE CloseDate = 2020-06-30", &["Old deal"]),
        ("SELECT Name FROM Opportunity WHERE CALENDAR_YEAR(CloseDate) = 2020", &["Old deal"]),
        ("SELECT Name FROM Opportunity WHERE IsWon = true", &["Big deal"]),
        ("SELECT Name FROM Opportunity WHERE StageName IN ('Closed Won', 'Closed Lost') ORDER BY Name", &["Big deal", "Old deal"]),
        ("SELECT Name FROM Opportunity WHERE Account.Name = 'Globex Inc.' ORDER BY Name", &["Old deal", "Small deal"]),
        ("SELECT Name FROM Opportunity WHERE Account.Owner.Email = 'ada@example.com'", &["Big deal"]),
        ("SELECT Name FROM Opportunity WHERE AccountId IN (SELECT Id FROM Account WHERE BillingCity = 'London')", &["Big deal"]),
        ("SELECT Name FROM Opportunity WHERE AccountId NOT IN (SELECT Id FROM Account WHERE BillingCity = 'London') ORDER BY Name", &["Old deal", "Small deal"]),
        ("SELECT Name FROM Contact WHERE AccountId = null", &["Barbara Liskov"]),
        ("SELECT Name FROM Contact WHERE Email LIKE '%@acme.test' ORDER BY LastName", &["Edsger Dijkstra", "Alan Turing"]),
        ("SELECT Name FROM Contact WHERE Account.BillingCity = 'London' ORDER BY FirstName DESC", &["Edsger Dijkstra", "Alan Turing"]),
        ("SELECT Name FROM Account a WHERE a.BillingCity = 'London'", &["Acme Ltd"]),
        ("SELECT Name FROM Account WHERE Id = null", &[]),
        ("SELECT Name FROM User WHERE IsActive = true ORDER BY Email", &["Ada Lovelace", "Grace Hopper"]),
    ];
    for (soql, expected) in cases {
        assert_eq!(names(&org, soql), *expected, "{soql}");
    }
}

#[test]
fn query_all_includes_deleted_rows() {
    let (org, _) = org();
    let all = column(
        &org,
        "SELECT Name, IsDeleted FROM Account WHERE IsDeleted = true",
        "Name",
        true,
    );
    assert_eq!(all, vec![json!("Initech")]);
    assert!(names(&org, "SELECT Name FROM Account WHERE IsDeleted = true").is_empty());
}

#[test]
fn record_shape_matches_the_rest_api() {
    let (org, ids) = org();
    let execution = execute(&org, "SELECT Id, Name, Owner.Email, Parent.Name, (SELECT Id, Name FROM Attachments), (SELECT Id FROM Opportunities) FROM Account WHERE Name = 'Acme Ltd'", false).unwrap();
    let row = project(
        &org,
        &execution,
        org.get(&execution.ids[0]).unwrap(),
        "62.0",
    )
    .unwrap();
    assert_eq!(
        row["attributes"],
        json!({"type": "Account", "url": format!("/services/data/v62.0/sobjects/Account/{}", ids[0])})
    );
    let keys: Vec<&String> = row.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "attributes",
            "Id",
            "Name",
            "Owner",
            "Parent",
            "Attachments",
            "Opportunities"
        ]
    );
    assert_eq!(row["Owner"]["Email"], "ada@example.com");
    assert_eq!(row["Owner"]["attributes"]["type"], "User");
    assert_eq!(row["Parent"], Value::Null);
    assert_eq!(row["Attachments"]["totalSize"], 1);
    assert_eq!(row["Attachments"]["done"], true);
    assert_eq!(row["Attachments"]["records"][0]["Name"], "contract.pdf");
    assert_eq!(row["Opportunities"]["totalSize"], 1);
    let globex = execute(
        &org,
        "SELECT Id, (SELECT Id FROM Attachments) FROM Account WHERE Name = 'Globex Inc.'",
        false,
    )
    .unwrap();
    let row = project(&org, &globex, org.get(&globex.ids[0]).unwrap(), "62.0").unwrap();
    assert_eq!(
        row["Attachments"],
        Value::Null,
        "no child rows is null, not an empty result"
    );
}

#[test]
fn aggregates_and_counts() {
    let (org, _) = org();
    let count = execute(&org, "SELECT COUNT() FROM Opportunity", false).unwrap();
    assert_eq!(count.total_size, 3);
    assert_eq!(count.aggregate_rows, Some(vec![]));
    assert_eq!(
        column(&org, "SELECT COUNT(Id) FROM Opportunity", "expr0", false),
        vec![json!(3)]
    );
    assert_eq!(
        column(&org, "SELECT COUNT(Amount) n FROM Opportunity", "n", false),
        vec![json!(2)]
    );
    assert_eq!(
        column(&org, "SELECT SUM(Amount) FROM Opportunity", "expr0", false),
        vec![json!(5100.0)]
    );
    assert_eq!(
        column(
            &org,
            "SELECT MAX(Amount), MIN(Amount) FROM Opportunity",
            "expr1",
            false
        ),
        vec![json!(100.0)]
    );
    let grouped = column(
        &org,
        "SELECT StageName, COUNT(Id) FROM Opportunity GROUP BY StageName",
        "StageName",
        false,
    );
    assert_eq!(grouped.len(), 3);
    assert_eq!(
        column(
            &org,
            "SELECT COUNT_DISTINCT(AccountId) FROM Opportunity",
            "expr0",
            false
        ),
        vec![json!(2)]
    );
    let attributes = column(&org, "SELECT COUNT(Id) FROM Account", "attributes", false);
    assert_eq!(attributes, vec![json!({"type": "AggregateResult"})]);
}

#[test]
fn invalid_queries_fail_as_salesforce_fails_them() {
    let (org, _) = org();
    let cases: &[(&str, &str, &str, usize)] = &[
        ("SELECT Id, Nmae FROM Account", "INVALID_FIELD", "No such column 'Nmae' on entity 'Account'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.", 12),
        ("SELECT Id FROM Account WHERE Nmae = 'x'", "INVALID_FIELD", "No such column 'Nmae' on entity 'Account'.", 30),
        ("SELECT Id FROM Account ORDER BY Nmae", "INVALID_FIELD", "No such column 'Nmae'", 33),
        ("SELECT Ownr.Email FROM Account", "INVALID_FIELD", "Didn't understand relationship 'Ownr' in field path.", 8),
        ("SELECT Owner.Emial FROM Account", "INVALID_FIELD", "No such column 'Emial' on entity 'User'.", 8),
        ("SELECT TaskType FROM Opportunity", "INVALID_FIELD", "No such column 'TaskType' on entity 'Opportunity'.", 8),
        ("SELECT Id FROM Acount", "INVALID_TYPE", "sObject type 'Acount' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name.", 16),
        ("select count() from XYZZY", "INVALID_TYPE", "sObject type 'XYZZY' is not supported.", 21),
        ("SELECT Id, (SELECT Id FROM Atachments) FROM Account", "INVALID_TYPE", "Didn't understand relationship 'Atachments' in FROM part of query call.", 28),
        ("SELECT Id FORM Account", "MALFORMED_QUERY", "unexpected token: 'FORM'", 11),
        ("SELECT Id FROM", "MALFORMED_QUERY", "unexpected token: <EOF>", 15),
        ("SELECT FROM Account", "MALFORMED_QUERY", "unexpected token: 'FROM'", 8),
        ("SELECT Id FROM Account WHERE", "MALFORMED_QUERY", "unexpected token: <EOF>", 29),
        ("SELECT Id FROM Account WHERE Name = 'x' AND Type = 'y' OR Type = 'z'", "MALFORMED_QUERY", "unexpected token: 'OR'", 56),
        ("SELECT Id FROM Account WHERE Name 'x'", "MALFORMED_QUERY", "unexpected token: ''x''", 35),
        ("SELECT Id FROM Account LIMIT x", "MALFORMED_QUERY", "unexpected token: 'x'", 30),
        ("SELECT Id FROM Account WHERE Name = 'unterminated", "MALFORMED_QUERY", "unexpected token: <EOF>", 50),
        ("SELECT Id FROM Account WHERE Name = 5", "INVALID_FIELD", "value of filter criterion for field 'Name' must be of type string and should be enclosed in quotes", 37),
        ("SELECT Id FROM Account WHERE AnnualRevenue = '5'", "INVALID_FIELD", "value of filter criterion for field 'AnnualRevenue' must be of type double and should not be enclosed in quotes", 46),
        ("SELECT Id FROM Opportunity WHERE CloseDate = 2024-01-01T00:00:00Z", "INVALID_FIELD", "must be of type date", 46),
        ("SELECT Id FROM Account WHERE CreatedDate = 2024-01-01", "INVALID_FIELD", "must be of type dateTime", 44),
        ("SELECT Id FROM Account WHERE IsDeleted = 'false'", "INVALID_FIELD", "must be of type boolean", 42),
        ("SELECT Id FROM Opportunity WHERE Amount LIKE '5%'", "INVALID_FIELD", "invalid operator on currency field: LIKE", 34),
        ("SELECT Name, COUNT(Id) FROM Opportunity GROUP BY StageName", "INVALID_FIELD", "Field must be grouped or aggregated: Name", 8),
        ("SELECT Id FROM Account WHERE CreatedDate = LAST_N_DAYS", "MALFORMED_QUERY", "unexpected token: <EOF>", 55),
    ];
    for (soql, code, text, column) in cases {
        let error = execute(&org, soql, false)
            .err()
            .unwrap_or_else(|| panic!("{soql} should fail"));
        assert_eq!(error.code.as_str(), *code, "{soql}: {error}");
        assert!(error.text.contains(text), "{soql}: {}", error.text);
        assert_eq!(error.row_column(soql).1, *column, "{soql}");
        let message = error.salesforce_message(soql);
        assert!(
            message.contains(&format!("ERROR at Row:1:Column:{column}\n")),
            "{message}"
        );
    }
}

#[test]
fn in_lists_of_ids_match_the_15_character_form_and_any_case_of_the_18() {
    let (org, ids) = org();
    // A 15-character Id is case-sensitive; the 18-character form carries the case in its suffix.
    let short = &ids[0][..15];
    let long_lower = ids[1].to_ascii_lowercase();
    let soql = format!(
        "SELECT Name FROM Opportunity WHERE AccountId IN ('{short}', '001000000000000') ORDER BY Name"
    );
    assert_eq!(names(&org, &soql), ["Big deal"]);
    let soql =
        format!("SELECT Name FROM Opportunity WHERE AccountId IN ('{long_lower}') ORDER BY Name");
    assert_eq!(names(&org, &soql), ["Old deal", "Small deal"]);
    let soql = format!(
        "SELECT Name FROM Opportunity WHERE AccountId NOT IN ('{}') ORDER BY Name",
        ids[0]
    );
    assert_eq!(names(&org, &soql), ["Old deal", "Small deal"]);
    let soql = "SELECT Name FROM Account WHERE Type IN ('PROSPECT', 'nothing')";
    assert_eq!(names(&org, soql), ["Globex Inc."]);
}

#[test]
fn document_links_are_listed_only_for_given_documents_or_records() {
    let (mut org, ids) = org();
    let document = "069000000000001AAA";
    org.create(
        "ContentDocumentLink",
        record(json!({"ContentDocumentId": document, "LinkedEntityId": ids[0], "ShareType": "V"})),
        "005000000000001AAA",
    );
    let restriction = "Implementation restriction: ContentDocumentLink requires a filter by a single Id on ContentDocumentId or LinkedEntityId using the equals operator or multiple Id's using the IN operator.";
    for soql in [
        "SELECT Id FROM ContentDocumentLink".to_string(),
        "SELECT Id FROM ContentDocumentLink WHERE ShareType = 'V'".to_string(),
        format!(
            "SELECT Id FROM ContentDocumentLink WHERE LinkedEntityId NOT IN ('{}')",
            ids[1]
        ),
        format!(
            "SELECT Id FROM ContentDocumentLink WHERE LinkedEntityId = '{}' OR ShareType = 'V'",
            ids[0]
        ),
        "SELECT Id FROM Account WHERE Id IN (SELECT LinkedEntityId FROM ContentDocumentLink)"
            .to_string(),
    ] {
        let error = execute(&org, &soql, false)
            .err()
            .unwrap_or_else(|| panic!("{soql} should fail"));
        assert_eq!(error.code.as_str(), "MALFORMED_QUERY", "{soql}");
        // Salesforce gives this one without a position.
        assert_eq!(error.salesforce_message(&soql), restriction, "{soql}");
    }

    let linked = |soql: String| column(&org, &soql, "LinkedEntityId", false);
    assert_eq!(
        linked(format!(
            "SELECT LinkedEntityId FROM ContentDocumentLink WHERE ContentDocumentId = '{document}'"
        )),
        [json!(ids[0])]
    );
    assert_eq!(
        linked(format!(
            "SELECT LinkedEntityId FROM ContentDocumentLink WHERE LinkedEntityId IN ('{}', '{}')",
            ids[0], ids[1]
        )),
        [json!(ids[0])]
    );
    assert_eq!(
        linked(
            "SELECT LinkedEntityId FROM ContentDocumentLink WHERE SystemModstamp >= 2020-01-01T00:00:00Z AND LinkedEntityId IN (SELECT Id FROM Account)"
                .to_string()
        ),
        [json!(ids[0])]
    );
    assert_eq!(
        linked(format!(
            "SELECT LinkedEntityId FROM ContentDocumentLink WHERE (ShareType = 'V' AND ContentDocumentId = '{document}') AND Visibility = null"
        )),
        [json!(ids[0])]
    );
    assert!(linked(
        "SELECT LinkedEntityId FROM ContentDocumentLink WHERE LinkedEntityId IN (SELECT Id FROM Contact)"
            .to_string()
    )
    .is_empty());
    // A record's own links, as a child subquery, need no filter of their own.
    let rows = column(
        &org,
        "SELECT Id, (SELECT ContentDocumentId FROM ContentDocumentLinks) FROM Account WHERE Name = 'Acme Ltd'",
        "ContentDocumentLinks.totalSize",
        false,
    );
    assert_eq!(rows, [json!(1)]);
}
