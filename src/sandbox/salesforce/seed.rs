//! Deterministic seed data: for a given number of accounts, always the same users, accounts,
//! contacts, opportunities across every stage, cases with public and private comments,
//! attachments and a few deleted rows.

use serde_json::{json, Value};

use super::ids;
use super::org::{Org, Record};
use crate::civil;
use crate::salesforce::catalog;

/// SplitMix64: small, fast and the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a>(&mut self, items: &'a [&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const FIRST: &[&str] = &[
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Frances",
    "Ken",
    "Margaret",
    "Dennis",
    "Radia",
    "Linus",
    "Katherine",
    "Tim",
    "Hedy",
    "John",
];
const LAST: &[&str] = &[
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "Thompson",
    "Hamilton",
    "Ritchie",
    "Perlman",
    "Torvalds",
    "Johnson",
    "Berners-Lee",
    "Lamarr",
    "Backus",
];
const WORDS: &[&str] = &[
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Wonka",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
    "Hooli",
    "Vandelay",
    "Oscorp",
    "Aperture",
    "Massive",
    "Dynamic",
];
const SUFFIX: &[&str] = &[
    "Ltd", "Inc.", "Group", "Holdings", "Partners", "Labs", "Systems", "Co.",
];
const CITIES: &[(&str, &str)] = &[
    ("London", "Greater London"),
    ("Manchester", "Lancashire"),
    ("Leeds", "West Yorkshire"),
    ("Bristol", "Somerset"),
    ("Austin", "TX"),
    ("Denver", "CO"),
    ("Portland", "OR"),
    ("Boston", "MA"),
];
const STREETS: &[&str] = &[
    "High Street",
    "Station Road",
    "Main Street",
    "Church Lane",
    "Mill Road",
    "Park Avenue",
];

/// Seconds after this instant are the seeded records' timestamps (2026-01-01T00:00:00Z).
const EPOCH_MILLIS: i64 = 1_767_225_600_000;

fn stamp(record: &mut Record, millis: i64, owner: &str) {
    let when = civil::salesforce_datetime(millis);
    for key in ["CreatedDate", "LastModifiedDate", "SystemModstamp"] {
        record.insert(key.into(), Value::String(when.clone()));
    }
    record.insert("CreatedById".into(), Value::String(owner.into()));
    record.insert("LastModifiedById".into(), Value::String(owner.into()));
}

fn base(object: &str, n: u64, millis: i64, owner: &str) -> Record {
    let prefix = &catalog::standard_object(object)
        .expect("catalog object")
        .key_prefix;
    let mut record = Record::new();
    record.insert("Id".into(), Value::String(ids::make(prefix, n)));
    record.insert("IsDeleted".into(), Value::Bool(false));
    stamp(&mut record, millis, owner);
    record
}

/// How many users own records for `accounts` accounts.
pub fn user_count(accounts: u64) -> u64 {
    (accounts / 50).clamp(5, 500)
}

