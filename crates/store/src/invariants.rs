//! The invariant checker: reads a whole Kith database in one snapshot and reports rows that break the rules every write keeps.
//!
//! [`check`] runs on either backend. It finds:
//! - pairs of relationship rows that break [`kith_domain::relationship::check_pair`] (the domain's
//!   own rules: symmetric friendship, one request id on both sides, no request and no follow
//!   across a block), and rows that do not decode or whose `active` flag disagrees with them;
//! - sync versions that went wrong: a change numbered above its owner's version (or below 1), a
//!   compaction floor above the version, a change left at or below the floor, and versions above
//!   the floor that have no change entry (every version bump writes one);
//! - orphans: rows naming a user, contact, tag or group that does not exist.

use std::collections::BTreeMap;
use std::fmt;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable};
use kith_domain::relationship::{check_pair, Pair, Side};
use kith_domain::DomainResult;

use crate::conn::DbConn;
use crate::error::StoreError;
use crate::relationships::{SideRow, SIDE_COLUMNS};
use crate::schema::relationships;
use crate::store::Store;
use crate::sync::read_tx;

/// Relationship rows read per query.
const PAGE: i64 = 1000;
/// Examples kept per rule; every violation is counted.
const EXAMPLES_PER_RULE: usize = 20;

/// The rules the checker verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    /// The two rows of a pair disagree on friendship or on the request id, or a side has a
    /// request without an id (or an id without a request).
    FriendshipSymmetry,
    /// A friend request is pending between a blocker and the blocked, in either direction.
    RequestAcrossBlock,
    /// A follow exists between a blocker and the blocked, in either direction.
    FollowAcrossBlock,
    /// A relationship row does not decode, or its `active` flag disagrees with its content.
    RowEncoding,
    /// A change is numbered above its owner's version or below 1, a floor is above the version,
    /// or a change survived at or below its owner's compaction floor.
    VersionOrder,
    /// Versions between an owner's floor and version that have no change entry (or too many).
    VersionGap,
    /// A row names a user, contact, tag or group that does not exist.
    Orphan,
}

impl Rule {
    /// Every rule, in report order.
    pub const ALL: [Rule; 7] = [
        Rule::FriendshipSymmetry,
        Rule::RequestAcrossBlock,
        Rule::FollowAcrossBlock,
        Rule::RowEncoding,
        Rule::VersionOrder,
        Rule::VersionGap,
        Rule::Orphan,
    ];

    /// A short stable name, for reports and scripts.
    pub fn name(&self) -> &'static str {
        match self {
            Rule::FriendshipSymmetry => "friendship-symmetry",
            Rule::RequestAcrossBlock => "request-across-block",
            Rule::FollowAcrossBlock => "follow-across-block",
            Rule::RowEncoding => "row-encoding",
            Rule::VersionOrder => "version-order",
            Rule::VersionGap => "version-gap",
            Rule::Orphan => "orphan",
        }
    }
}

/// One broken rule, with the rows that break it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The rule.
    pub rule: Rule,
    /// Which rows, and how they break it.
    pub detail: String,
}

/// What one run looked at and found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// `"sqlite"` or `"postgres"`.
    pub backend: &'static str,
    /// Users read.
    pub users: u64,
    /// Relationship rows read.
    pub relationship_rows: u64,
    /// Change log entries present.
    pub changes: u64,
    /// Address book contacts present.
    pub contacts: u64,
    /// How many violations of each rule were found (rules without any are absent).
    pub found: BTreeMap<Rule, u64>,
    /// Up to 20 examples per rule.
    pub examples: Vec<Violation>,
}

impl Report {
    /// Whether no rule is broken.
    pub fn is_clean(&self) -> bool {
        self.found.is_empty()
    }

    /// How many violations of `rule` were found.
    pub fn count(&self, rule: Rule) -> u64 {
        self.found.get(&rule).copied().unwrap_or(0)
    }

    /// Every violation found.
    pub fn total(&self) -> u64 {
        self.found.values().sum()
    }

