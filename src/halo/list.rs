//! Listing an entity as a stream of pages: `pageinate=true&page_size=N&page_no=1..`, one page
//! in memory at a time. Halo answers lists either wrapped (`{"record_count": n, "users": [...],
//! "page_no", "page_size"}`) or as a bare array (Agent, TicketType, FieldInfo); both are read.
//! Paging stops when `record_count` records have been seen (Halo caps tickets at 100 per page
//! whatever was asked, so page length alone cannot tell the end), or, for answers without a
//! count, when a page comes back short or empty. An endpoint that ignores paging (it sends the
//! same first page again) is read once.
//!
//! Incremental reads pass `lastupdatefromdate`, which Halo compares with each record's
//! `last_update` (the reference lists it on `/Client` only). The bound is sent zone-less
//! (`2026-08-01T06:30:00.250`), on the scale of the `last_update` values it was derived from,
//! so no time zone is applied twice.

use serde_json::{Map, Value};

use super::client::{check_entity, kind_of, HaloClient};
use super::error::HaloError;
use super::service::Call;

/// What to list; `ListQuery::default()` lists everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListQuery {
    /// Records per page; the client's `page_size` when unset.
    pub page_size: Option<u32>,
    /// Only records updated at or after this time (`lastupdatefromdate`, e.g.
    /// `2026-08-01T06:30:00`).
    pub updated_since: Option<String>,
    /// Halo's free-text `search`.
    pub search: Option<String>,
    /// Custom fields to include in each record (lists leave them out unless asked).
    pub include_custom_fields: Vec<u64>,
    /// Any other list parameter: `client_id`, `site_id`, `user_id`, `ticket_id`, `domain`,
    /// `includeinactive`, ...
    pub filters: Vec<(String, String)>,
}

impl ListQuery {
    /// Adds a list parameter.
    pub fn filter(mut self, name: &str, value: impl ToString) -> ListQuery {
        self.filters.push((name.to_string(), value.to_string()));
        self
    }

    /// Only records updated at or after `since`.
    pub fn updated_since(mut self, since: impl Into<String>) -> ListQuery {
        self.updated_since = Some(since.into());
        self
    }

    /// Only records updated at or after `millis` on the scale of Halo's `last_update` values
    /// (zone-less, to the millisecond).
    pub fn updated_since_millis(self, millis: i64) -> ListQuery {
        self.updated_since(crate::civil::iso_datetime(millis))
    }

    fn parameters(&self, page_size: u32, page_no: u32) -> Vec<(String, String)> {
        let mut parameters = vec![
            ("pageinate".to_string(), "true".to_string()),
            ("page_size".to_string(), page_size.to_string()),
            ("page_no".to_string(), page_no.to_string()),
        ];
        if let Some(since) = &self.updated_since {
            parameters.push(("lastupdatefromdate".into(), since.clone()));
        }
        if let Some(search) = &self.search {
            parameters.push(("search".into(), search.clone()));
        }
        if !self.include_custom_fields.is_empty() {
            let ids: Vec<String> = self
                .include_custom_fields
                .iter()
                .map(u64::to_string)
                .collect();
            parameters.push(("include_custom_fields".into(), ids.join(",")));
        }
        parameters.extend(self.filters.iter().cloned());
        parameters
    }
}

/// One answer to a list call, read from either envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub records: Vec<Value>,
    /// Total matches across all pages, when Halo says.
    pub record_count: Option<u64>,
    /// The page size Halo used, when it says.
    pub page_size: Option<u64>,
    /// Whether the answer was a bare array.
    pub bare: bool,
}

/// The key Halo wraps an entity's list in.
fn envelope_key(entity: &str) -> Option<&'static str> {
    Some(match entity.to_ascii_lowercase().as_str() {
        "client" => "clients",
        "site" => "sites",
        "users" => "users",
        "tickets" | "opportunities" => "tickets",
        "actions" => "actions",
        "attachment" => "attachments",
        "agent" => "agents",
        "tickettype" => "tickettypes",
        "externallink" => "externallinks",
        _ => return None,
    })
}

