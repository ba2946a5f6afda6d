//! The Halo entities the sandbox serves: how each is named in a path (case-insensitive), which
//! key wraps its lists (or whether Halo answers with a bare array), which table holds it, and
//! which FieldInfo `typeid` its custom fields carry.

/// One of the `/api/<Entity>` resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Entity {
    Client,
    Site,
    Users,
    Agent,
    TicketType,
    Tickets,
    /// The same table as `Tickets`, limited to opportunity ticket types.
    Opportunities,
    Actions,
    Attachment,
    FieldInfo,
    ExternalLink,
}

/// Every table, in the order they are saved and seeded (referenced rows before referencing ones).
pub const TABLES: [Entity; 10] = [
    Entity::Agent,
    Entity::FieldInfo,
    Entity::TicketType,
    Entity::Client,
    Entity::Site,
    Entity::Users,
    Entity::Tickets,
    Entity::Actions,
    Entity::Attachment,
    Entity::ExternalLink,
];

impl Entity {
    /// The entity of a path segment, ignoring case as Halo does (`client`, `Client`, `CLIENT`).
    pub fn from_path(segment: &str) -> Option<Entity> {
        let all = [
            Entity::Client,
            Entity::Site,
            Entity::Users,
            Entity::Agent,
            Entity::TicketType,
            Entity::Tickets,
            Entity::Opportunities,
            Entity::Actions,
            Entity::Attachment,
            Entity::FieldInfo,
            Entity::ExternalLink,
        ];
        all.into_iter()
            .find(|e| e.name().eq_ignore_ascii_case(segment))
    }

    /// The name as Halo's OpenAPI document spells the path.
    pub fn name(self) -> &'static str {
        match self {
            Entity::Client => "Client",
            Entity::Site => "Site",
            Entity::Users => "Users",
            Entity::Agent => "Agent",
            Entity::TicketType => "TicketType",
            Entity::Tickets => "Tickets",
            Entity::Opportunities => "Opportunities",
            Entity::Actions => "Actions",
            Entity::Attachment => "Attachment",
            Entity::FieldInfo => "FieldInfo",
            Entity::ExternalLink => "ExternalLink",
        }
    }

    /// The table that stores the entity's rows.
    pub fn table(self) -> Entity {
        match self {
            Entity::Opportunities => Entity::Tickets,
            other => other,
        }
    }

    /// The key that wraps a list response, or `None` where Halo returns a bare array
    /// (TicketType and Agent per the reference; FieldInfo and ExternalLink are inferred).
    pub fn envelope(self) -> Option<&'static str> {
        match self {
            Entity::Client => Some("clients"),
            Entity::Site => Some("sites"),
            Entity::Users => Some("users"),
            Entity::Tickets | Entity::Opportunities => Some("tickets"),
            Entity::Actions => Some("actions"),
            Entity::Attachment => Some("attachments"),
            Entity::Agent | Entity::TicketType | Entity::FieldInfo | Entity::ExternalLink => None,
        }
    }

    /// FieldInfo `typeid` of the entity's custom fields. Only "2 = customers" is evidenced (a
    /// community client treats client custom fields as Type ID 2); the others are inferred.
    pub fn custom_field_type(self) -> Option<u64> {
        match self {
            Entity::Tickets | Entity::Opportunities => Some(1),
            Entity::Client => Some(2),
            Entity::Site => Some(3),
            Entity::Users => Some(4),
            Entity::Actions => Some(5),
            _ => None,
        }
    }

    /// Whether list responses honour `pageinate` / `page_no`. Halo's spec gives Actions only
    /// `count`, and the bare-array lists have no envelope to carry paging.
    pub fn pages(self) -> bool {
        !matches!(self, Entity::Actions) && self.envelope().is_some()
    }

    /// Largest `page_size` Halo accepts; the spec says "Maximum size: 100" for tickets.
    pub fn max_page_size(self) -> Option<usize> {
        match self {
            Entity::Tickets | Entity::Opportunities => Some(100),
            _ => None,
        }
    }

    /// Entities whose rows carry an `inactive` flag and are hidden from lists unless
    /// `includeinactive=true`.
    pub fn has_inactive(self) -> bool {
        matches!(self, Entity::Client | Entity::Site | Entity::Users)
    }

    /// The singular used in messages ("Client 7 does not exist.").
    pub fn noun(self) -> &'static str {
        match self {
            Entity::Client => "Client",
            Entity::Site => "Site",
            Entity::Users => "User",
            Entity::Agent => "Agent",
            Entity::TicketType => "Ticket Type",
            Entity::Tickets => "Ticket",
            Entity::Opportunities => "Opportunity",
            Entity::Actions => "Action",
            Entity::Attachment => "Attachment",
            Entity::FieldInfo => "Field",
            Entity::ExternalLink => "External Link",
        }
    }
}
