//! The address book (document 002): validated contacts and tags, CouchDB-style revisions, keyword search and its service.

use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::error::{DomainError, DomainResult};
use crate::ids::{Millis, UserId};
use crate::ports::{AddressBookStore, Clock, ContactChange, Random};

/// vCard and CSV reading and writing.
pub mod vcard;

/// The longest contact name, in characters.
pub const NAME_MAX: usize = 256;
/// The most numbers one contact holds.
pub const NUMBERS_MAX: usize = 50;
/// The most emails one contact holds.
pub const EMAILS_MAX: usize = 50;
/// The most tags one contact carries.
pub const TAGS_MAX: usize = 100;
/// The longest note, in characters.
pub const NOTE_MAX: usize = 10_000;
/// The longest `type` label of a number or an email, in characters.
pub const LABEL_MAX: usize = 64;
/// The longest number as written, in characters.
pub const NUMBER_MAX: usize = 64;
/// The most digits a number may hold (E.164 allows 15; extensions add a few).
pub const DIGITS_MAX: usize = 32;
/// The longest email address (RFC 5321's path limit).
pub const EMAIL_MAX: usize = 254;
/// The longest tag name, in characters.
pub const TAG_NAME_MAX: usize = 64;
/// The longest search keyword, in characters.
pub const KEYWORD_MAX: usize = 256;
/// How many characters of each text suffix the search index keeps; longer keywords are
/// found by their first this-many characters and then checked in full.
pub const TERM_CHARS: usize = 24;
/// Rows per page when the client does not say.
pub const PAGE_DEFAULT: u32 = 20;
/// The most rows one page holds.
pub const PAGE_MAX: u32 = 1000;
/// The most operations in one batch call.
pub const BATCH_MAX: usize = 200;

fn char_len(s: &str) -> usize {
    s.chars().count()
}

fn no_controls(field: &'static str, what: &str, s: &str, allow_newlines: bool) -> DomainResult<()> {
    let bad = s
        .chars()
        .any(|c| c.is_control() && !(allow_newlines && matches!(c, '\n' | '\r' | '\t')));
    if bad {
        return Err(DomainError::invalid(
            field,
            format!("{what} must not contain control characters"),
        ));
    }
    Ok(())
}

macro_rules! opaque_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(i64);

        impl $name {
            /// Turns 64 random bits into an id (positive, so it fits a signed column).
            pub fn from_random(bits: u64) -> Self {
                let n = (bits >> 1) as i64;
                Self(if n == 0 { 1 } else { n })
            }
            /// Parses the 16-hex-digit form clients see. Anything else names no such thing,
            /// so it is `NotFound`, never a parse error that would tell ids apart.
            pub fn parse(raw: &str) -> DomainResult<Self> {
                Self::try_parse(raw).ok_or(DomainError::NotFound($what))
            }
            /// Like [`Self::parse`], without an error.
            pub fn try_parse(raw: &str) -> Option<Self> {
                if raw.len() != 16 || !raw.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                i64::from_str_radix(raw, 16).ok().filter(|n| *n > 0).map(Self)
            }
            /// Checks a stored number.
            pub fn from_stored(raw: i64) -> DomainResult<Self> {
                if raw > 0 {
                    Ok(Self(raw))
                } else {
                    Err(DomainError::Internal(format!("stored {} id out of range", $what)))
                }
            }
            /// The number, for storage.
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:016x}", self.0)
            }
        }
    };
}

opaque_id!(
    /// A contact's id: opaque to clients (16 hex digits), a positive number in storage.
    ContactId,
    "contact"
);
opaque_id!(
    /// A tag's id: opaque to clients (16 hex digits), a positive number in storage.
    TagId,
    "tag"
);

/// A CouchDB-style revision `N-<hash>`: N counts the changes, the hash names the content.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Revision {
    seq: i64,
    hash: String,
}

impl Revision {
    /// The revision after `prev` (the first when `None`) for this content.
    pub fn next(prev: Option<&Revision>, fields: &ContactFields) -> Self {
        Self {
            seq: prev.map_or(1, |r| r.seq.saturating_add(1)),
            hash: fields.content_hash(),
        }
    }

    /// Parses `N-<32 hex>` as clients send it back. `field` names where it came from.
    pub fn parse(field: &'static str, raw: &str) -> DomainResult<Self> {
        let bad = || DomainError::invalid(field, "must be a revision like 1-<32 hex digits>");
        let raw = raw.trim().trim_matches('"');
        let (seq, hash) = raw.split_once('-').ok_or_else(bad)?;
        if seq.is_empty() || seq.len() > 18 || !seq.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let seq: i64 = seq.parse().map_err(|_| bad())?;
        if seq < 1 || hash.len() != 32 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        Ok(Self {
            seq,
            hash: hash.to_ascii_lowercase(),
        })
    }

    /// How many changes made this revision (1 for a new document).
    pub fn seq(&self) -> i64 {
        self.seq
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.seq, self.hash)
    }
}

/// One phone number of a contact: a free label and the number as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NumberEntry {
    kind: String,
    number: String,
}

