//! [`AddressBookStore`] on the database: contacts with their digit and tag index rows, and tags.

use async_trait::async_trait;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Text};
use kith_domain::addressbook::{
    Contact, ContactDraft, ContactFields, ContactId, ContactPage, ContactQuery, ImportPlan,
    ImportReport, ImportStep, Revision, Tag, TagId, TagName, Window,
};
use kith_domain::ports::{AddressBookStore, ContactChange};
use kith_domain::{DomainError, DomainResult, Millis, UserId};

use crate::conn::{execute_native, write_tx, DbConn};
use crate::error::StoreError;
use crate::relationships::record_change;
use crate::schema::{changes, contact_digits, contact_tags, contact_terms, contacts, tags, users};
use crate::store::{to_user_id, Store};

/// The `changes.kind` of a change to a contact (`subject` is its id).
const CHANGE_KIND_CONTACT: &str = "contact";
/// The `changes.kind` of a change to a tag (`subject` is its id).
const CHANGE_KIND_TAG: &str = "tag";

/// A contact as stored; also the row type of the raw search query.
#[derive(Queryable, QueryableByName, Selectable)]
#[diesel(table_name = contacts)]
pub(crate) struct ContactRow {
    id: i64,
    rev: String,
    name: String,
    numbers: String,
    emails: String,
    tag_ids: String,
    note: Option<String>,
    created_at: i64,
    modified_at: Option<i64>,
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("contacts.{what} does not hold a valid value"))
}

impl ContactRow {
    /// Validates the stored content again, so a row edited behind our back cannot leak out.
    pub(crate) fn into_contact(self) -> Result<Contact, StoreError> {
        let numbers: Vec<(String, String)> =
            serde_json::from_str(&self.numbers).map_err(|_| corrupt("numbers"))?;
        let emails: Vec<(String, String)> =
            serde_json::from_str(&self.emails).map_err(|_| corrupt("emails"))?;
        let tag_ids = self.tag_ids.split_whitespace().map(str::to_owned).collect();
        let fields = ContactFields::new(ContactDraft {
            name: self.name,
            numbers,
            emails,
            tag_ids,
            note: self.note,
        })
        .map_err(|_| corrupt("content"))?;
        Ok(Contact {
            id: ContactId::from_stored(self.id).map_err(|_| corrupt("id"))?,
            rev: Revision::parse("rev", &self.rev).map_err(|_| corrupt("rev"))?,
            fields,
            created_at: self.created_at,
            modified_at: self.modified_at,
        })
    }
}

/// The columns a contact write sets. `None` writes NULL.
#[derive(Insertable, AsChangeset)]
#[diesel(
    table_name = contacts,
    treat_none_as_null = true,
    treat_none_as_default_value = false
)]
struct ContactValues {
    rev: String,
    name: String,
    name_lower: String,
    numbers: String,
    emails: String,
    emails_lower: String,
    tag_ids: String,
    note: Option<String>,
    created_at: i64,
    modified_at: Option<i64>,
}

impl ContactValues {
    fn new(c: &Contact) -> Result<Self, StoreError> {
        let f = &c.fields;
        let pairs = |v: Vec<(&str, &str)>| {
            serde_json::to_string(&v).map_err(|e| StoreError::Internal(e.to_string()))
        };
        Ok(Self {
            rev: c.rev.to_string(),
            name: f.name().as_str().to_owned(),
            name_lower: f.name().lower(),
            numbers: pairs(f.numbers().iter().map(|n| (n.kind(), n.number())).collect())?,
            emails: pairs(f.emails().iter().map(|e| (e.kind(), e.email())).collect())?,
            emails_lower: f.emails_lower(),
            tag_ids: f
                .tag_ids()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" "),
            note: f.note().map(str::to_owned),
            created_at: c.created_at,
            modified_at: c.modified_at,
        })
    }
}

/// A stored tag.
#[derive(Queryable, Selectable)]
#[diesel(table_name = tags)]
pub(crate) struct TagRow {
    id: i64,
    name: String,
    created_at: i64,
    modified_at: Option<i64>,
}