    fn add(&mut self, rule: Rule, detail: String) {
        let n = self.found.entry(rule).or_insert(0);
        *n += 1;
        if *n <= EXAMPLES_PER_RULE as u64 {
            self.examples.push(Violation { rule, detail });
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "kith check ({}): {} users, {} relationship rows, {} changes, {} contacts",
            self.backend, self.users, self.relationship_rows, self.changes, self.contacts
        )?;
        for rule in Rule::ALL {
            let n = self.count(rule);
            writeln!(
                f,
                "  {:<22} {}",
                rule.name(),
                if n == 0 {
                    "ok".to_owned()
                } else {
                    format!("{n} VIOLATION(S)")
                }
            )?;
            for v in self.examples.iter().filter(|v| v.rule == rule) {
                writeln!(f, "      {}", v.detail)?;
            }
        }
        if self.is_clean() {
            write!(f, "no violations")
        } else {
            write!(f, "{} violation(s)", self.total())
        }
    }
}

/// Checks every invariant over `store`'s database, in one read-only snapshot so that it may
/// run beside a live server. Runs on tokio's blocking pool.
pub async fn check(store: &Store) -> DomainResult<Report> {
    let backend = store.backend();
    store
        .run(move |conn| {
            let mut report = read_tx(conn, check_conn)?;
            report.backend = backend;
            Ok(report)
        })
        .await
}

/// [`check`] on one connection, outside any snapshot (the caller may open one).
pub fn check_conn(conn: &mut DbConn) -> Result<Report, StoreError> {
    let mut report = Report {
        backend: match conn {
            DbConn::Pg(_) => "postgres",
            DbConn::Sqlite(_) => "sqlite",
        },
        ..Report::default()
    };
    report.users = count(conn, "users")?;
    report.changes = count(conn, "changes")?;
    report.contacts = count(conn, "contacts")?;
    check_pairs(conn, &mut report)?;
    for q in VERSION_QUERIES.iter().chain(ORPHAN_QUERIES) {
        for row in load(conn, q.sql)? {
            report.add(q.rule, q.describe(&row));
        }
    }
    Ok(report)
}

/// One relationship row with its reverse row (owner and other swapped), if any.
type PairRow = (i64, i64, bool, SideRow, Option<SideRow>);

/// Walks every relationship row in (owner, other) order, joined with its reverse row, and
/// checks each pair once with the domain's own rules.
fn check_pairs(conn: &mut DbConn, report: &mut Report) -> Result<(), StoreError> {
    let reverse = diesel::alias!(relationships as reverse);
    let mut after: Option<(i64, i64)> = None;
    loop {
        let mut query = relationships::table
            .left_join(
                reverse.on(reverse
                    .field(relationships::owner)
                    .eq(relationships::other)
                    .and(reverse.field(relationships::other).eq(relationships::owner))),
            )
            .order((relationships::owner, relationships::other))
            .limit(PAGE)
            .select((
                relationships::owner,
                relationships::other,
                relationships::active,
                SIDE_COLUMNS,
                reverse.fields(SIDE_COLUMNS).nullable(),
            ))
            .into_boxed();
        if let Some((o, t)) = after {
            query = query.filter(
                relationships::owner
                    .gt(o)
                    .or(relationships::owner.eq(o).and(relationships::other.gt(t))),
            );
        }
        let rows: Vec<PairRow> = query.load(conn)?;
        let last = rows.last().map(|r| (r.0, r.1));
        for row in rows {
            check_row(report, row);
        }
        match last {
            Some(key) => after = Some(key),
            None => return Ok(()),
        }
    }
}

fn check_row(report: &mut Report, (owner, other, active, mine, theirs): PairRow) {
    report.relationship_rows += 1;
    let mine = match mine.into_side() {
        Ok(side) => side,
        Err(e) => {
            report.add(
                Rule::RowEncoding,
                format!("relationships ({owner}, {other}): {e}"),
            );
            return;
        }
    };
    if active == mine.is_empty() {
        report.add(
            Rule::RowEncoding,
            format!(
                "relationships ({owner}, {other}): active = {active} but the row is {}",
                if mine.is_empty() {
                    "empty"
                } else {
                    "not empty"
                }
            ),
        );
    }
    // A pair with both rows is checked from its lower owner; a missing row is an empty side,
    // as every reader takes it.
    let theirs = match theirs {
        Some(_) if owner > other => return,
        Some(row) => match row.into_side() {
            Ok(side) => side,
            // Reported when that row is the driving one.
            Err(_) => return,
        },
        None => Side::default(),
    };
    // `check_pair` names the first rule a pair breaks; its wording sorts it here, and the
    // detects_* tests fail if that wording changes.
    if let Err(broken) = check_pair(&Pair { mine, theirs }) {
        let rule = match broken {
            "a request is pending across a block" => Rule::RequestAcrossBlock,
            "a follow survives a block" => Rule::FollowAcrossBlock,
            _ => Rule::FriendshipSymmetry,
        };
        report.add(rule, format!("users {owner} and {other}: {broken}"));
    }
}