impl NumberEntry {
    /// Validates a number: a label of at most 64 characters, and 1 to 64 characters holding
    /// 1 to 32 digits and only phone punctuation besides.
    pub fn new(kind: impl Into<String>, number: impl Into<String>) -> DomainResult<Self> {
        let (kind, number) = (kind.into(), number.into());
        label("numbers", &kind)?;
        let n = char_len(&number);
        if n == 0 || n > NUMBER_MAX {
            return Err(DomainError::invalid(
                "numbers",
                format!("number must be 1 to {NUMBER_MAX} characters"),
            ));
        }
        let digits = number.chars().filter(char::is_ascii_digit).count();
        if digits == 0 || digits > DIGITS_MAX {
            return Err(DomainError::invalid(
                "numbers",
                format!("number must hold 1 to {DIGITS_MAX} digits"),
            ));
        }
        let allowed = |c: char| {
            c.is_ascii_digit()
                || matches!(
                    c,
                    ' ' | '+' | '-' | '(' | ')' | '.' | '/' | '#' | '*' | ',' | ';'
                )
                || matches!(c, 'x' | 'X' | 'e' | 'E' | 't' | 'T' | 'p' | 'P' | 'w' | 'W')
        };
        if !number.chars().all(allowed) {
            return Err(DomainError::invalid(
                "numbers",
                "number may hold only digits, spaces and + - ( ) . / # * , ;",
            ));
        }
        Ok(Self { kind, number })
    }

    /// The label (`type` in the API).
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The number as written.
    pub fn number(&self) -> &str {
        &self.number
    }

    /// The number's digits only, the form searches match.
    pub fn digits(&self) -> String {
        digits_of(&self.number)
    }
}

/// One email address of a contact: a free label and the address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmailEntry {
    kind: String,
    email: String,
}

impl EmailEntry {
    /// Validates an email: a label of at most 64 characters and a plausible address.
    pub fn new(kind: impl Into<String>, email: impl Into<String>) -> DomainResult<Self> {
        let (kind, email) = (kind.into(), email.into());
        label("emails", &kind)?;
        check_email(&email)?;
        Ok(Self { kind, email })
    }

    /// The label (`type` in the API).
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The address as written.
    pub fn email(&self) -> &str {
        &self.email
    }
}

fn label(field: &'static str, kind: &str) -> DomainResult<()> {
    if char_len(kind) > LABEL_MAX {
        return Err(DomainError::invalid(
            field,
            format!("type must be at most {LABEL_MAX} characters"),
        ));
    }
    no_controls(field, "type", kind, false)
}

/// A deliberately plain check: one `@`, a non-empty local part, a dotted domain of sane
/// labels, no spaces. Deliverability is the mail system's business.
fn check_email(email: &str) -> DomainResult<()> {
    let bad = |why: &str| DomainError::invalid("emails", format!("email {why}"));
    if email.is_empty() || email.len() > EMAIL_MAX {
        return Err(bad("must be 1 to 254 bytes"));
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("must not contain spaces"));
    }
    let (local, domain) = email
        .rsplit_once('@')
        .ok_or_else(|| bad("must contain @"))?;
    if local.is_empty() || local.len() > 64 || local.contains('@') {
        return Err(bad("has a bad local part"));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    if labels.len() < 2 || !labels.iter().all(label_ok) {
        return Err(bad("has a bad domain"));
    }
    Ok(())
}

/// Only the ASCII digits of `s`.
pub fn digits_of(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// A contact's name: 1 to 256 characters, not blank.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContactName(String);

impl ContactName {
    /// Validates a name.
    pub fn new(raw: impl Into<String>) -> DomainResult<Self> {
        let raw = raw.into();
        let n = char_len(&raw);
        if n == 0 || n > NAME_MAX {
            return Err(DomainError::invalid(
                "name",
                format!("must be 1 to {NAME_MAX} characters"),
            ));
        }
        if raw.trim().is_empty() {
            return Err(DomainError::invalid("name", "must not be blank"));
        }
        no_controls("name", "name", &raw, false)?;
        Ok(Self(raw))
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The lower-cased name: the sort key and what name searches match.
    pub fn lower(&self) -> String {
        self.0.to_lowercase()
    }
}

/// A contact as a client sends it, before validation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactDraft {
    /// The name.
    pub name: String,
    /// `(type, number)` pairs.
    pub numbers: Vec<(String, String)>,
    /// `(type, email)` pairs.
    pub emails: Vec<(String, String)>,
    /// Tag ids as sent.
    pub tag_ids: Vec<String>,
    /// The optional note.
    pub note: Option<String>,
}

/// The validated content of a contact: everything its revision hash covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContactFields {
    name: ContactName,
    numbers: Vec<NumberEntry>,
    emails: Vec<EmailEntry>,
    tag_ids: Vec<TagId>,
    note: Option<String>,
}