impl TagRow {
    pub(crate) fn into_tag(self) -> Result<Tag, StoreError> {
        Ok(Tag {
            id: TagId::from_stored(self.id)
                .map_err(|_| StoreError::Corrupt("tags.id out of range".to_owned()))?,
            name: TagName::new(self.name)
                .map_err(|_| StoreError::Corrupt("tags.name is not a valid name".to_owned()))?,
            created_at: self.created_at,
            modified_at: self.modified_at,
        })
    }
}

/// Refuses tags that are not the owner's, naming the first.
fn check_tags(conn: &mut DbConn, owner: i64, fields: &ContactFields) -> Result<(), StoreError> {
    let wanted: Vec<i64> = fields.tag_ids().iter().map(|t| t.get()).collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let found: Vec<i64> = tags::table
        .filter(tags::owner.eq(owner))
        .filter(tags::id.eq_any(&wanted))
        .select(tags::id)
        .load(conn)?;
    match fields.tag_ids().iter().find(|t| !found.contains(&t.get())) {
        Some(missing) => Err(StoreError::Rule(DomainError::invalid(
            "tag_ids",
            format!("unknown tag \"{missing}\""),
        ))),
        None => Ok(()),
    }
}

/// Rows per multi-row insert: far below SQLite's 32,766 bound parameters at three a row.
const INSERT_CHUNK: usize = 1000;

/// Deletes a contact's derived index rows. They carry no foreign key (migration 000005 says
/// why), so every path that deletes or rewrites a contact calls this in its transaction.
fn delete_index(conn: &mut DbConn, owner: i64, id: i64) -> Result<(), StoreError> {
    diesel::delete(
        contact_terms::table
            .filter(contact_terms::owner.eq(owner))
            .filter(contact_terms::contact_id.eq(id)),
    )
    .execute(conn)?;
    diesel::delete(
        contact_digits::table
            .filter(contact_digits::owner.eq(owner))
            .filter(contact_digits::contact_id.eq(id)),
    )
    .execute(conn)?;
    diesel::delete(
        contact_tags::table
            .filter(contact_tags::owner.eq(owner))
            .filter(contact_tags::contact_id.eq(id)),
    )
    .execute(conn)?;
    Ok(())
}

/// Replaces the term, digit and tag index rows of a contact with those of its content.
fn write_index(conn: &mut DbConn, owner: i64, c: &Contact) -> Result<(), StoreError> {
    let id = c.id.get();
    delete_index(conn, owner, id)?;
    // Multi-row VALUES renders on each backend's own connection, not on MultiBackend.
    let terms: Vec<_> = c
        .fields
        .text_terms()
        .into_iter()
        .map(|t| {
            (
                contact_terms::owner.eq(owner),
                contact_terms::term.eq(t),
                contact_terms::contact_id.eq(id),
            )
        })
        .collect();
    for chunk in terms.chunks(INSERT_CHUNK) {
        execute_native(
            conn,
            diesel::insert_into(contact_terms::table).values(chunk),
        )?;
    }
    let digits: Vec<_> = c
        .fields
        .digit_terms()
        .into_iter()
        .map(|d| {
            (
                contact_digits::owner.eq(owner),
                contact_digits::digits.eq(d),
                contact_digits::contact_id.eq(id),
            )
        })
        .collect();
    for chunk in digits.chunks(INSERT_CHUNK) {
        execute_native(
            conn,
            diesel::insert_into(contact_digits::table).values(chunk),
        )?;
    }
    let tagged: Vec<_> = c
        .fields
        .tag_ids()
        .iter()
        .map(|t| {
            (
                contact_tags::owner.eq(owner),
                contact_tags::tag_id.eq(t.get()),
                contact_tags::contact_id.eq(id),
            )
        })
        .collect();
    if !tagged.is_empty() {
        execute_native(
            conn,
            diesel::insert_into(contact_tags::table).values(&tagged),
        )?;
    }
    Ok(())
}

