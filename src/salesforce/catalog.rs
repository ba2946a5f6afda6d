//! The standard objects and fields this tool knows offline, as Salesforce describes them.
//!
//! `etl validate` checks pipeline field names against it ("did you mean StageName?") and the
//! sandbox serves its describe from it. The table below is the single source; it follows the
//! real describes summarised in `shared/reference/salesforce-api.md` §8.

use std::collections::HashMap;
use std::sync::OnceLock;

#[derive(Debug, Clone, PartialEq)]
pub struct FieldInfo {
    pub name: String,
    /// Salesforce's describe type: id, string, textarea, picklist, reference, boolean, currency, …
    pub field_type: String,
    pub length: u32,
    pub createable: bool,
    pub updateable: bool,
    pub nillable: bool,
    /// Usable as an external id in upserts.
    pub external_id: bool,
    /// A custom field (`__c`).
    pub custom: bool,
    /// Object(s) a reference field points to.
    pub reference_to: Vec<String>,
    /// Name used in SOQL paths for a reference (`Owner` for `OwnerId`).
    pub relationship_name: Option<String>,
    pub picklist_values: Vec<String>,
    /// A picklist that refuses values outside `picklist_values` (describe's `restrictedPicklist`).
    pub restricted_picklist: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObjectInfo {
    pub name: String,
    /// The three-character Id prefix (`001` for Account).
    pub key_prefix: String,
    pub fields: Vec<FieldInfo>,
    /// Parent-to-child relationship names usable in subqueries, with the child object.
    pub child_relationships: Vec<(String, String)>,
}

impl ObjectInfo {
    pub fn field(&self, name: &str) -> Option<&FieldInfo> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The field whose relationship name is `name` (`Owner` → `OwnerId`).
    pub fn relationship(&self, name: &str) -> Option<&FieldInfo> {
        self.fields
            .iter()
            .find(|f| f.relationship_name.as_deref() == Some(name))
    }
}

/// Fields every object has.
const SYSTEM_FIELDS: &str = "
Id id 18 -
IsDeleted boolean 0 -
CreatedDate datetime 0 -
CreatedById reference 18 - ref=User rel=CreatedBy
LastModifiedDate datetime 0 -
LastModifiedById reference 18 - ref=User rel=LastModifiedBy
SystemModstamp datetime 0 -
";

/// One line per field: `Name type length flags [ref=A|B] [rel=Name] [values=a|b]`, where flags
/// are c (createable), u (updateable), n (nillable), x (external id), r (restricted picklist) or
/// `-` for none.
const OBJECTS: &[(&str, &str, &str, &str)] = &[
    ("Account", "001", "Contacts:Contact Opportunities:Opportunity Cases:Case Attachments:Attachment ContentDocumentLinks:ContentDocumentLink", "
Name string 255 cu
Type picklist 255 cun values=Prospect|Customer - Direct|Customer - Channel|Channel Partner / Reseller|Installation Partner|Technology Partner|Other
ParentId reference 18 cun ref=Account rel=Parent
BillingStreet textarea 255 cun
BillingCity string 40 cun
BillingState string 80 cun
BillingPostalCode string 20 cun
BillingCountry string 80 cun
BillingLatitude double 0 cun
BillingLongitude double 0 cun
BillingAddress address 0 n
ShippingStreet textarea 255 cun
ShippingCity string 40 cun
ShippingState string 80 cun
ShippingPostalCode string 20 cun
ShippingCountry string 80 cun
ShippingLatitude double 0 cun
ShippingLongitude double 0 cun
ShippingAddress address 0 n
Phone phone 40 cun
Fax phone 40 cun
AccountNumber string 40 cun
Website url 255 cun
Industry picklist 255 cun values=Agriculture|Banking|Chemicals|Communications|Construction|Consulting|Education|Electronics|Energy|Engineering|Entertainment|Environmental|Finance|Food & Beverage|Government|Healthcare|Hospitality|Insurance|Machinery|Manufacturing|Media|Not For Profit|Recreation|Retail|Shipping|Technology|Telecommunications|Transportation|Utilities|Other
AnnualRevenue currency 0 cun
NumberOfEmployees int 0 cun
Description textarea 32000 cun
OwnerId reference 18 cu ref=User rel=Owner
Site string 80 cun
AccountSource picklist 255 cun values=Web|Phone Inquiry|Partner Referral|Purchased List|Other
Rating picklist 255 cun values=Hot|Warm|Cold
"),
    ("Contact", "003", "Cases:Case Opportunities:Opportunity Attachments:Attachment ContentDocumentLinks:ContentDocumentLink", "
AccountId reference 18 cun ref=Account rel=Account
LastName string 80 cu
FirstName string 40 cun
Salutation picklist 255 cun values=Mr.|Ms.|Mrs.|Dr.|Prof.
Name string 121 -
MailingStreet textarea 255 cun
MailingCity string 40 cun
MailingState string 80 cun
MailingPostalCode string 20 cun
MailingCountry string 80 cun
MailingAddress address 0 n
OtherStreet textarea 255 cun
OtherCity string 40 cun
OtherState string 80 cun
OtherPostalCode string 20 cun
OtherCountry string 80 cun
Phone phone 40 cun
Fax phone 40 cun
MobilePhone phone 40 cun
HomePhone phone 40 cun
OtherPhone phone 40 cun
AssistantPhone phone 40 cun
Email email 80 cun
Title string 128 cun
Department string 80 cun
ReportsToId reference 18 cun ref=Contact rel=ReportsTo
LeadSource picklist 255 cun values=Web|Phone Inquiry|Partner Referral|Purchased List|Other
Birthdate date 0 cun
Description textarea 32000 cun
OwnerId reference 18 cu ref=User rel=Owner
"),
    ("Opportunity", "006", "Attachments:Attachment ContentDocumentLinks:ContentDocumentLink", "
AccountId reference 18 cun ref=Account rel=Account
IsPrivate boolean 0 cu
Name string 120 cu
Description textarea 32000 cun
StageName picklist 255 cu values=Prospecting|Qualification|Needs Analysis|Value Proposition|Id. Decision Makers|Perception Analysis|Proposal/Price Quote|Negotiation/Review|Closed Won|Closed Lost
Amount currency 0 cun
Probability percent 0 cun
ExpectedRevenue currency 0 n
CloseDate date 0 cu
Type picklist 255 cun values=Existing Customer - Upgrade|Existing Customer - Replacement|Existing Customer - Downgrade|New Customer
NextStep string 255 cun
LeadSource picklist 255 cun values=Web|Phone Inquiry|Partner Referral|Purchased List|Other
IsClosed boolean 0 -
IsWon boolean 0 -
ForecastCategory picklist 255 n values=Omitted|Pipeline|BestCase|Forecast|Closed
ForecastCategoryName picklist 255 cun values=Omitted|Pipeline|Best Case|Commit|Closed
CampaignId reference 18 cun ref=Campaign rel=Campaign
Pricebook2Id reference 18 cun ref=Pricebook2 rel=Pricebook2
OwnerId reference 18 cu ref=User rel=Owner
ContactId reference 18 cn ref=Contact
FiscalQuarter int 0 n
FiscalYear int 0 n
Fiscal string 6 n
"),
    ("Case", "500", "CaseComments:CaseComment Attachments:Attachment ContentDocumentLinks:ContentDocumentLink", "
CaseNumber string 30 -
ContactId reference 18 cun ref=Contact rel=Contact
AccountId reference 18 cun ref=Account rel=Account
AssetId reference 18 cun ref=Asset rel=Asset
ParentId reference 18 cun ref=Case rel=Parent
SuppliedName string 80 cun
SuppliedEmail email 80 cun
SuppliedPhone string 40 cun
SuppliedCompany string 80 cun
Type picklist 255 cun values=Mechanical|Electrical|Electronic|Structural|Other
Status picklist 255 cun values=New|Working|Escalated|Closed
Reason picklist 255 cun values=Installation|Equipment Complexity|Performance|Breakdown|Equipment Design|Feedback|Other
Origin picklist 255 cun values=Phone|Email|Web
Subject string 255 cun
Priority picklist 255 cun values=High|Medium|Low
Description textarea 32000 cun
IsClosed boolean 0 -
ClosedDate datetime 0 n
IsEscalated boolean 0 cu
OwnerId reference 18 cu ref=Group|User rel=Owner
ContactPhone phone 40 n
ContactMobile phone 40 n
ContactEmail email 80 n
ContactFax phone 40 n
Comments textarea 4000 cun
"),
    ("CaseComment", "00a", "", "
ParentId reference 18 c ref=Case rel=Parent
CommentBody textarea 4000 cun
IsPublished boolean 0 cu
"),
    ("User", "005", "", "
Username string 80 cu
LastName string 80 cu
FirstName string 40 cun
Name string 121 -
Email email 128 cu
Alias string 8 cu
IsActive boolean 0 cu
ProfileId reference 18 cu ref=Profile rel=Profile
Title string 80 cun
Department string 80 cun
Phone phone 40 cun
MobilePhone phone 40 cun
"),
    ("Attachment", "00P", "", "
ParentId reference 18 c ref=Account|Contact|Opportunity|Case rel=Parent
Name string 255 cu
IsPrivate boolean 0 cu
ContentType string 120 cun
BodyLength int 0 n
Body base64 0 cu
Description textarea 500 cun
OwnerId reference 18 cu ref=User rel=Owner
"),
    ("ContentVersion", "068", "", "
ContentDocumentId reference 18 n ref=ContentDocument rel=ContentDocument
Title string 255 cu
PathOnClient string 500 c
VersionData base64 0 cu
ContentSize int 0 n
FileExtension string 40 n
FirstPublishLocationId reference 18 cn ref=Account|Contact|Opportunity|Case|User
IsLatest boolean 0 -
"),
    ("ContentDocument", "069", "ContentVersions:ContentVersion ContentDocumentLinks:ContentDocumentLink", "
Title string 255 u
LatestPublishedVersionId reference 18 n ref=ContentVersion rel=LatestPublishedVersion
FileExtension string 40 n
FileType string 20 n
ContentSize int 0 n
OwnerId reference 18 u ref=User rel=Owner
"),
    ("ContentDocumentLink", "06A", "", "
ContentDocumentId reference 18 c ref=ContentDocument rel=ContentDocument
LinkedEntityId reference 18 c ref=Account|Contact|Opportunity|Case rel=LinkedEntity
ShareType picklist 40 cun values=V|C|I
Visibility picklist 40 cun values=AllUsers|InternalUsers|SharedUsers
"),
];

fn parse_field(line: &str) -> FieldInfo {
    // `values=` runs to the end of the line because picklist labels contain spaces.
    let (head, values) = match line.split_once(" values=") {
        Some((head, values)) => (head, values.split('|').map(String::from).collect()),
        None => (line, Vec::new()),
    };
    let mut parts = head.split_whitespace();
    let name = parts.next().unwrap_or_default().to_string();
    let field_type = parts.next().unwrap_or_default().to_string();
    let length = parts.next().and_then(|l| l.parse().ok()).unwrap_or(0);
    let flags = parts.next().unwrap_or("-");
    let custom = name.ends_with("__c");
    let mut field = FieldInfo {
        name,
        field_type,
        length,
        createable: flags.contains('c'),
        updateable: flags.contains('u'),
        nillable: flags.contains('n'),
        external_id: flags.contains('x'),
        custom,
        reference_to: Vec::new(),
        relationship_name: None,
        picklist_values: values,
        restricted_picklist: flags.contains('r'),
    };
    for extra in parts {
        if let Some(targets) = extra.strip_prefix("ref=") {
            field.reference_to = targets.split('|').map(String::from).collect();
        } else if let Some(rel) = extra.strip_prefix("rel=") {
            field.relationship_name = Some(rel.to_string());
        }
    }
    field
}

fn catalog() -> &'static HashMap<String, ObjectInfo> {
    static CATALOG: OnceLock<HashMap<String, ObjectInfo>> = OnceLock::new();
    CATALOG.get_or_init(|| {
        OBJECTS
            .iter()
            .map(|(name, prefix, children, fields)| {
                let fields = SYSTEM_FIELDS
                    .lines()
                    .chain(fields.lines())
                    .filter(|l| !l.trim().is_empty())
                    .map(parse_field)
                    .collect();
                let child_relationships = children
                    .split_whitespace()
                    .filter_map(|c| c.split_once(':'))
                    .map(|(rel, obj)| (rel.to_string(), obj.to_string()))
                    .collect();
                let info = ObjectInfo {
                    name: name.to_string(),
                    key_prefix: prefix.to_string(),
                    fields,
                    child_relationships,
                };
                (name.to_string(), info)
            })
            .collect()
    })
}

/// The standard object called exactly `name`, if this tool knows it offline.
pub fn standard_object(name: &str) -> Option<&'static ObjectInfo> {
    catalog().get(name)
}

/// Parses one field line of the table format above (also used for custom fields in a
/// sandbox data folder).
pub fn field_from_line(line: &str) -> FieldInfo {
    parse_field(line)
}

/// Names of every standard object known offline, sorted.
pub fn standard_object_names() -> Vec<&'static str> {
    let mut names: Vec<&str> = catalog().keys().map(String::as_str).collect();
    names.sort_unstable();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_opportunity_stages_and_relationships() {
        let opp = standard_object("Opportunity").unwrap();
        let stage = opp.field("StageName").unwrap();
        assert_eq!(stage.field_type, "picklist");
        assert_eq!(stage.picklist_values.len(), 10);
        assert_eq!(stage.picklist_values[8], "Closed Won");
        assert_eq!(opp.relationship("Owner").unwrap().name, "OwnerId");
        assert!(opp.field("ContactId").unwrap().createable);
        assert!(!opp.field("ContactId").unwrap().updateable);
        assert!(opp.field("Id").is_some());
    }
}