impl ContactFields {
    /// Validates a draft. Errors name the field: `name`, `numbers`, `emails`, `tag_ids`, `note`.
    /// Repeated tag ids are kept once, in first-seen order.
    pub fn new(draft: ContactDraft) -> DomainResult<Self> {
        let ContactDraft {
            name,
            numbers,
            emails,
            tag_ids,
            note,
        } = draft;
        let name = ContactName::new(name)?;
        if numbers.len() > NUMBERS_MAX {
            return Err(DomainError::invalid(
                "numbers",
                format!("at most {NUMBERS_MAX} numbers"),
            ));
        }
        if emails.len() > EMAILS_MAX {
            return Err(DomainError::invalid(
                "emails",
                format!("at most {EMAILS_MAX} emails"),
            ));
        }
        if tag_ids.len() > TAGS_MAX {
            return Err(DomainError::invalid(
                "tag_ids",
                format!("at most {TAGS_MAX} tags"),
            ));
        }
        let numbers = numbers
            .into_iter()
            .map(|(k, n)| NumberEntry::new(k, n))
            .collect::<DomainResult<Vec<_>>>()?;
        let emails = emails
            .into_iter()
            .map(|(k, e)| EmailEntry::new(k, e))
            .collect::<DomainResult<Vec<_>>>()?;
        let mut tags: Vec<TagId> = Vec::with_capacity(tag_ids.len());
        for raw in &tag_ids {
            let id = TagId::try_parse(raw)
                .ok_or_else(|| DomainError::invalid("tag_ids", format!("unknown tag {raw:?}")))?;
            if !tags.contains(&id) {
                tags.push(id);
            }
        }
        if let Some(note) = &note {
            if char_len(note) > NOTE_MAX {
                return Err(DomainError::invalid(
                    "note",
                    format!("must be at most {NOTE_MAX} characters"),
                ));
            }
            no_controls("note", "note", note, true)?;
        }
        Ok(Self {
            name,
            numbers,
            emails,
            tag_ids: tags,
            note,
        })
    }

    /// The name.
    pub fn name(&self) -> &ContactName {
        &self.name
    }
    /// The numbers, in the client's order.
    pub fn numbers(&self) -> &[NumberEntry] {
        &self.numbers
    }
    /// The emails, in the client's order.
    pub fn emails(&self) -> &[EmailEntry] {
        &self.emails
    }
    /// The tags, in the client's order.
    pub fn tag_ids(&self) -> &[TagId] {
        &self.tag_ids
    }
    /// The note.
    pub fn note(&self) -> Option<&str> {
        self.note.as_deref()
    }

    /// The same content without `tag`.
    pub fn without_tag(&self, tag: TagId) -> Self {
        let mut next = self.clone();
        next.tag_ids.retain(|t| *t != tag);
        next
    }