/// Reads a list answer. Unknown entities are read by looking for the one list of records in
/// the envelope.
pub fn read_page(entity: &str, answer: Value) -> Result<Page, HaloError> {
    match answer {
        Value::Array(records) => Ok(Page {
            records,
            record_count: None,
            page_size: None,
            bare: true,
        }),
        Value::Null => Ok(Page {
            records: Vec::new(),
            record_count: None,
            page_size: None,
            bare: true,
        }),
        Value::Object(mut envelope) => {
            let record_count = number(&envelope, "record_count");
            let page_size = number(&envelope, "page_size");
            let key = envelope_key(entity)
                .filter(|key| envelope.get(*key).is_some_and(Value::is_array))
                .map(str::to_string)
                .or_else(|| records_key(&envelope));
            let records = match key.and_then(|key| envelope.remove(&key)) {
                Some(Value::Array(records)) => records,
                _ if record_count == Some(0) => Vec::new(),
                _ => {
                    return Err(HaloError::Unexpected {
                        entity: entity.to_string(),
                        message: format!(
                            "the list answer has no list of records (keys: {})",
                            envelope.keys().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    })
                }
            };
            Ok(Page {
                records,
                record_count,
                page_size,
                bare: false,
            })
        }
        other => Err(HaloError::Unexpected {
            entity: entity.to_string(),
            message: format!("expected a list, got {}", kind_of(&other)),
        }),
    }
}

/// The envelope's list of records when its key is not known: the first array of objects
/// (views also carry `columns`, which are not records).
fn records_key(envelope: &Map<String, Value>) -> Option<String> {
    envelope
        .iter()
        .find(|(key, value)| {
            !key.starts_with("columns")
                && value
                    .as_array()
                    .is_some_and(|items| items.iter().all(Value::is_object))
        })
        .map(|(key, _)| key.clone())
}

fn number(envelope: &Map<String, Value>, key: &str) -> Option<u64> {
    envelope.get(key).and_then(|value| {
        value
            .as_u64()
            .or_else(|| value.as_f64().map(|number| number as u64))
    })
}

/// Where paging stands after a page; pure, so the stop rule is testable on its own.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    pub seen: u64,
    previous_first: Option<Value>,
}

impl Progress {
    /// Takes in a page; says whether to keep the page and whether another page is wanted.
    pub fn after(&mut self, page: &Page, asked_page_size: u32) -> (bool, bool) {
        if page.records.is_empty() {
            return (false, false);
        }
        let first = page.records[0].get("id").cloned();
        if first.is_some() && first == self.previous_first {
            // The same page again: this endpoint ignores paging and has sent everything.
            return (false, false);
        }
        self.previous_first = first;
        let length = page.records.len() as u64;
        self.seen += length;
        let more = match page.record_count {
            // The count decides, not the page length: an instance that caps the page size
            // without saying so must not end the list early. A count gone stale (records deleted
            // meanwhile) costs one empty page.
            Some(total) => self.seen < total,
            // Without a count a short page is the last; a bare array longer than asked means
            // the endpoint does not page at all.
            None => length == page.page_size.unwrap_or(asked_page_size as u64).max(1),
        };
        (true, more)
    }
}

/// The pages of one list, fetched as they are consumed.
pub struct Pages<'a> {
    client: &'a HaloClient,
    entity: String,
    query: ListQuery,
    page_size: u32,
    page_no: u32,
    progress: Progress,
    done: bool,
    /// How many records the list has in all, as Halo said on the last page.
    total: Option<u64>,
}

impl<'a> Pages<'a> {
    /// How many records the list has in all (`record_count`), once a page has been read and
    /// when Halo says.
    pub fn total(&self) -> Option<u64> {
        self.total
    }

    /// The same pages, each with [`Pages::total`] as it stood after it: for a reader on
    /// another thread (see `crate::prefetch`), which cannot ask the iterator afterwards.
    pub fn with_totals(mut self) -> impl Iterator<Item = PageWithTotal> + Send + 'a {
        std::iter::from_fn(move || {
            let page = self.next()?;
            Some(page.map(|records| (records, self.total)))
        })
    }
}

/// A page's records and the list's `record_count`, when Halo said it.
pub type PageWithTotal = Result<(Vec<Value>, Option<u64>), HaloError>;

impl Iterator for Pages<'_> {
    type Item = Result<Vec<Value>, HaloError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if let Err(error) = check_entity(&self.entity) {
            self.done = true;
            return Some(Err(error));
        }
        let page = self
            .client
            .page(&self.entity, &self.query, self.page_size, self.page_no);
        let page = match page {
            Ok(page) => page,
            Err(error) => {
                self.done = true;
                return Some(Err(error));
            }
        };
        self.total = page.record_count.or(self.total);
        let (keep, more) = self.progress.after(&page, self.page_size);
        self.done = !more;
        self.page_no += 1;
        keep.then_some(Ok(page.records))
    }
}