/// Fills `org` with the seed for `accounts` accounts.
pub fn seed(org: &mut Org, accounts: u64) {
    let mut rng = Rng(0x5EED_0001);
    let mut clock = EPOCH_MILLIS;
    let mut tick = || {
        clock += 1000;
        clock
    };
    let admin = ids::make("005", 1);
    let users = user_count(accounts);
    for u in 1..=users {
        let mut user = base("User", u, tick(), &admin);
        let first = FIRST[(u as usize - 1) % FIRST.len()];
        let last = LAST[(u as usize * 7) % LAST.len()];
        let email = format!(
            "{}.{}{}@example.com",
            first.to_lowercase(),
            last.to_lowercase().replace('-', ""),
            u
        );
        for (key, value) in [
            ("Username", json!(email.clone())),
            ("FirstName", json!(first)),
            ("LastName", json!(last)),
            ("Name", json!(format!("{first} {last}"))),
            ("Email", json!(email)),
            ("Alias", json!(format!("u{u}"))),
            ("IsActive", json!(true)),
        ] {
            user.insert(key.into(), value);
        }
        org.put("User", user);
    }
    let owner_of = |k: u64| ids::make("005", 1 + k % users);
    let stages = &catalog::standard_object("Opportunity")
        .and_then(|o| o.field("StageName"))
        .map(|f| f.picklist_values.clone())
        .unwrap_or_default();
    let probabilities = [10, 10, 20, 50, 60, 70, 75, 90, 100, 0];
    let (mut contacts, mut opportunities, mut cases, mut comments, mut attachments) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    for a in 1..=accounts {
        let owner = owner_of(a);
        let mut account = base("Account", a, tick(), &owner);
        let (city, state) = CITIES[rng.below(CITIES.len() as u64) as usize];
        let name = format!(
            "{} {} {}",
            rng.pick(WORDS),
            rng.pick(WORDS),
            rng.pick(SUFFIX)
        );
        let name = format!("{name} #{a}");
        for (key, value) in [
            ("Name", json!(name)),
            (
                "Type",
                json!(rng.pick(&[
                    "Prospect",
                    "Customer - Direct",
                    "Customer - Channel",
                    "Other"
                ])),
            ),
            (
                "BillingStreet",
                json!(format!("{} {}", 1 + rng.below(200), rng.pick(STREETS))),
            ),
            ("BillingCity", json!(city)),
            ("BillingState", json!(state)),
            (
                "BillingPostalCode",
                json!(format!("{:05}", rng.below(99_999))),
            ),
            ("BillingCountry", json!("United Kingdom")),
            ("Phone", json!(format!("+44 20 7946 {:04}", a % 10_000))),
            ("Website", json!(format!("https://www.example-{a}.com"))),
            (
                "Industry",
                json!(rng.pick(&["Technology", "Finance", "Retail", "Healthcare", "Education"])),
            ),
            (
                "AnnualRevenue",
                json!((1 + rng.below(500)) as f64 * 10_000.0),
            ),
            ("NumberOfEmployees", json!(1 + rng.below(5000))),
            ("OwnerId", json!(owner)),
        ] {
            account.insert(key.into(), value);
        }
        let account_id = account["Id"].as_str().unwrap_or_default().to_string();
        org.put("Account", account);
        let mut first_contact = None;
        for _ in 0..2 {
            contacts += 1;
            let mut contact = base("Contact", contacts, tick(), &owner);
            let first = rng.pick(FIRST);
            let last = rng.pick(LAST);
            for (key, value) in [
                ("AccountId", json!(account_id)),
                ("FirstName", json!(first)),
                ("LastName", json!(last)),
                ("Name", json!(format!("{first} {last}"))),
                (
                    "Email",
                    json!(format!(
                        "{}.{}.{contacts}@example.org",
                        first.to_lowercase(),
                        last.to_lowercase().replace('-', "")
                    )),
                ),
                (
                    "Phone",
                    json!(format!("+44 161 496 {:04}", contacts % 10_000)),
                ),
                (
                    "MobilePhone",
                    json!(format!("+44 7700 9{:05}", contacts % 100_000)),
                ),
                (
                    "Title",
                    json!(rng.pick(&["CEO", "CTO", "IT Manager", "Buyer", "Engineer"])),
                ),
                ("OwnerId", json!(owner)),
            ] {
                contact.insert(key.into(), value);
            }
            if contacts % 50 == 0 {
                contact.insert("IsDeleted".into(), json!(true));
            }
            first_contact
                .get_or_insert_with(|| contact["Id"].as_str().unwrap_or_default().to_string());
            org.put("Contact", contact);
        }
        let contact_id = first_contact.unwrap_or_default();
        for _ in 0..(1 + a % 2) {
            opportunities += 1;
            let stage = (opportunities as usize - 1) % stages.len().max(1);
            let mut opportunity = base("Opportunity", opportunities, tick(), &owner);
            let close_day =
                civil::parse_date("2026-01-01").unwrap_or_default() + rng.below(540) as i64 - 180;
            let closed = stage >= 8;
            for (key, value) in [
                ("AccountId", json!(account_id)),
                ("ContactId", json!(contact_id)),
                (
                    "Name",
                    json!(format!("Opportunity {opportunities} for account {a}")),
                ),
                (
                    "Description",
                    json!(format!("Seeded opportunity {opportunities}")),
                ),
                (
                    "StageName",
                    json!(stages.get(stage).cloned().unwrap_or_default()),
                ),
                ("Amount", json!((1 + rng.below(1000)) as f64 * 100.0)),
                (
                    "Probability",
                    json!(probabilities[stage % probabilities.len()] as f64),
                ),
                ("CloseDate", json!(civil::format_date(close_day))),
                ("IsClosed", json!(closed)),
                ("IsWon", json!(stage == 8)),
                (
                    "Type",
                    json!(rng.pick(&["New Customer", "Existing Customer - Upgrade"])),
                ),
                ("OwnerId", json!(owner)),
            ] {
                opportunity.insert(key.into(), value);
            }
            if opportunities % 40 == 0 {
                opportunity.insert("IsDeleted".into(), json!(true));
            }
            let opportunity_id = opportunity["Id"].as_str().unwrap_or_default().to_string();
            org.put("Opportunity", opportunity);
            if opportunities % 7 == 0 {
                attachments += 1;
                put_attachment(org, attachments, &opportunity_id, &owner, tick());
            }
        }
        if a % 10 == 0 {
            attachments += 1;
            put_attachment(org, attachments, &account_id, &owner, tick());
        }
        if a % 2 == 0 {
            cases += 1;
            let mut case = base("Case", cases, tick(), &owner);
            for (key, value) in [
                ("CaseNumber", json!(format!("{:08}", cases))),
                ("AccountId", json!(account_id)),
                ("ContactId", json!(contact_id)),
                (
                    "Subject",
                    json!(format!(
                        "Case {cases}: {}",
                        rng.pick(&[
                            "Printer offline",
                            "VPN drops",
                            "New starter",
                            "Password reset",
                            "Email bounce"
                        ])
                    )),
                ),
                ("Description", json!("Seeded case")),
                (
                    "Status",
                    json!(rng.pick(&["New", "Working", "Escalated", "Closed"])),
                ),
                ("Priority", json!(rng.pick(&["High", "Medium", "Low"]))),
                ("Origin", json!(rng.pick(&["Phone", "Email", "Web"]))),
                ("IsEscalated", json!(false)),
                ("OwnerId", json!(owner)),
            ] {
                case.insert(key.into(), value);
            }
            let case_id = case["Id"].as_str().unwrap_or_default().to_string();
            org.put("Case", case);
            for published in [true, false] {
                comments += 1;
                let mut comment = base("CaseComment", comments, tick(), &owner);
                comment.insert("ParentId".into(), json!(case_id));
                comment.insert(
                    "CommentBody".into(),
                    json!(format!(
                        "{} comment {comments}",
                        if published { "Public" } else { "Internal" }
                    )),
                );
                comment.insert("IsPublished".into(), json!(published));
                org.put("CaseComment", comment);
            }
        }
    }
}

fn put_attachment(org: &mut Org, n: u64, parent: &str, owner: &str, millis: i64) {
    let body = format!("Attachment {n} of {parent}\n").repeat(1 + (n % 5) as usize);
    let mut attachment = base("Attachment", n, millis, owner);
    for (key, value) in [
        ("ParentId", json!(parent)),
        ("Name", json!(format!("note-{n}.txt"))),
        ("ContentType", json!("text/plain")),
        ("BodyLength", json!(body.len())),
        ("IsPrivate", json!(false)),
        ("OwnerId", json!(owner)),
    ] {
        attachment.insert(key.into(), value);
    }
    org.put("Attachment", attachment);
    org.put_blob(&ids::make("00P", n), body.into_bytes());
}