    /// The lower-cased emails joined by newlines: what email searches match.
    pub fn emails_lower(&self) -> String {
        self.emails
            .iter()
            .map(|e| e.email.to_lowercase())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Every digit string a number search should find this contact by: each suffix of each
    /// number's digits, so that a prefix match on them is a substring match on the number.
    pub fn digit_terms(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for n in &self.numbers {
            let d = n.digits();
            for start in 0..d.len() {
                out.push(d[start..].to_owned());
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Every text a name or email search should find this contact by: each suffix (cut to
    /// [`TERM_CHARS`] characters) of the lower-cased name and of each lower-cased email, so
    /// that a prefix match on them is a match anywhere in the name or an address.
    pub fn text_terms(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let texts = std::iter::once(self.name.lower())
            .chain(self.emails.iter().map(|e| e.email.to_lowercase()));
        for text in texts {
            for (start, _) in text.char_indices() {
                out.push(text[start..].chars().take(TERM_CHARS).collect());
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The first 128 bits of SHA-256 over an unambiguous encoding of the content, in hex.
    fn content_hash(&self) -> String {
        let mut h = Sha256::new();
        // Each string is length-prefixed, so no two different contents encode alike.
        let mut put = |s: &str| {
            h.update((s.len() as u64).to_be_bytes());
            h.update(s.as_bytes());
        };
        put(self.name.as_str());
        put(&self.numbers.len().to_string());
        for n in &self.numbers {
            put(&n.kind);
            put(&n.number);
        }
        put(&self.emails.len().to_string());
        for e in &self.emails {
            put(&e.kind);
            put(&e.email);
        }
        put(&self.tag_ids.len().to_string());
        for t in &self.tag_ids {
            put(&t.to_string());
        }
        match &self.note {
            Some(note) => {
                put("note");
                put(note);
            }
            None => put("no-note"),
        }
        let digest = h.finalize();
        hex::encode(&digest[..16])
    }
}

/// A stored contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// Its id.
    pub id: ContactId,
    /// Its current revision.
    pub rev: Revision,
    /// Its content.
    pub fields: ContactFields,
    /// Creation instant.
    pub created_at: Millis,
    /// Last change; `None` until the first update.
    pub modified_at: Option<Millis>,
}

impl Contact {
    /// A new contact at revision 1.
    pub fn create(id: ContactId, fields: ContactFields, now: Millis) -> Self {
        Self {
            id,
            rev: Revision::next(None, &fields),
            fields,
            created_at: now,
            modified_at: None,
        }
    }

    /// This contact with new content, one revision on.
    pub fn updated(&self, fields: ContactFields, now: Millis) -> Self {
        Self {
            id: self.id,
            rev: Revision::next(Some(&self.rev), &fields),
            fields,
            created_at: self.created_at,
            modified_at: Some(now),
        }
    }

    /// Refuses the change unless `expected` (when given) is the current revision.
    pub fn check_rev(&self, expected: Option<&Revision>) -> DomainResult<()> {
        match expected {
            Some(rev) if *rev != self.rev => Err(DomainError::Conflict("_rev")),
            _ => Ok(()),
        }
    }
}

/// A tag's name: 1 to 64 characters, not blank.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TagName(String);

impl TagName {
    /// Validates a tag name.
    pub fn new(raw: impl Into<String>) -> DomainResult<Self> {
        let raw = raw.into();
        let n = char_len(&raw);
        if n == 0 || n > TAG_NAME_MAX || raw.trim().is_empty() {
            return Err(DomainError::invalid(
                "name",
                format!("must be 1 to {TAG_NAME_MAX} characters, not blank"),
            ));
        }
        no_controls("name", "name", &raw, false)?;
        Ok(Self(raw))
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A stored tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// Its id.
    pub id: TagId,
    /// Its name.
    pub name: TagName,
    /// Creation instant.
    pub created_at: Millis,
    /// Last rename; `None` until then.
    pub modified_at: Option<Millis>,
}

/// A normalised search keyword.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyword {
    /// Lower-cased, for name and email matches (anywhere in them).
    pub lower: String,
    /// Digit prefixes to look up among numbers' digit suffixes: the keyword's digits, and
    /// for a keyword written with a country code, its national digits too.
    pub digits: Vec<String>,
    /// The tag the keyword names, if it has a tag id's form.
    pub tag: Option<TagId>,
}

impl Keyword {
    /// Normalises a raw keyword; blank means no filter (`None`).
    pub fn new(raw: &str) -> DomainResult<Option<Self>> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Ok(None);
        }
        if char_len(trimmed) > KEYWORD_MAX {
            return Err(DomainError::invalid(
                "keyword",
                format!("must be at most {KEYWORD_MAX} characters"),
            ));
        }
        let phone_like = trimmed
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '+' | '-' | '(' | ')' | '.'));
        let mut digits = Vec::new();
        let d = digits_of(trimmed);
        if phone_like && !d.is_empty() && d.len() <= DIGITS_MAX {
            let international = trimmed.starts_with('+') || d.starts_with("00");
            if international {
                if let Ok(p) = crate::phone::Phone::parse_loose("1", trimmed) {
                    digits.push(p.national().to_owned());
                }
            }
            digits.insert(0, d);
            digits.dedup();
        }
        Ok(Some(Self {
            lower: trimmed.to_lowercase(),
            digits,
            tag: TagId::try_parse(trimmed),
        }))
    }

    /// The prefix looked up among [`ContactFields::text_terms`].
    pub fn text_prefix(&self) -> String {
        self.lower.chars().take(TERM_CHARS).collect()
    }

    /// Whether the keyword is longer than the indexed terms, so that a term match must be
    /// checked against the whole name or address.
    pub fn needs_recheck(&self) -> bool {
        self.lower.chars().count() > TERM_CHARS
    }

    /// The keyword as a `LIKE` pattern matching it anywhere, with `\` escaping `%`, `_` and `\`.
    pub fn like_pattern(&self) -> String {
        let mut p = String::with_capacity(self.lower.len() + 2);
        p.push('%');
        for c in self.lower.chars() {
            if matches!(c, '%' | '_' | '\\') {
                p.push('\\');
            }
            p.push(c);
        }
        p.push('%');
        p
    }

    /// Whether a contact matches, by the same rules the stores apply in SQL.
    pub fn matches(&self, fields: &ContactFields) -> bool {
        fields.name.lower().contains(&self.lower)
            || fields.emails_lower().contains(&self.lower)
            || self.tag.is_some_and(|t| fields.tag_ids.contains(&t))
            || fields
                .numbers
                .iter()
                .any(|n| self.digits.iter().any(|d| n.digits().contains(d.as_str())))
    }
}

/// The sort position of a contact: lower-cased name, then id. Cursors carry it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SortKey {
    /// The lower-cased name.
    pub name_lower: String,
    /// The id.
    pub id: ContactId,
}

impl SortKey {
    /// The key of `contact`.
    pub fn of(contact: &Contact) -> Self {
        Self {
            name_lower: contact.fields.name.lower(),
            id: contact.id,
        }
    }

    /// The opaque cursor form: the id, a dot, and the hex of the lower-cased name.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.id, hex::encode(self.name_lower.as_bytes()))
    }

    /// Parses a cursor from [`SortKey::encode`].
    pub fn decode(raw: &str) -> DomainResult<Self> {
        let bad = || DomainError::invalid("cursor", "must be a next_cursor from a previous page");
        let (id, name) = raw.trim().split_once('.').ok_or_else(bad)?;
        let id = ContactId::try_parse(id).ok_or_else(bad)?;
        let bytes = hex::decode(name).map_err(|_| bad())?;
        let name_lower = String::from_utf8(bytes).map_err(|_| bad())?;
        Ok(Self { name_lower, id })
    }
}

/// Which window of the matches a search wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Window {
    /// Page `page` (from 1) of `items` rows.
    Page {
        /// Rows per page.
        items: u32,
        /// The page, from 1.
        page: u32,
    },
    /// The `items` rows after `after` (from the start when `None`).
    After {
        /// Rows per page.
        items: u32,
        /// The last row of the previous page.
        after: Option<SortKey>,
    },
}