/// A query that returns the rows breaking one rule, as up to three ids.
struct Query {
    rule: Rule,
    sql: &'static str,
    /// How to name a row: `{a}`, `{b}` and `{c}` stand for its ids.
    what: &'static str,
}

impl Query {
    fn describe(&self, row: &Ids) -> String {
        let show = |v: Option<i64>| v.map_or_else(|| "NULL".to_owned(), |v| v.to_string());
        self.what
            .replace("{a}", &row.a.to_string())
            .replace("{b}", &show(row.b))
            .replace("{c}", &show(row.c))
    }
}

/// Up to three ids of a row that breaks a rule.
#[derive(Debug, QueryableByName)]
struct Ids {
    #[diesel(sql_type = BigInt)]
    a: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    b: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    c: Option<i64>,
}

/// Runs plain SQL that both backends read alike, on the variant's own connection.
fn load(conn: &mut DbConn, sql: &str) -> Result<Vec<Ids>, StoreError> {
    let query = diesel::sql_query(sql);
    Ok(match conn {
        DbConn::Pg(c) => query.load(c)?,
        DbConn::Sqlite(c) => query.load(c)?,
    })
}

/// The rows of `table` (one of ours, never user input).
fn count(conn: &mut DbConn, table: &str) -> Result<u64, StoreError> {
    let sql = format!(
        "SELECT COUNT(*) AS a, CAST(NULL AS BIGINT) AS b, CAST(NULL AS BIGINT) AS c FROM {table}"
    );
    let n = load(conn, &sql)?.first().map_or(0, |r| r.a);
    u64::try_from(n).map_err(|_| StoreError::Internal("negative count".to_owned()))
}

const VERSION_QUERIES: &[Query] = &[
    Query {
        rule: Rule::VersionOrder,
        sql: "SELECT c.owner AS a, c.version AS b, u.version AS c FROM changes c \
              JOIN users u ON u.id = c.owner WHERE c.version > u.version OR c.version < 1",
        what: "changes ({a}, {b}): numbered outside 1..={c}, its owner's version",
    },
    Query {
        rule: Rule::VersionOrder,
        sql: "SELECT f.owner AS a, f.floor AS b, u.version AS c FROM sync_floors f \
              JOIN users u ON u.id = f.owner WHERE f.floor > u.version OR f.floor < 0",
        what: "sync_floors {a}: floor {b} is outside 0..={c}, its owner's version",
    },
    Query {
        rule: Rule::VersionOrder,
        sql: "SELECT c.owner AS a, c.version AS b, f.floor AS c FROM changes c \
              JOIN sync_floors f ON f.owner = c.owner WHERE c.version <= f.floor",
        what: "changes ({a}, {b}): at or below its owner's compaction floor {c}",
    },
    Query {
        rule: Rule::VersionGap,
        sql: GAP_SQL,
        what: "user {a}: {b} versions above the floor but {c} change entries",
    },
];

/// The gap check needs the floors subquery; kept apart so the SQL reads in one piece.
const GAP_SQL: &str = concat!(
    "SELECT fl.owner AS a, fl.version - fl.floor AS b, ",
    "(SELECT COUNT(*) FROM changes c WHERE c.owner = fl.owner AND c.version > fl.floor) AS c ",
    "FROM (SELECT u.id AS owner, u.version AS version, COALESCE(f.floor, 0) AS floor ",
    "FROM users u LEFT JOIN sync_floors f ON f.owner = u.id) fl ",
    "WHERE fl.version >= fl.floor AND fl.version - fl.floor <> ",
    "(SELECT COUNT(*) FROM changes c WHERE c.owner = fl.owner AND c.version > fl.floor)"
);