/// Reads one contact; PostgreSQL holds it `FOR UPDATE` when `lock` is set (SQLite's
/// `BEGIN IMMEDIATE` already keeps other writers out).
fn read_contact(
    conn: &mut DbConn,
    owner: i64,
    id: i64,
    lock: bool,
) -> Result<Option<Contact>, StoreError> {
    // `as_select` is typed by backend, so each arm builds its own query.
    let query = || contacts::table.find((owner, id));
    let row = match conn {
        DbConn::Pg(c) if lock => query()
            .select(ContactRow::as_select())
            .for_update()
            .first::<ContactRow>(c)
            .optional()?,
        DbConn::Pg(c) => query()
            .select(ContactRow::as_select())
            .first::<ContactRow>(c)
            .optional()?,
        DbConn::Sqlite(c) => query()
            .select(ContactRow::as_select())
            .first::<ContactRow>(c)
            .optional()?,
    };
    row.map(ContactRow::into_contact).transpose()
}

/// Overwrites a contact's row and index rows.
fn overwrite(conn: &mut DbConn, owner: i64, next: &Contact) -> Result<(), StoreError> {
    let updated = diesel::update(contacts::table.find((owner, next.id.get())))
        .set(ContactValues::new(next)?)
        .execute(conn)?;
    if updated != 1 {
        return Err(StoreError::Internal(
            "a locked contacts row vanished".to_owned(),
        ));
    }
    write_index(conn, owner, next)
}

/// The candidates of a keyword search, from index ranges only (`contact_terms`,
/// `contact_digits` and `contact_tags` keys), so the cost follows the matches, not the size of
/// the book; each arm is a single range, as SQLite scans the whole owner for an OR of two.
/// Parameters: $1 owner, $2..$3 the text-term range, $4..$7 two digit ranges, $8 tag
/// id. (SQLite numbers `$n` by first appearance, so each appears first in order.)
const HITS: &str = "WITH hits(id) AS ( \
     SELECT t.contact_id FROM contact_terms t WHERE t.owner = $1 AND t.term >= $2 AND t.term < $3 \
     UNION SELECT d.contact_id FROM contact_digits d \
         WHERE d.owner = $1 AND d.digits >= $4 AND d.digits < $5 \
     UNION SELECT d.contact_id FROM contact_digits d \
         WHERE d.owner = $1 AND d.digits >= $6 AND d.digits < $7 \
     UNION SELECT g.contact_id FROM contact_tags g WHERE g.owner = $1 AND g.tag_id = $8)";

/// The join of the candidates to their contacts; `CROSS JOIN` makes SQLite loop over the
/// candidates and look each contact up by key.
const HITS_JOIN: &str = "FROM hits h CROSS JOIN contacts c WHERE c.owner = $1 AND c.id = h.id";

/// For keywords longer than the indexed terms: the full check of a candidate ($9 the LIKE
/// pattern).
const RECHECK: &str =
    "AND (c.name_lower LIKE $9 ESCAPE '\\' OR c.emails_lower LIKE $9 ESCAPE '\\' \
     OR c.id IN (SELECT d.contact_id FROM contact_digits d \
         WHERE d.owner = $1 AND d.digits >= $4 AND d.digits < $5) \
     OR c.id IN (SELECT d.contact_id FROM contact_digits d \
         WHERE d.owner = $1 AND d.digits >= $6 AND d.digits < $7) \
     OR c.id IN (SELECT g.contact_id FROM contact_tags g WHERE g.owner = $1 AND g.tag_id = $8))";

/// The columns of a search row, in [`ContactRow`] order.
const ROW_COLUMNS: &str = "c.id, c.rev, c.name, c.numbers, c.emails, c.tag_ids, c.note, \
     c.created_at, c.modified_at";

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The half-open range of digit strings that start with `prefix` (`:` sorts right after `9`);
/// an empty range when there is no prefix.
fn digit_range(prefix: Option<&String>) -> (String, String) {
    match prefix {
        Some(p) => (p.clone(), format!("{p}:")),
        None => (String::new(), String::new()),
    }
}