impl Window {
    /// Rows wanted.
    pub fn items(&self) -> u32 {
        match self {
            Self::Page { items, .. } | Self::After { items, .. } => *items,
        }
    }
}

/// A search: an optional keyword and a window, ordered by lower-cased name, then id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactQuery {
    /// No keyword lists every contact.
    pub keyword: Option<Keyword>,
    /// Which rows.
    pub window: Window,
}

/// One page of a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactPage {
    /// How many contacts match in all.
    pub total: u64,
    /// The rows of the window (the store may return one more than asked, to tell if more follow).
    pub rows: Vec<Contact>,
}

/// A searched page as the service answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchResult {
    /// How many contacts match in all.
    pub total: u64,
    /// The rows.
    pub rows: Vec<Contact>,
    /// The cursor of the next page, when more rows follow.
    pub next_cursor: Option<String>,
}

/// The raw paging parameters of a search.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchParams {
    /// `keyword`.
    pub keyword: Option<String>,
    /// `items`.
    pub items: Option<u32>,
    /// `currentpage`.
    pub page: Option<u32>,
    /// `cursor` (takes precedence over `currentpage`).
    pub cursor: Option<String>,
}

/// One operation of a batch call.
#[derive(Debug, Clone)]
pub enum BatchOp {
    /// Create a contact.
    Create(ContactDraft),
    /// Replace a contact, if `rev` (when given) is current.
    Update {
        /// The contact, as sent.
        id: String,
        /// The expected revision, as sent.
        rev: Option<String>,
        /// The new content.
        draft: ContactDraft,
    },
    /// Delete a contact, if `rev` (when given) is current.
    Delete {
        /// The contact, as sent.
        id: String,
        /// The expected revision, as sent.
        rev: Option<String>,
    },
}

/// What became of one batch operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchResult {
    /// Created or updated: the contact as it now is.
    Saved(Contact),
    /// Deleted.
    Deleted(ContactId),
    /// Refused; the other operations went on.
    Failed(DomainError),
}

/// The fewest digits a number needs to merge an imported card into a contact: shorter ones
/// (extensions, short codes) say too little about who it is.
pub const MERGE_DIGITS_MIN: usize = 7;

/// One imported card, validated, on its way to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportEntry {
    /// The line its `BEGIN:VCARD` stood on.
    pub line: usize,
    /// Its content, without tags (the store resolves `categories`).
    pub fields: ContactFields,
    /// Its tags, by name.
    pub categories: Vec<TagName>,
    /// The id it gets if it creates a contact.
    pub new_id: ContactId,
    /// Digit strings that find the contact it merges into: a stored number whose digits end
    /// with one of them is the same number, with or without its country code.
    pub match_digits: Vec<String>,
}

/// A whole import, applied in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportPlan {
    /// The cards to write, in file order.
    pub entries: Vec<ImportEntry>,
    /// A fresh tag for every category name; the store creates those the owner lacks.
    pub new_tags: Vec<Tag>,
    /// The instant of the import.
    pub now: Millis,
}

/// A card that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The line its `BEGIN:VCARD` stood on.
    pub line: usize,
    /// Why, for the client.
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// New contacts.
    pub created: u32,
    /// Cards merged into an existing contact with the same number.
    pub merged: u32,
    /// Cards left out.
    pub skipped: Vec<Skipped>,
}

/// `existing` with what `incoming` adds: numbers it lacks (by digits), emails it lacks
/// (case-insensitively), its tags, and its note when `existing` has none. The name stays.
pub fn merge(existing: &ContactFields, incoming: &ContactFields) -> DomainResult<ContactFields> {
    let mut draft = ContactDraft {
        name: existing.name.as_str().to_owned(),
        numbers: existing
            .numbers
            .iter()
            .map(|n| (n.kind.clone(), n.number.clone()))
            .collect(),
        emails: existing
            .emails
            .iter()
            .map(|e| (e.kind.clone(), e.email.clone()))
            .collect(),
        tag_ids: existing.tag_ids.iter().map(ToString::to_string).collect(),
        note: existing.note.clone(),
    };
    for n in &incoming.numbers {
        let d = n.digits();
        let known = existing.numbers.iter().any(|m| {
            let md = m.digits();
            md == d || md.ends_with(&d) || d.ends_with(&md)
        });
        if !known {
            draft.numbers.push((n.kind.clone(), n.number.clone()));
        }
    }
    for e in &incoming.emails {
        if !existing
            .emails
            .iter()
            .any(|m| m.email.eq_ignore_ascii_case(&e.email))
        {
            draft.emails.push((e.kind.clone(), e.email.clone()));
        }
    }
    draft
        .tag_ids
        .extend(incoming.tag_ids.iter().map(ToString::to_string));
    if draft.note.is_none() {
        draft.note = incoming.note.clone();
    }
    ContactFields::new(draft)
}