const ORPHAN_QUERIES: &[Query] = &[
    Query {
        rule: Rule::Orphan,
        sql: "SELECT r.owner AS a, r.other AS b, CAST(NULL AS BIGINT) AS c FROM relationships r \
              WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = r.owner) \
              OR NOT EXISTS (SELECT 1 FROM users u WHERE u.id = r.other)",
        what: "relationships ({a}, {b}) names a missing user",
    },
    Query {
        rule: Rule::Orphan,
        sql: "SELECT s.user_id AS a, CAST(NULL AS BIGINT) AS b, CAST(NULL AS BIGINT) AS c FROM sessions s \
              WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = s.user_id)",
        what: "a session of missing user {a}",
    },
    Query {
        rule: Rule::Orphan,
        sql: "SELECT c.owner AS a, c.id AS b, CAST(NULL AS BIGINT) AS c FROM contacts c \
              WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = c.owner)",
        what: "contacts ({a}, {b}) of a missing user",
    },
    Query {
        rule: Rule::Orphan,
        sql: "SELECT t.owner AS a, t.id AS b, CAST(NULL AS BIGINT) AS c FROM tags t \
              WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = t.owner)",
        what: "tags ({a}, {b}) of a missing user",
    },
    Query {
        rule: Rule::Orphan,
        sql: "SELECT DISTINCT d.owner AS a, d.contact_id AS b, CAST(NULL AS BIGINT) AS c FROM contact_digits d \
              WHERE NOT EXISTS (SELECT 1 FROM contacts c \
              WHERE c.owner = d.owner AND c.id = d.contact_id)",
        what: "contact_digits of missing contact ({a}, {b})",
    },
    Query {
        rule: Rule::Orphan,
        sql: "SELECT DISTINCT t.owner AS a, t.contact_id AS b, CAST(NULL AS BIGINT) AS c FROM contact_terms t \
              WHERE NOT EXISTS (SELECT 1 FROM contacts c \
              WHERE c.owner = t.owner AND c.id = t.contact_id)",
        what: "contact_terms of missing contact ({a}, {b})",
    },
    Query {
        rule: Rule::Orphan,
        sql: "SELECT t.owner AS a, t.contact_id AS b, t.tag_id AS c FROM contact_tags t \
              WHERE NOT EXISTS (SELECT 1 FROM contacts c \
              WHERE c.owner = t.owner AND c.id = t.contact_id) \
              OR NOT EXISTS (SELECT 1 FROM tags g WHERE g.owner = t.owner AND g.id = t.tag_id)",
        what: "contact_tags (owner {a}, contact {b}, tag {c}) names a missing contact or tag",
    },
    Query {
        rule: Rule::Orphan,
        sql: "SELECT g.id AS a, g.creator_id AS b, CAST(NULL AS BIGINT) AS c FROM chat_groups g \
              WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = g.creator_id)",
        what: "chat_groups {a}: creator {b} is missing",
    },
    Query {
        rule: Rule::Orphan,
        sql: "SELECT m.group_id AS a, m.member_id AS b, CAST(NULL AS BIGINT) AS c FROM group_members m \
              WHERE NOT EXISTS (SELECT 1 FROM chat_groups g WHERE g.id = m.group_id) \
              OR NOT EXISTS (SELECT 1 FROM users u WHERE u.id = m.member_id)",
        what: "group_members ({a}, {b}) names a missing group or user",
    },
    Query {
        rule: Rule::Orphan,
        sql: "SELECT c.owner AS a, c.version AS b, CAST(NULL AS BIGINT) AS c FROM changes c \
              WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = c.owner)",
        what: "changes ({a}, {b}) of a missing user",
    },
    Query {
        rule: Rule::Orphan,
        sql: "SELECT f.owner AS a, f.floor AS b, CAST(NULL AS BIGINT) AS c FROM sync_floors f \
              WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = f.owner)",
        what: "sync_floors of missing user {a}",
    },
    // Users and groups are never deleted (a dismissed group keeps its row), so a change about
    // one must still find it; contacts and tags are, and their changes are tombstones.
    Query {
        rule: Rule::Orphan,
        sql: "SELECT c.owner AS a, c.version AS b, c.subject AS c FROM changes c \
              WHERE c.kind IN ('user', 'relationship') AND (c.subject IS NULL \
              OR NOT EXISTS (SELECT 1 FROM users u WHERE u.id = c.subject))",
        what: "changes ({a}, {b}) is about missing user {c}",
    },
    Query {
        rule: Rule::Orphan,
        sql: "SELECT c.owner AS a, c.version AS b, c.subject AS c FROM changes c \
              WHERE c.kind IN ('group', 'group_member') AND (c.subject IS NULL \
              OR NOT EXISTS (SELECT 1 FROM chat_groups g WHERE g.id = c.subject) \
              OR (c.kind = 'group_member' AND (c.detail IS NULL \
              OR NOT EXISTS (SELECT 1 FROM users u WHERE u.id = c.detail))))",
        what: "changes ({a}, {b}) is about missing group {c} or its missing member",
    },
];

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;

    use diesel::connection::SimpleConnection;
    use kith_domain::addressbook::{AddressBookPorts, AddressBookService, ContactDraft};
    use kith_domain::ids::RequestId;
    use kith_domain::memory::{ManualClock, SeqRandom};
    use kith_domain::phone::Phone;
    use kith_domain::ports::RelationshipStore;
    use kith_domain::relationship::{apply, Command, Context};
    use kith_domain::sync::SyncStore;
    use kith_domain::{Millis, UserId};

    use super::*;

    const NOW: Millis = 1_800_000_000_000;

    fn uid(n: i64) -> UserId {
        UserId::new(n).unwrap()
    }

    /// Placeholder users 1..=n.
    async fn users(store: &Store, n: i64) {
        for id in 1..=n {
            let phone = Phone::from_e164(&format!("+86139{id:08}")).unwrap();
            store
                .create_placeholder(uid(id), &phone, NOW)
                .await
                .unwrap();
        }
    }

    async fn act(store: &Store, me: i64, other: i64, cmd: Command) {
        let ctx = Context::new(NOW, RequestId::from_random(rand::random()));
        store
            .transition(
                uid(me),
                uid(other),
                Box::new(move |pair, _| apply(pair, &cmd, &ctx)),
            )
            .await
            .unwrap();
    }

    /// Runs raw SQL with foreign keys unenforced, as a hand edit or a broken writer would.
    async fn corrupt(store: &Store, sql: &str) {
        let sql = sql.to_owned();
        store
            .serial_write(move |conn| {
                let (off, on) = match conn {
                    DbConn::Sqlite(_) => {
                        ("PRAGMA foreign_keys = OFF;", "PRAGMA foreign_keys = ON;")
                    }
                    DbConn::Pg(_) => (
                        "SET session_replication_role = replica;",
                        "SET session_replication_role = DEFAULT;",
                    ),
                };
                let result = conn.batch_execute(&format!("{off} {sql}"));
                conn.batch_execute(on)?;
                result?;
                Ok(())
            })
            .await
            .unwrap();
    }

    /// A relationship row; `request` is the SQL for request_id (`NULL` or a number).
    fn rel(owner: i64, other: i64, friendship: &str, request: &str, flags: [bool; 3]) -> String {
        let [following, blocking, active] = flags;
        format!(
            "INSERT INTO relationships (owner, other, friendship, request_id, following, starred, \
             blocking, conv_type, phone_visible, active, created_at, updated_at) VALUES \
             ({owner}, {other}, '{friendship}', {request}, {following}, FALSE, {blocking}, \
             'normal', FALSE, {active}, {NOW}, {NOW});"
        )
    }

    async fn checked(store: &Store) -> Report {
        check(store).await.unwrap()
    }

    /// A database written only through the store's own code, with every kind of row the
    /// checker reads.
    async fn realistic(store: &Store) {
        users(store, 6).await;
        act(store, 1, 2, Command::Invite { message: None }).await;
        act(store, 2, 1, Command::Accept).await;
        act(store, 3, 1, Command::Invite { message: None }).await;
        act(store, 4, 1, Command::Follow).await;
        act(store, 5, 1, Command::Invite { message: None }).await;
        act(store, 1, 5, Command::Block).await;
        act(store, 6, 2, Command::Follow).await;
        act(store, 2, 6, Command::Block).await;
        act(store, 1, 2, Command::Delete).await;
        let book = AddressBookService::new(AddressBookPorts {
            store: Arc::new(store.clone()),
            clock: Arc::new(ManualClock::new(NOW)),
            random: Arc::new(SeqRandom::new(rand::random())),
        });
        for name in ["Ann", "Bob"] {
            let draft = ContactDraft {
                name: name.to_owned(),
                numbers: vec![("Home".to_owned(), "+86 139 0000 0009".to_owned())],
                ..ContactDraft::default()
            };
            book.create(uid(1), draft).await.unwrap();
        }
    }

    crate::both_backends!(
        a_store_written_database_is_clean,
        |store: Store| async move {
            realistic(&store).await;
            let report = checked(&store).await;
            assert!(report.is_clean(), "{report}");
            assert_eq!(report.users, 6);
            assert!(report.relationship_rows >= 8, "{report}");
            assert!(report.changes >= 10, "{report}");
            assert_eq!(report.contacts, 2);
            // The sync compaction deletes entries and raises floors: still clean.
            let compacted = store.compact(NOW + 1).await.unwrap();
            assert!(compacted.entries > 0);
            let report = checked(&store).await;
            assert!(report.is_clean(), "{report}");
        }
    );

    /// A clean database, corrupted by `sql`, breaks exactly `rule` (and `also`, when the same
    /// rows must break a second rule too).
    async fn detects(store: &Store, sql: &str, rule: Rule, also: &[Rule]) {
        realistic(store).await;
        users_from(store, 7, 12).await;
        assert!(checked(store).await.is_clean());
        corrupt(store, sql).await;
        let report = checked(store).await;
        assert!(
            report.count(rule) > 0,
            "{rule:?} not found after {sql}:\n{report}"
        );
        for other in Rule::ALL {
            if other != rule && !also.contains(&other) {
                assert_eq!(report.count(other), 0, "{other:?} after {sql}:\n{report}");
            }
        }
        assert!(!report.is_clean());
        assert!(report.to_string().contains(rule.name()));
    }

    /// Placeholder users from..=to.
    async fn users_from(store: &Store, from: i64, to: i64) {
        for id in from..=to {
            let phone = Phone::from_e164(&format!("+86139{id:08}")).unwrap();
            store
                .create_placeholder(uid(id), &phone, NOW)
                .await
                .unwrap();
        }
    }

    crate::both_backends!(detects_one_sided_friendship, |store: Store| async move {
        let sql = rel(7, 8, "friends", "NULL", [false, false, true]);
        detects(&store, &sql, Rule::FriendshipSymmetry, &[]).await;
    });

    crate::both_backends!(
        detects_request_without_its_counterpart,
        |store: Store| async move {
            let sql = rel(7, 8, "requested", "42", [false, false, true])
                + &rel(8, 7, "friends", "NULL", [false, false, true]);
            detects(&store, &sql, Rule::FriendshipSymmetry, &[]).await;
        }
    );

    crate::both_backends!(detects_request_ids_that_differ, |store: Store| async move {
        let sql = rel(7, 8, "requested", "42", [false, false, true])
            + &rel(8, 7, "requested_by", "43", [false, false, true]);
        detects(&store, &sql, Rule::FriendshipSymmetry, &[]).await;
    });

    crate::both_backends!(
        detects_a_request_across_a_block,
        |store: Store| async move {
            // The blocked one asked the blocker.
            let sql = rel(7, 8, "requested", "42", [false, false, true])
                + &rel(8, 7, "requested_by", "42", [false, true, true]);
            detects(&store, &sql, Rule::RequestAcrossBlock, &[]).await;
        }
    );

    crate::both_backends!(
        detects_a_request_by_the_blocker,
        |store: Store| async move {
            let sql = rel(9, 10, "requested", "42", [false, true, true])
                + &rel(10, 9, "requested_by", "42", [false, false, true]);
            detects(&store, &sql, Rule::RequestAcrossBlock, &[]).await;
        }
    );

    crate::both_backends!(detects_a_follow_across_a_block, |store: Store| async move {
        let sql = rel(7, 8, "none", "NULL", [true, false, true])
            + &rel(8, 7, "none", "NULL", [false, true, true]);
        detects(&store, &sql, Rule::FollowAcrossBlock, &[]).await;
    });

    crate::both_backends!(detects_bad_row_encoding, |store: Store| async move {
        // An unknown state, and an empty row flagged active.
        let sql = rel(7, 8, "best_friends", "NULL", [false, false, true])
            + &rel(9, 10, "none", "NULL", [false, false, true]);
        detects(&store, &sql, Rule::RowEncoding, &[]).await;
        let report = checked(&store).await;
        assert_eq!(report.count(Rule::RowEncoding), 2, "{report}");
    });

    crate::both_backends!(
        detects_a_change_above_the_version,
        |store: Store| async move {
            // Its owner's version is 0: a change numbered 5 is ahead of it (and a gap of -1).
            let sql = "INSERT INTO changes (owner, version, kind, subject, at) \
                   VALUES (7, 5, 'user', 7, 0);";
            detects(&store, sql, Rule::VersionOrder, &[Rule::VersionGap]).await;
        }
    );

    crate::both_backends!(
        detects_a_version_that_went_back,
        |store: Store| async move {
            // User 1 has changes: lowering its version leaves them ahead of it.
            let sql = "UPDATE users SET version = version - 1 WHERE id = 1;";
            detects(&store, sql, Rule::VersionOrder, &[Rule::VersionGap]).await;
        }
    );

    crate::both_backends!(
        detects_a_floor_above_the_version,
        |store: Store| async move {
            let sql = "INSERT INTO sync_floors (owner, floor) VALUES (8, 3);";
            detects(&store, sql, Rule::VersionOrder, &[]).await;
        }
    );

    crate::both_backends!(
        detects_a_change_under_the_floor,
        |store: Store| async move {
            // User 1's first change is still there; a floor of 1 says it was compacted.
            let sql = "INSERT INTO sync_floors (owner, floor) VALUES (1, 1);";
            detects(&store, sql, Rule::VersionOrder, &[]).await;
        }
    );

    crate::both_backends!(detects_a_lost_change_entry, |store: Store| async move {
        let sql = "DELETE FROM changes WHERE owner = 1 AND version = 2;";
        detects(&store, sql, Rule::VersionGap, &[]).await;
    });

    crate::both_backends!(detects_a_bump_without_an_entry, |store: Store| async move {
        let sql = "UPDATE users SET version = version + 1 WHERE id = 1;";
        detects(&store, sql, Rule::VersionGap, &[]).await;
    });

    crate::both_backends!(detects_orphan_relationships, |store: Store| async move {
        let sql = rel(7, 999, "none", "NULL", [true, false, true]);
        detects(&store, &sql, Rule::Orphan, &[]).await;
    });

    crate::both_backends!(
        detects_orphan_contacts_and_index_rows,
        |store: Store| async move {
            let sql = "INSERT INTO contacts (owner, id, rev, name, name_lower, numbers, emails, \
                   emails_lower, tag_ids, created_at) \
                   VALUES (999, 5, '1-x', 'X', 'x', '[]', '[]', '', '', 0); \
                   INSERT INTO contact_terms (owner, term, contact_id) VALUES (7, 'zed', 77); \
                   INSERT INTO contact_digits (owner, digits, contact_id) VALUES (7, '12', 77); \
                   INSERT INTO contact_tags (owner, tag_id, contact_id) VALUES (7, 1, 77); \
                   INSERT INTO tags (owner, id, name, created_at) VALUES (999, 1, 't', 0);";
            detects(&store, sql, Rule::Orphan, &[]).await;
            assert_eq!(checked(&store).await.count(Rule::Orphan), 5);
        }
    );

    crate::both_backends!(
        detects_orphan_sessions_groups_and_changes,
        |store: Store| async move {
            let sql = "INSERT INTO sessions (token_hash, user_id, created_at, last_seen_at) \
                   VALUES ('h', 999, 0, 0); \
                   INSERT INTO chat_groups (id, name, creator_id, stamp, created_at) \
                   VALUES (50, 'g', 999, 0, 0); \
                   INSERT INTO group_members (group_id, member_id, role, joined_at, stamp) \
                   VALUES (51, 7, 1, 0, 0); \
                   INSERT INTO changes (owner, version, kind, subject, at) \
                   VALUES (999, 1, 'user', 999, 0); \
                   INSERT INTO sync_floors (owner, floor) VALUES (998, 0);";
            detects(&store, sql, Rule::Orphan, &[]).await;
            // The change names a missing owner and is about a missing user: counted twice.
            assert_eq!(checked(&store).await.count(Rule::Orphan), 6);
        }
    );

    crate::both_backends!(
        detects_changes_about_missing_things,
        |store: Store| async move {
            // User 7 gets two versions, each logged: about a missing user and a missing group.
            let sql = "UPDATE users SET version = 2 WHERE id = 7; \
                   INSERT INTO changes (owner, version, kind, subject, at) \
                   VALUES (7, 1, 'relationship', 999, 0); \
                   INSERT INTO changes (owner, version, kind, subject, detail, at) \
                   VALUES (7, 2, 'group_member', 50, 7, 0);";
            detects(&store, sql, Rule::Orphan, &[]).await;
            assert_eq!(checked(&store).await.count(Rule::Orphan), 2);
        }
    );
}