/// The window's keyset condition (from parameter `$first`), limit and offset.
fn window_sql(first: usize) -> String {
    let (a, b, c, d, e) = (first, first + 1, first + 2, first + 3, first + 4);
    format!(
        "AND (${a} OR c.name_lower > ${b} OR (c.name_lower = ${b} AND c.id > ${c})) \
         ORDER BY c.name_lower, c.id LIMIT ${d} OFFSET ${e}"
    )
}

fn search(conn: &mut DbConn, owner: i64, query: &ContactQuery) -> Result<ContactPage, StoreError> {
    let items = i64::from(query.window.items());
    let (after, offset) = match &query.window {
        Window::Page { items, page } => {
            (None, i64::from(page.saturating_sub(1)) * i64::from(*items))
        }
        Window::After { after, .. } => (after.as_ref(), 0),
    };
    let after_name = after.map_or("", |a| a.name_lower.as_str());
    let after_id = after.map_or(0, |a| a.id.get());
    // One row more than asked tells the service whether another page follows.
    let limit = items + 1;

    let Some(kw) = query.keyword.as_ref() else {
        let total = diesel::sql_query("SELECT COUNT(*) AS n FROM contacts c WHERE c.owner = $1")
            .bind::<BigInt, _>(owner)
            .get_result::<Count>(conn)?
            .n;
        let rows: Vec<ContactRow> = diesel::sql_query(format!(
            "SELECT {ROW_COLUMNS} FROM contacts c WHERE c.owner = $1 {}",
            window_sql(2)
        ))
        .bind::<BigInt, _>(owner)
        .bind::<Bool, _>(after.is_none())
        .bind::<Text, _>(after_name)
        .bind::<BigInt, _>(after_id)
        .bind::<BigInt, _>(limit)
        .bind::<BigInt, _>(offset)
        .load(conn)?;
        return page_of(total, rows);
    };

    let like = kw.like_pattern();
    let text_lo = kw.text_prefix();
    // U+10FFFF sorts after every character, in UTF-8 byte order as in code points.
    let text_hi = format!("{text_lo}\u{10FFFF}");
    let (d1_lo, d1_hi) = digit_range(kw.digits.first());
    let (d2_lo, d2_hi) = digit_range(kw.digits.get(1));
    let tag = kw.tag.map_or(0, TagId::get);
    macro_rules! hit_binds {
        ($q:expr) => {
            $q.bind::<BigInt, _>(owner)
                .bind::<Text, _>(&text_lo)
                .bind::<Text, _>(&text_hi)
                .bind::<Text, _>(&d1_lo)
                .bind::<Text, _>(&d1_hi)
                .bind::<Text, _>(&d2_lo)
                .bind::<Text, _>(&d2_hi)
                .bind::<BigInt, _>(tag)
        };
    }
    macro_rules! window_binds {
        ($q:expr) => {
            $q.bind::<Bool, _>(after.is_none())
                .bind::<Text, _>(after_name)
                .bind::<BigInt, _>(after_id)
                .bind::<BigInt, _>(limit)
                .bind::<BigInt, _>(offset)
        };
    }
    let (total, rows): (i64, Vec<ContactRow>) = if kw.needs_recheck() {
        let total = hit_binds!(diesel::sql_query(format!(
            "{HITS} SELECT COUNT(*) AS n {HITS_JOIN} {RECHECK}"
        )))
        .bind::<Text, _>(&like)
        .get_result::<Count>(conn)?
        .n;
        let rows = window_binds!(hit_binds!(diesel::sql_query(format!(
            "{HITS} SELECT {ROW_COLUMNS} {HITS_JOIN} {RECHECK} {}",
            window_sql(10)
        )))
        .bind::<Text, _>(&like))
        .load(conn)?;
        (total, rows)
    } else {
        let total = hit_binds!(diesel::sql_query(format!(
            "{HITS} SELECT COUNT(*) AS n {HITS_JOIN}"
        )))
        .get_result::<Count>(conn)?
        .n;
        let rows = window_binds!(hit_binds!(diesel::sql_query(format!(
            "{HITS} SELECT {ROW_COLUMNS} {HITS_JOIN} {}",
            window_sql(9)
        ))))
        .load(conn)?;
        (total, rows)
    };
    page_of(total, rows)
}