/// The digit strings an imported number is matched by: its digits and, when it is written
/// with a country code, its national digits. Short numbers give none.
fn match_digits(fields: &ContactFields) -> Vec<String> {
    let mut out = Vec::new();
    for n in &fields.numbers {
        let d = n.digits();
        if d.len() < MERGE_DIGITS_MIN {
            continue;
        }
        let written = n.number.trim_start();
        if written.starts_with('+') || d.starts_with("00") {
            if let Ok(p) = crate::phone::Phone::parse_loose("1", written) {
                if p.national().len() >= MERGE_DIGITS_MIN {
                    out.push(p.national().to_owned());
                }
            }
        }
        out.push(d);
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// One contact with its tag names resolved, for export.
fn card_out<'a>(
    c: &'a Contact,
    tags: &'a std::collections::HashMap<TagId, String>,
) -> vcard::CardOut<'a> {
    let f = &c.fields;
    vcard::CardOut {
        name: f.name.as_str(),
        numbers: f.numbers.iter().map(|n| (n.kind(), n.number())).collect(),
        emails: f.emails.iter().map(|e| (e.kind(), e.email())).collect(),
        categories: f
            .tag_ids
            .iter()
            .filter_map(|t| tags.get(t).map(String::as_str))
            .collect(),
        note: f.note(),
    }
}

/// What one import entry does to the book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportStep {
    /// Insert this new contact.
    Create(Contact),
    /// Overwrite the matching contact with this next revision.
    Merge(Contact),
    /// Leave it out.
    Skip(Skipped),
}

impl ImportEntry {
    /// Decides the entry against the contact its number matched (if any), with its categories
    /// resolved to `tag_ids`.
    pub fn step(&self, existing: Option<&Contact>, tag_ids: &[TagId], now: Millis) -> ImportStep {
        let mut tagged = self.fields.clone();
        tagged.tag_ids = tag_ids.to_vec();
        tagged.tag_ids.dedup();
        let skip = |e: DomainError| {
            ImportStep::Skip(Skipped {
                line: self.line,
                reason: match e {
                    DomainError::Invalid { field, reason } => format!("{field}: {reason}"),
                    other => other.to_string(),
                },
            })
        };
        match existing {
            None => ImportStep::Create(Contact::create(self.new_id, tagged, now)),
            Some(c) => match merge(&c.fields, &tagged) {
                Ok(fields) => ImportStep::Merge(c.updated(fields, now)),
                Err(e) => skip(e),
            },
        }
    }
}

/// The export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// vCard 4.0.
    VCard,
    /// Google/Outlook-style CSV.
    Csv,
}

/// The ports the address book service drives.
#[derive(Debug, Clone)]
pub struct AddressBookPorts {
    /// Contacts and tags.
    pub store: Arc<dyn AddressBookStore>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Randomness for ids.
    pub random: Arc<dyn Random>,
}

/// Contacts, tags, search and batches of one user's address book.
#[derive(Debug)]
pub struct AddressBookService {
    ports: AddressBookPorts,
}

fn parse_rev(field: &'static str, raw: Option<&str>) -> DomainResult<Option<Revision>> {
    raw.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| Revision::parse(field, s))
        .transpose()
}

impl AddressBookService {
    /// Builds the service.
    pub fn new(ports: AddressBookPorts) -> Self {
        Self { ports }
    }

    /// Creates a contact from a draft. Tags must be the owner's (`Invalid("tag_ids")`).
    pub async fn create(&self, owner: UserId, draft: ContactDraft) -> DomainResult<Contact> {
        let fields = ContactFields::new(draft)?;
        let id = ContactId::from_random(self.ports.random.next_u64());
        let contact = Contact::create(id, fields, self.ports.clock.now());
        self.ports
            .store
            .insert_contact(owner, contact.clone())
            .await?;
        Ok(contact)
    }

    /// One contact of the owner; anyone else's is `NotFound`.
    pub async fn get(&self, owner: UserId, id: &str) -> DomainResult<Contact> {
        let id = ContactId::parse(id)?;
        self.ports
            .store
            .contact(owner, id)
            .await?
            .ok_or(DomainError::NotFound("contact"))
    }

    /// Replaces a contact's content. With `rev` the change applies only if it is current
    /// (`Conflict` otherwise); without, the last write wins.
    pub async fn update(
        &self,
        owner: UserId,
        id: &str,
        rev: Option<&str>,
        draft: ContactDraft,
    ) -> DomainResult<Contact> {
        let id = ContactId::parse(id)?;
        let expected = parse_rev("_rev", rev)?;
        let fields = ContactFields::new(draft)?;
        let now = self.ports.clock.now();
        let change: ContactChange = Box::new(move |current: &Contact| {
            current.check_rev(expected.as_ref())?;
            Ok(current.updated(fields, now))
        });
        self.ports.store.update_contact(owner, id, change).await
    }