/// Why a read of numbered pages stopped before its last number.
enum Halt<E> {
    /// The list has no more records: an empty or repeated page, an error page, the count met.
    Ended,
    /// The caller's error.
    Caller(E),
}

impl HaloClient {
    /// Page `page_no` of `entity` matching `query`.
    fn page(
        &self,
        entity: &str,
        query: &ListQuery,
        page_size: u32,
        page_no: u32,
    ) -> Result<Page, HaloError> {
        let call = Call::get(
            entity,
            entity.to_string(),
            query.parameters(page_size, page_no),
        );
        self.service
            .json(&call)
            .and_then(|answer| read_page(entity, answer))
    }

    /// Every page of `entity` matching `query`, each with the list's `record_count`, handed to
    /// `consume` in order, as [`HaloClient::list`] pages them. The first page is read alone;
    /// when it gives the count and more pages follow, the rest of the count is requested
    /// `pages_in_flight` pages at a time (numbered by the first page's length, which is the
    /// page size Halo used), and pages past it, for records added meanwhile, one after the
    /// other. The same rules end the list: an empty page, one that repeats the page before (an
    /// endpoint that ignores paging), an error page, or the count met.
    pub fn each_page<E>(
        &self,
        entity: &str,
        query: &ListQuery,
        mut consume: impl FnMut(PageWithTotal) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut pages = self.list(entity, query);
        let Some(first) = pages.next() else {
            return Ok(());
        };
        let size = first.as_ref().map_or(0, Vec::len) as u64;
        let in_flight = self.options.pages_in_flight;
        let counted = pages
            .total
            .filter(|_| first.is_ok() && !pages.done && size > 0 && in_flight > 1);
        consume(first.map(|records| (records, pages.total)))?;
        if let Some(total) = counted {
            let last = u32::try_from(total.div_ceil(size)).unwrap_or(u32::MAX);
            let asked = pages.page_size;
            let read = crate::prefetch::each_numbered(
                2..=last,
                in_flight,
                |number| self.page(entity, query, asked, number),
                |page| match page {
                    Err(error) => {
                        consume(Err(error)).map_err(Halt::Caller)?;
                        Err(Halt::Ended)
                    }
                    Ok(page) => {
                        pages.total = page.record_count.or(pages.total);
                        let (keep, more) = pages.progress.after(&page, asked);
                        if keep {
                            consume(Ok((page.records, pages.total))).map_err(Halt::Caller)?;
                        }
                        match more && keep {
                            true => Ok(()),
                            false => Err(Halt::Ended),
                        }
                    }
                },
            );
            match read {
                Err(Halt::Caller(error)) => return Err(error),
                Err(Halt::Ended) => return Ok(()),
                Ok(()) => pages.page_no = last.saturating_add(1),
            }
        }
        crate::prefetch::each_ahead(pages.with_totals(), consume)
    }