fn page_of(total: i64, rows: Vec<ContactRow>) -> Result<ContactPage, StoreError> {
    Ok(ContactPage {
        total: u64::try_from(total).map_err(|_| StoreError::Internal("negative count".into()))?,
        rows: rows
            .into_iter()
            .map(ContactRow::into_contact)
            .collect::<Result<_, _>>()?,
    })
}

/// Maps a clash on a random id to a conflict the caller may retry, and the rest as usual.
fn clash(err: diesel::result::Error, what: &'static str) -> StoreError {
    match StoreError::from(err) {
        StoreError::Conflict(_) => StoreError::Conflict(what),
        other => other,
    }
}

/// Inserts a new contact with its index rows and, when `record` is set, its change entry.
pub(crate) fn insert_new(
    conn: &mut DbConn,
    owner: i64,
    contact: &Contact,
    record: bool,
) -> Result<(), StoreError> {
    diesel::insert_into(contacts::table)
        .values((
            contacts::owner.eq(owner),
            contacts::id.eq(contact.id.get()),
            ContactValues::new(contact)?,
        ))
        .execute(conn)
        .map_err(|e| clash(e, "contact"))?;
    write_index(conn, owner, contact)?;
    if record {
        record_change(
            conn,
            owner,
            CHANGE_KIND_CONTACT,
            contact.id.get(),
            contact.created_at,
        )?;
    }
    Ok(())
}