    /// Deletes a contact, under the same revision rule as [`Self::update`].
    pub async fn delete(
        &self,
        owner: UserId,
        id: &str,
        rev: Option<&str>,
    ) -> DomainResult<ContactId> {
        let id = ContactId::parse(id)?;
        let expected = parse_rev("_rev", rev)?;
        self.ports
            .store
            .delete_contact(owner, id, expected, self.ports.clock.now())
            .await?;
        Ok(id)
    }

    /// Searches the owner's book: `items` 1..=1000 (20 by default), `currentpage` from 1, or
    /// a `cursor` from a previous answer.
    pub async fn search(&self, owner: UserId, params: SearchParams) -> DomainResult<SearchResult> {
        let items = params.items.unwrap_or(PAGE_DEFAULT);
        if !(1..=PAGE_MAX).contains(&items) {
            return Err(DomainError::invalid(
                "items",
                format!("must be an integer from 1 to {PAGE_MAX}"),
            ));
        }
        let keyword = Keyword::new(params.keyword.as_deref().unwrap_or(""))?;
        let cursor = params
            .cursor
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty());
        let window = match cursor {
            Some(raw) => Window::After {
                items,
                after: Some(SortKey::decode(raw)?),
            },
            None => {
                let page = params.page.unwrap_or(1);
                if page < 1 {
                    return Err(DomainError::invalid("currentpage", "must start at 1"));
                }
                // Deep offsets cost a scan of every skipped row; cursors are the way past them.
                if u64::from(page) * u64::from(items) > 10_000_000 {
                    return Err(DomainError::invalid(
                        "currentpage",
                        "is too deep; use cursor paging",
                    ));
                }
                Window::Page { items, page }
            }
        };
        let page = self
            .ports
            .store
            .search_contacts(owner, ContactQuery { keyword, window })
            .await?;
        let mut rows = page.rows;
        let more = rows.len() > items as usize;
        rows.truncate(items as usize);
        let next_cursor = if more {
            rows.last().map(|c| SortKey::of(c).encode())
        } else {
            None
        };
        Ok(SearchResult {
            total: page.total,
            rows,
            next_cursor,
        })
    }

    /// Runs up to 200 operations, each in its own transaction; one failure does not stop the rest.
    pub async fn batch(&self, owner: UserId, ops: Vec<BatchOp>) -> DomainResult<Vec<BatchResult>> {
        if ops.len() > BATCH_MAX {
            return Err(DomainError::invalid(
                "ops",
                format!("at most {BATCH_MAX} operations"),
            ));
        }
        let mut out = Vec::with_capacity(ops.len());
        for op in ops {
            let result = match op {
                BatchOp::Create(draft) => self.create(owner, draft).await.map(BatchResult::Saved),
                BatchOp::Update { id, rev, draft } => self
                    .update(owner, &id, rev.as_deref(), draft)
                    .await
                    .map(BatchResult::Saved),
                BatchOp::Delete { id, rev } => self
                    .delete(owner, &id, rev.as_deref())
                    .await
                    .map(BatchResult::Deleted),
            };
            match result {
                // A dependency failure is not the item's fault: the whole call answers it.
                Err(e @ (DomainError::Unavailable(_) | DomainError::Internal(_))) => return Err(e),
                Err(e) => out.push(BatchResult::Failed(e)),
                Ok(r) => out.push(r),
            }
        }
        Ok(out)
    }

    /// Imports vCard text in one transaction: broken input is refused whole (`Invalid("vcard")`
    /// naming the line); cards the book would refuse are skipped with the reason; a card whose
    /// number is already in the book merges into that contact; categories become tags.
    pub async fn import_vcard(&self, owner: UserId, input: &[u8]) -> DomainResult<ImportReport> {
        let cards = vcard::parse(input)?;
        let now = self.ports.clock.now();
        let mut skipped = Vec::new();
        let mut entries = Vec::new();
        let mut names: Vec<TagName> = Vec::new();
        for card in cards {
            let line = card.line;
            let mut categories = Vec::new();
            let checked = (|| {
                let fields = ContactFields::new(ContactDraft {
                    name: card.name.unwrap_or_default(),
                    numbers: card.numbers,
                    emails: card.emails,
                    tag_ids: Vec::new(),
                    note: card.note,
                })?;
                if card.categories.len() > TAGS_MAX {
                    return Err(DomainError::invalid(
                        "tag_ids",
                        format!("at most {TAGS_MAX} tags"),
                    ));
                }
                for c in card.categories {
                    categories.push(TagName::new(c).map_err(|e| match e {
                        DomainError::Invalid { reason, .. } => {
                            DomainError::invalid("categories", reason)
                        }
                        other => other,
                    })?);
                }
                Ok(fields)
            })();
            match checked {
                Ok(fields) => {
                    for c in &categories {
                        if !names.contains(c) {
                            names.push(c.clone());
                        }
                    }
                    entries.push(ImportEntry {
                        line,
                        match_digits: match_digits(&fields),
                        fields,
                        categories,
                        new_id: ContactId::from_random(self.ports.random.next_u64()),
                    });
                }
                Err(DomainError::Invalid { field, reason }) => skipped.push(Skipped {
                    line,
                    reason: format!("{field}: {reason}"),
                }),
                Err(other) => return Err(other),
            }
        }
        let new_tags = names
            .into_iter()
            .map(|name| Tag {
                id: TagId::from_random(self.ports.random.next_u64()),
                name,
                created_at: now,
                modified_at: None,
            })
            .collect();
        let mut report = self
            .ports
            .store
            .import(
                owner,
                ImportPlan {
                    entries,
                    new_tags,
                    now,
                },
            )
            .await?;
        report.skipped.extend(skipped);
        report.skipped.sort_by_key(|s| s.line);
        Ok(report)
    }

    /// The whole book as vCard 4.0 or CSV, in (name, id) order.
    pub async fn export(&self, owner: UserId, format: ExportFormat) -> DomainResult<String> {
        let tags: std::collections::HashMap<TagId, String> = self
            .tags(owner)
            .await?
            .into_iter()
            .map(|t| (t.id, t.name.as_str().to_owned()))
            .collect();
        let mut contacts: Vec<Contact> = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .ports
                .store
                .search_contacts(
                    owner,
                    ContactQuery {
                        keyword: None,
                        window: Window::After {
                            items: PAGE_MAX,
                            after: after.clone(),
                        },
                    },
                )
                .await?;
            let more = page.rows.len() > PAGE_MAX as usize;
            contacts.extend(page.rows.into_iter().take(PAGE_MAX as usize));
            if !more {
                break;
            }
            after = contacts.last().map(SortKey::of);
        }
        let cards: Vec<vcard::CardOut<'_>> = contacts.iter().map(|c| card_out(c, &tags)).collect();
        Ok(match format {
            ExportFormat::VCard => vcard::write(&cards),
            ExportFormat::Csv => vcard::write_csv(&cards),
        })
    }

    /// The Kith user each contact is linked to: the first of its numbers that belongs to a
    /// registered user who may be found by phone. Numbers without a country code are read in
    /// the owner's region. Contacts without such a number are absent from the map.
    pub async fn links(
        &self,
        owner: UserId,
        contacts: &[Contact],
    ) -> DomainResult<std::collections::HashMap<ContactId, UserId>> {
        let mut out = std::collections::HashMap::new();
        if contacts.iter().all(|c| c.fields.numbers.is_empty()) {
            return Ok(out);
        }
        let region = self
            .ports
            .store
            .owner_region(owner)
            .await?
            .unwrap_or_default();
        let per_contact: Vec<(ContactId, Vec<String>)> = contacts
            .iter()
            .map(|c| {
                let phones = c
                    .fields
                    .numbers
                    .iter()
                    .filter_map(|n| crate::phone::Phone::parse_loose(&region, &n.number).ok())
                    .map(|p| p.e164().to_owned())
                    .collect();
                (c.id, phones)
            })
            .collect();
        let mut all: Vec<String> = per_contact.iter().flat_map(|(_, p)| p.clone()).collect();
        all.sort_unstable();
        all.dedup();
        if all.is_empty() {
            return Ok(out);
        }
        let found: std::collections::HashMap<String, UserId> = self
            .ports
            .store
            .findable_users(all)
            .await?
            .into_iter()
            .collect();
        for (id, phones) in per_contact {
            if let Some(user) = phones.iter().find_map(|p| found.get(p)) {
                out.insert(id, *user);
            }
        }
        Ok(out)
    }

    /// Creates a tag.
    pub async fn create_tag(&self, owner: UserId, name: &str) -> DomainResult<Tag> {
        let tag = Tag {
            id: TagId::from_random(self.ports.random.next_u64()),
            name: TagName::new(name)?,
            created_at: self.ports.clock.now(),
            modified_at: None,
        };
        self.ports.store.insert_tag(owner, tag.clone()).await?;
        Ok(tag)
    }

    /// The owner's tags, by name.
    pub async fn tags(&self, owner: UserId) -> DomainResult<Vec<Tag>> {
        self.ports.store.tags(owner).await
    }

    /// Renames a tag.
    pub async fn rename_tag(&self, owner: UserId, id: &str, name: &str) -> DomainResult<Tag> {
        let id = TagId::parse(id)?;
        let name = TagName::new(name)?;
        self.ports
            .store
            .rename_tag(owner, id, name, self.ports.clock.now())
            .await
    }

    /// Deletes a tag and removes it from every contact (each of which gets a new revision).
    pub async fn delete_tag(&self, owner: UserId, id: &str) -> DomainResult<()> {
        let id = TagId::parse(id)?;
        self.ports
            .store
            .delete_tag(owner, id, self.ports.clock.now())
            .await
    }
}

#[cfg(test)]
mod tests;