    /// The records of `entity` matching `query`, a page at a time.
    pub fn list(&self, entity: &str, query: &ListQuery) -> Pages<'_> {
        Pages {
            client: self,
            entity: entity.to_string(),
            page_size: query.page_size.unwrap_or(self.options.page_size).max(1),
            query: query.clone(),
            page_no: 1,
            progress: Progress::default(),
            done: false,
            total: None,
        }
    }

    /// How many records of `entity` match `query`, as Halo counts them (`record_count`), in
    /// one call for a one-record page; `None` when Halo does not say.
    pub fn count(&self, entity: &str, query: &ListQuery) -> Result<Option<u64>, HaloError> {
        check_entity(entity)?;
        let call = Call::get(entity, entity.to_string(), query.parameters(1, 1));
        let answer = self.service.json(&call)?;
        Ok(read_page(entity, answer)?.record_count)
    }

    /// The same records one by one.
    pub fn records<'a>(
        &'a self,
        entity: &str,
        query: &ListQuery,
    ) -> impl Iterator<Item = Result<Value, HaloError>> + 'a {
        self.list(entity, query).flat_map(|page| match page {
            Ok(records) => records.into_iter().map(Ok).collect::<Vec<_>>(),
            Err(error) => vec![Err(error)],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn records(from: u64, count: u64) -> Vec<Value> {
        (from..from + count).map(|id| json!({ "id": id })).collect()
    }

    fn wrapped(from: u64, count: u64, total: u64, page_size: u64) -> Page {
        read_page(
            "Users",
            json!({ "page_no": 1, "page_size": page_size, "record_count": total, "users": records(from, count) }),
        )
        .unwrap()
    }

    #[test]
    fn stops_at_record_count() {
        let mut progress = Progress::default();
        assert_eq!(progress.after(&wrapped(1, 10, 25, 10), 10), (true, true));
        assert_eq!(progress.after(&wrapped(11, 10, 25, 10), 10), (true, true));
        assert_eq!(progress.after(&wrapped(21, 5, 25, 10), 10), (true, false));
        assert_eq!(progress.seen, 25);
    }

    #[test]
    fn exact_multiple_stops_without_an_extra_call() {
        let mut progress = Progress::default();
        assert_eq!(progress.after(&wrapped(1, 10, 20, 10), 10), (true, true));
        assert_eq!(progress.after(&wrapped(11, 10, 20, 10), 10), (true, false));
    }

    #[test]
    fn a_silently_capped_page_does_not_end_the_list() {
        // Asked for 500, Halo capped tickets at 100 (said or not): the count says go on.
        let mut progress = Progress::default();
        let page = read_page(
            "Tickets",
            json!({ "record_count": 250, "tickets": records(1, 100) }),
        )
        .unwrap();
        assert_eq!(progress.after(&page, 500), (true, true));
    }

    #[test]
    fn a_stale_count_ends_at_the_empty_page() {
        // Records deleted while paging: the count promised 25, only 17 remain.
        let mut progress = Progress::default();
        assert_eq!(progress.after(&wrapped(1, 10, 25, 10), 10), (true, true));
        assert_eq!(progress.after(&wrapped(11, 7, 25, 10), 10), (true, true));
        assert_eq!(progress.after(&wrapped(0, 0, 17, 10), 10), (false, false));
    }

    #[test]
    fn without_a_count_a_short_page_is_the_last() {
        let mut progress = Progress::default();
        let short = read_page("Agent", Value::Array(records(1, 7))).unwrap();
        assert_eq!(progress.after(&short, 10), (true, false));
    }

    #[test]
    fn bare_arrays_page_until_short_or_repeated() {
        let mut progress = Progress::default();
        let full = read_page("Agent", Value::Array(records(1, 10))).unwrap();
        assert!(full.bare);
        assert_eq!(progress.after(&full, 10), (true, true));
        // The endpoint ignored paging and sent the first page again: drop it and stop.
        assert_eq!(progress.after(&full, 10), (false, false));
        let mut progress = Progress::default();
        let long = read_page("TicketType", Value::Array(records(1, 40))).unwrap();
        assert_eq!(progress.after(&long, 10), (true, false));
    }

    #[test]
    fn empty_page_stops() {
        let mut progress = Progress::default();
        let empty = read_page("Client", json!({ "record_count": 0, "clients": [] })).unwrap();
        assert_eq!(progress.after(&empty, 10), (false, false));
        let no_key = read_page("Client", json!({ "record_count": 0 })).unwrap();
        assert!(no_key.records.is_empty());
    }

    #[test]
    fn envelopes_by_entity_and_by_shape() {
        let page = read_page(
            "opportunities",
            json!({ "record_count": 1, "tickets": [{ "id": 4 }] }),
        )
        .unwrap();
        assert_eq!(page.records, vec![json!({ "id": 4 })]);
        let unknown = read_page(
            "CRMNote",
            json!({ "record_count": 1, "columns": [], "notes": [{ "id": 9 }] }),
        )
        .unwrap();
        assert_eq!(unknown.records, vec![json!({ "id": 9 })]);
        let error = read_page("Users", json!({ "record_count": 3 })).unwrap_err();
        assert!(error.to_string().contains("no list of records"), "{error}");
        assert!(read_page("Users", json!("text")).is_err());
    }

    #[test]
    fn list_parameters() {
        let query = ListQuery {
            include_custom_fields: vec![3, 7],
            search: Some("acme".into()),
            ..ListQuery::default()
        }
        .updated_since_millis(crate::civil::parse_datetime("2026-08-01T06:30:00Z").unwrap())
        .filter("client_id", 12);
        let parameters = query.parameters(50, 2);
        let text: Vec<String> = parameters.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            text,
            vec![
                "pageinate=true",
                "page_size=50",
                "page_no=2",
                "lastupdatefromdate=2026-08-01T06:30:00.000",
                "search=acme",
                "include_custom_fields=3,7",
                "client_id=12"
            ]
        );
    }
}