/// Records many changes of one owner with one version bump: PostgreSQL slows down
/// quadratically when one transaction updates the same `users` row thousands of times.
fn record_changes(
    conn: &mut DbConn,
    owner: i64,
    list: &[(&'static str, i64, Millis)],
) -> Result<(), StoreError> {
    let n =
        i64::try_from(list.len()).map_err(|_| StoreError::Internal("too many changes".into()))?;
    if n == 0 {
        return Ok(());
    }
    let last = diesel::update(users::table.find(owner))
        .set(users::version.eq(users::version + n))
        .returning(users::version)
        .get_result::<i64>(conn)
        .optional()?
        .ok_or(StoreError::NotFound("user"))?;
    let rows: Vec<_> = list
        .iter()
        .zip(last - n + 1..)
        .map(|(&(kind, subject, at), version)| {
            (
                changes::owner.eq(owner),
                changes::version.eq(version),
                changes::kind.eq(kind),
                changes::subject.eq(Some(subject)),
                changes::at.eq(at),
            )
        })
        .collect();
    for chunk in rows.chunks(INSERT_CHUNK / 2) {
        execute_native(conn, diesel::insert_into(changes::table).values(chunk))?;
    }
    Ok(())
}

/// Inserts a tag with, when `record` is set, its change entry.
fn insert_tag_row(
    conn: &mut DbConn,
    owner: i64,
    tag: &Tag,
    record: bool,
) -> Result<(), StoreError> {
    diesel::insert_into(tags::table)
        .values((
            tags::owner.eq(owner),
            tags::id.eq(tag.id.get()),
            tags::name.eq(tag.name.as_str()),
            tags::created_at.eq(tag.created_at),
            tags::modified_at.eq(tag.modified_at),
        ))
        .execute(conn)
        .map_err(|e| clash(e, "tag"))?;
    if record {
        record_change(conn, owner, CHANGE_KIND_TAG, tag.id.get(), tag.created_at)?;
    }
    Ok(())
}

/// Applies an import plan inside one transaction.
fn import_tx(conn: &mut DbConn, owner: i64, plan: ImportPlan) -> Result<ImportReport, StoreError> {
    let mut by_name: std::collections::HashMap<String, TagId> = tags::table
        .filter(tags::owner.eq(owner))
        .select(TagRow::as_select())
        .load(conn)?
        .into_iter()
        .map(|row| row.into_tag().map(|t| (t.name.as_str().to_owned(), t.id)))
        .collect::<Result<_, _>>()?;
    let mut changes = Vec::new();
    for tag in &plan.new_tags {
        if !by_name.contains_key(tag.name.as_str()) {
            insert_tag_row(conn, owner, tag, false)?;
            changes.push((CHANGE_KIND_TAG, tag.id.get(), plan.now));
            by_name.insert(tag.name.as_str().to_owned(), tag.id);
        }
    }
    let mut report = ImportReport::default();
    for entry in &plan.entries {
        let ids: Vec<TagId> = entry
            .categories
            .iter()
            .filter_map(|c| by_name.get(c.as_str()).copied())
            .collect();
        // A stored number ends with these digits exactly when they are one of its suffixes.
        let matched: Option<i64> = if entry.match_digits.is_empty() {
            None
        } else {
            contact_digits::table
                .filter(contact_digits::owner.eq(owner))
                .filter(contact_digits::digits.eq_any(&entry.match_digits))
                .order(contact_digits::contact_id)
                .select(contact_digits::contact_id)
                .first(conn)
                .optional()?
        };
        let existing = match matched {
            Some(id) => read_contact(conn, owner, id, true)?,
            None => None,
        };
        match entry.step(existing.as_ref(), &ids, plan.now) {
            ImportStep::Create(c) => {
                insert_new(conn, owner, &c, false)?;
                changes.push((CHANGE_KIND_CONTACT, c.id.get(), plan.now));
                report.created += 1;
            }
            ImportStep::Merge(c) => {
                overwrite(conn, owner, &c)?;
                changes.push((CHANGE_KIND_CONTACT, c.id.get(), plan.now));
                report.merged += 1;
            }
            ImportStep::Skip(s) => report.skipped.push(s),
        }
    }
    record_changes(conn, owner, &changes)?;
    Ok(report)
}

#[async_trait]
impl AddressBookStore for Store {
    async fn insert_contact(&self, owner: UserId, contact: Contact) -> DomainResult<()> {
        let owner = owner.get();
        self.serial_write(move |conn| {
            write_tx(conn, |conn| {
                check_tags(conn, owner, &contact.fields)?;
                insert_new(conn, owner, &contact, true)
            })
        })
        .await
    }

    async fn contact(&self, owner: UserId, id: ContactId) -> DomainResult<Option<Contact>> {
        self.run(move |conn| read_contact(conn, owner.get(), id.get(), false))
            .await
    }

    async fn update_contact(
        &self,
        owner: UserId,
        id: ContactId,
        change: ContactChange,
    ) -> DomainResult<Contact> {
        let owner = owner.get();
        self.serial_write(move |conn| {
            write_tx(conn, |conn| {
                let current = read_contact(conn, owner, id.get(), true)?
                    .ok_or(StoreError::NotFound("contact"))?;
                let next = change(&current).map_err(StoreError::Rule)?;
                check_tags(conn, owner, &next.fields)?;
                overwrite(conn, owner, &next)?;
                let at = next.modified_at.unwrap_or(next.created_at);
                record_change(conn, owner, CHANGE_KIND_CONTACT, id.get(), at)?;
                Ok(next)
            })
        })
        .await
    }

    async fn delete_contact(
        &self,
        owner: UserId,
        id: ContactId,
        expected: Option<Revision>,
        now: Millis,
    ) -> DomainResult<()> {
        let owner = owner.get();
        self.serial_write(move |conn| {
            write_tx(conn, |conn| {
                let current = read_contact(conn, owner, id.get(), true)?
                    .ok_or(StoreError::NotFound("contact"))?;
                current
                    .check_rev(expected.as_ref())
                    .map_err(StoreError::Rule)?;
                delete_index(conn, owner, id.get())?;
                diesel::delete(contacts::table.find((owner, id.get()))).execute(conn)?;
                record_change(conn, owner, CHANGE_KIND_CONTACT, id.get(), now)
            })
        })
        .await
    }

    async fn search_contacts(
        &self,
        owner: UserId,
        query: ContactQuery,
    ) -> DomainResult<ContactPage> {
        self.run(move |conn| search(conn, owner.get(), &query))
            .await
    }

    async fn insert_tag(&self, owner: UserId, tag: Tag) -> DomainResult<()> {
        let owner = owner.get();
        self.serial_write(move |conn| {
            write_tx(conn, |conn| insert_tag_row(conn, owner, &tag, true))
        })
        .await
    }

    async fn tags(&self, owner: UserId) -> DomainResult<Vec<Tag>> {
        self.run(move |conn| {
            tags::table
                .filter(tags::owner.eq(owner.get()))
                .order((tags::name, tags::id))
                .select(TagRow::as_select())
                .load(conn)?
                .into_iter()
                .map(TagRow::into_tag)
                .collect()
        })
        .await
    }

    async fn rename_tag(
        &self,
        owner: UserId,
        id: TagId,
        name: TagName,
        now: Millis,
    ) -> DomainResult<Tag> {
        let owner = owner.get();
        self.serial_write(move |conn| {
            write_tx(conn, |conn| {
                let updated = diesel::update(tags::table.find((owner, id.get())))
                    .set((tags::name.eq(name.as_str()), tags::modified_at.eq(now)))
                    .execute(conn)?;
                if updated != 1 {
                    return Err(StoreError::NotFound("tag"));
                }
                record_change(conn, owner, CHANGE_KIND_TAG, id.get(), now)?;
                tags::table
                    .find((owner, id.get()))
                    .select(TagRow::as_select())
                    .first(conn)?
                    .into_tag()
            })
        })
        .await
    }

    async fn delete_tag(&self, owner: UserId, id: TagId, now: Millis) -> DomainResult<()> {
        let owner = owner.get();
        self.serial_write(move |conn| {
            write_tx(conn, |conn| {
                let tagged: Vec<i64> = contact_tags::table
                    .filter(contact_tags::owner.eq(owner))
                    .filter(contact_tags::tag_id.eq(id.get()))
                    .order(contact_tags::contact_id)
                    .select(contact_tags::contact_id)
                    .load(conn)?;
                let mut changes = Vec::with_capacity(tagged.len() + 1);
                for contact_id in tagged {
                    let Some(current) = read_contact(conn, owner, contact_id, true)? else {
                        continue;
                    };
                    let next = current.updated(current.fields.without_tag(id), now);
                    overwrite(conn, owner, &next)?;
                    changes.push((CHANGE_KIND_CONTACT, contact_id, now));
                }
                let deleted = diesel::delete(tags::table.find((owner, id.get()))).execute(conn)?;
                if deleted != 1 {
                    return Err(StoreError::NotFound("tag"));
                }
                changes.push((CHANGE_KIND_TAG, id.get(), now));
                record_changes(conn, owner, &changes)
            })
        })
        .await
    }

    async fn import(&self, owner: UserId, plan: ImportPlan) -> DomainResult<ImportReport> {
        let owner = owner.get();
        self.serial_write(move |conn| write_tx(conn, |conn| import_tx(conn, owner, plan)))
            .await
    }

    async fn owner_region(&self, owner: UserId) -> DomainResult<Option<String>> {
        self.run(move |conn| {
            Ok(users::table
                .find(owner.get())
                .select(users::region)
                .first::<String>(conn)
                .optional()?)
        })
        .await
    }

    async fn findable_users(&self, phones: Vec<String>) -> DomainResult<Vec<(String, UserId)>> {
        self.run(move |conn| {
            let mut out = Vec::new();
            // Chunks keep the IN list far below either backend's bound-parameter limit.
            for chunk in phones.chunks(500) {
                let rows: Vec<(String, i64)> = users::table
                    .filter(users::phone.eq_any(chunk))
                    .filter(users::registered)
                    .filter(users::findable_by_phone)
                    .select((users::phone, users::id))
                    .load(conn)?;
                for (phone, id) in rows {
                    out.push((phone, to_user_id(id)?));
                }
            }
            Ok(out)
        })
        .await
    }
}
