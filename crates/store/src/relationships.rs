//! [`RelationshipStore`] on the database: one row per directed pair, changed in locked transactions.

use std::sync::Arc;

use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use kith_domain::ids::RequestId;
use kith_domain::phone::Phone;
use kith_domain::ports::{
    Counterpart, Decide, Page, Related, RelationshipStore, SideFilter, UserProfile,
};
use kith_domain::relationship::{ConvType, Friendship, Pair, Side, Transition};
use kith_domain::{DomainError, DomainResult, Millis, UserId};

use crate::accounts::UserRow;
use crate::async_pg::{prerendered, read};
use crate::conn::{execute_native, native, write_tx, Cached, DbConn};
use crate::error::StoreError;
use crate::list_cache::{PageKey, Stamp};
use crate::schema::{changes, relationships, users};
use crate::store::{ensure_placeholder, to_user_id, Store};

/// The `changes.kind` of a change to the owner's row on `subject`.
pub(crate) const CHANGE_KIND_RELATIONSHIP: &str = "relationship";

/// How many times a transition runs when the database refuses it for a reason a retry cures.
pub(crate) const TRANSITION_ATTEMPTS: u32 = 3;

/// The columns of one side, in [`SideRow`] order.
pub(crate) type SideColumns = (
    relationships::friendship,
    relationships::request_id,
    relationships::request_message,
    relationships::request_at,
    relationships::ignored_at,
    relationships::friends_since,
    relationships::following,
    relationships::followed_at,
    relationships::starred,
    relationships::blocking,
    relationships::blocked_at,
    relationships::display_name,
    relationships::description,
    relationships::remark_phone,
    relationships::remark_region,
    relationships::remark_image_uri,
    relationships::conv_type,
    relationships::phone_visible,
    relationships::created_at,
    relationships::updated_at,
);

/// A plain tuple rather than a `Selectable`, so the list queries can select it from an alias.
pub(crate) const SIDE_COLUMNS: SideColumns = (
    relationships::friendship,
    relationships::request_id,
    relationships::request_message,
    relationships::request_at,
    relationships::ignored_at,
    relationships::friends_since,
    relationships::following,
    relationships::followed_at,
    relationships::starred,
    relationships::blocking,
    relationships::blocked_at,
    relationships::display_name,
    relationships::description,
    relationships::remark_phone,
    relationships::remark_region,
    relationships::remark_image_uri,
    relationships::conv_type,
    relationships::phone_visible,
    relationships::created_at,
    relationships::updated_at,
);

/// One side as stored.
#[derive(Queryable)]
pub(crate) struct SideRow {
    friendship: String,
    request_id: Option<i64>,
    request_message: Option<String>,
    request_at: Option<i64>,
    ignored_at: Option<i64>,
    friends_since: Option<i64>,
    following: bool,
    followed_at: Option<i64>,
    starred: bool,
    blocking: bool,
    blocked_at: Option<i64>,
    display_name: Option<String>,
    description: Option<String>,
    remark_phone: Option<String>,
    remark_region: Option<String>,
    remark_image_uri: Option<String>,
    conv_type: String,
    phone_visible: bool,
    created_at: i64,
    updated_at: i64,
}

impl SideRow {
    /// Checks the stored names and ids.
    pub(crate) fn into_side(self) -> Result<Side, StoreError> {
        let SideRow {
            friendship,
            request_id,
            request_message,
            request_at,
            ignored_at,
            friends_since,
            following,
            followed_at,
            starred,
            blocking,
            blocked_at,
            display_name,
            description,
            remark_phone,
            remark_region,
            remark_image_uri,
            conv_type,
            phone_visible,
            created_at,
            updated_at,
        } = self;
        Ok(Side {
            friendship: Friendship::parse(&friendship).ok_or_else(|| {
                StoreError::Corrupt("relationships.friendship is not a known state".to_owned())
            })?,
            request_id: request_id.map(RequestId::new).transpose().map_err(|_| {
                StoreError::Corrupt("relationships.request_id out of range".to_owned())
            })?,
            request_message,
            request_at,
            ignored_at,
            friends_since,
            following,
            followed_at,
            starred,
            blocking,
            blocked_at,
            display_name,
            description,
            remark_phone,
            remark_region,
            remark_image_uri,
            conv_type: ConvType::parse(&conv_type).map_err(|_| {
                StoreError::Corrupt("relationships.conv_type is not a known list".to_owned())
            })?,
            phone_visible,
            created_at,
            updated_at,
        })
    }
}

/// Every column of a side, for a transition's upsert. `None` writes NULL.
#[derive(Clone, Copy, Insertable, AsChangeset)]
#[diesel(
    table_name = relationships,
    treat_none_as_null = true,
    treat_none_as_default_value = false
)]
pub(crate) struct SideValues<'a> {
    pub(crate) friendship: &'static str,
    pub(crate) request_id: Option<i64>,
    pub(crate) request_message: Option<&'a str>,
    pub(crate) request_at: Option<i64>,
    pub(crate) ignored_at: Option<i64>,
    pub(crate) friends_since: Option<i64>,
    pub(crate) following: bool,
    pub(crate) followed_at: Option<i64>,
    pub(crate) starred: bool,
    pub(crate) blocking: bool,
    pub(crate) blocked_at: Option<i64>,
    pub(crate) display_name: Option<&'a str>,
    pub(crate) description: Option<&'a str>,
    pub(crate) remark_phone: Option<&'a str>,
    pub(crate) remark_region: Option<&'a str>,
    pub(crate) remark_image_uri: Option<&'a str>,
    pub(crate) conv_type: &'static str,
    pub(crate) phone_visible: bool,
    pub(crate) active: bool,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
}

impl<'a> SideValues<'a> {
    /// The columns of `side`, with `active` derived from it.
    pub(crate) fn new(side: &'a Side) -> Self {
        // Destructured so a new `Side` field fails to compile here until it has a column.
        let Side {
            friendship,
            request_id,
            request_message,
            request_at,
            ignored_at,
            friends_since,
            following,
            followed_at,
            starred,
            blocking,
            blocked_at,
            display_name,
            description,
            remark_phone,
            remark_region,
            remark_image_uri,
            conv_type,
            phone_visible,
            created_at,
            updated_at,
        } = side;
        SideValues {
            friendship: friendship.as_str(),
            request_id: request_id.map(RequestId::get),
            request_message: request_message.as_deref(),
            request_at: *request_at,
            ignored_at: *ignored_at,
            friends_since: *friends_since,
            following: *following,
            followed_at: *followed_at,
            starred: *starred,
            blocking: *blocking,
            blocked_at: *blocked_at,
            display_name: display_name.as_deref(),
            description: description.as_deref(),
            remark_phone: remark_phone.as_deref(),
            remark_region: remark_region.as_deref(),
            remark_image_uri: remark_image_uri.as_deref(),
            conv_type: conv_type.as_str(),
            phone_visible: *phone_visible,
            active: !side.is_empty(),
            created_at: *created_at,
            updated_at: *updated_at,
        }
    }
}

/// A list row: the driving row, the reverse row of the same pair (if any), and the other user.
type ListRow = (SideRow, Option<SideRow>, UserRow);

// The statements of a transition. Each is a query expression, written once and compiled for
// every connection it runs on: the blocking pool's two (through `native!`) and the async worker
// connection PostgreSQL's transitions use (`transition_attempt!`). The marker types keep one
// prepared statement per statement (`Cached`).

/// Marks the pair lock's statement.
struct LockPair;
/// Marks the row upsert. Every column of `SideValues` is set (`treat_none_as_null`), so it is
/// one SQL text.
struct WriteSide;
/// Marks the version bump.
struct NextVersion;
/// Marks the list-stamp bump.
struct NextListStamp;

/// PostgreSQL's `void`, the result of a function that returns nothing.
#[derive(Debug, diesel::sql_types::SqlType, diesel::query_builder::QueryId)]
#[diesel(postgres_type(name = "void"))]
pub struct Void;

diesel::define_sql_function! {
    /// PostgreSQL's two-key transaction-scoped advisory lock.
    fn pg_advisory_xact_lock(
        key1: diesel::sql_types::Integer,
        key2: diesel::sql_types::Integer,
    ) -> Void;
}

/// Serialises the transitions on the pair (low, high) until the transaction ends (PostgreSQL
/// only). An advisory lock on the pair, so a pair with no rows yet can be locked without
/// inserting placeholder rows first (an insert, an update of the same rows and often a delete:
/// three index-maintaining writes where one upsert does). SQLite's `BEGIN IMMEDIATE` already
/// keeps every other writer out.
///
/// The two-key form of the lock is a key space apart from the one-key migration lock. Two pairs
/// that fold to the same key only wait for each other: the lock is the first a transition takes,
/// so the wait cannot close a cycle. `IS NULL` gives the `void` result a type to load, and a
/// load (not `execute`) keeps the statement prepared (see `Cached`).
macro_rules! lock_pair_query {
    ($low:expr, $high:expr) => {
        Cached::<_, LockPair>::new(diesel::select(
            pg_advisory_xact_lock(fold_id($low), fold_id($high)).is_null(),
        ))
    };
}

/// A user id folded to one of the lock's 32-bit keys; every bit of the id counts.
pub(crate) fn fold_id(id: i64) -> i32 {
    let bits = id as u64;
    // Truncation is the point: the high half is mixed into the low half first.
    ((bits ^ (bits >> 32)) as u32) as i32
}

/// The rows (a → b) and (b → a), keyed by owner, in one statement (so from one snapshot).
#[diesel::dsl::auto_type]
fn pair_rows(a: i64, b: i64) -> _ {
    let columns: (relationships::owner, SideColumns) = (relationships::owner, SIDE_COLUMNS);
    let rows: both_rows = both_rows(a, b);
    relationships::table.filter(rows).select(columns)
}

/// `user`'s (registered, friend_verification), what a transition's decision knows of them.
#[diesel::dsl::auto_type]
fn counterpart_of(user: i64) -> _ {
    let columns: (users::registered, users::friend_verification) =
        (users::registered, users::friend_verification);
    users::table.find(user).select(columns)
}

/// The [`Counterpart`] of the columns `counterpart_of` reads.
pub(crate) fn counterpart((registered, friend_verification): (bool, bool)) -> Counterpart {
    Counterpart {
        registered,
        friend_verification,
    }
}

/// A row that friend-list pages show (`SideFilter::Friendship`). The friend-list cache's
/// restamping (`Watchers`, `transition_attempt!`) must reach exactly the owners of such rows.
#[diesel::dsl::auto_type]
pub(crate) fn in_friend_list() -> _ {
    let none: &'static str = Friendship::None.as_str();
    relationships::friendship.ne(none)
}

/// The rows (a → b) and (b → a).
#[diesel::dsl::auto_type]
fn both_rows(a: i64, b: i64) -> _ {
    relationships::owner
        .eq(a)
        .and(relationships::other.eq(b))
        .or(relationships::owner.eq(b).and(relationships::other.eq(a)))
}

/// The sides of a pair from its rows keyed by owner: `first`'s side, then the other's; a
/// missing row is the empty side.
fn sides_of(rows: Vec<(i64, SideRow)>, first: i64) -> Result<[Side; 2], StoreError> {
    let mut sides = [Side::default(), Side::default()];
    for (owner, row) in rows {
        sides[usize::from(owner != first)] = row.into_side()?;
    }
    Ok(sides)
}

/// Writes the row (owner → other) from `SideValues`, inserting it if the pair had none;
/// returns the owner. `RETURNING` and a load, not `execute`: see `Cached` on why only a load
/// stays prepared.
macro_rules! write_side_query {
    ($owner:expr, $other:expr, $values:expr) => {
        Cached::<_, WriteSide>::new(
            diesel::insert_into(relationships::table)
                .values((
                    relationships::owner.eq($owner),
                    relationships::other.eq($other),
                    $values,
                ))
                .on_conflict((relationships::owner, relationships::other))
                .do_update()
                .set($values)
                .returning(relationships::owner),
        )
    };
}

/// Adds one to a counter of `owner`'s users row and returns the new value (no row: no such
/// user); `$marker` names its prepared statement. Locks the user's row until the transaction
/// ends. The counters: the sync `version`, and the `list_stamp` (see `ListCache`).
macro_rules! bump_query {
    ($marker:ty, $column:expr, $owner:expr) => {
        Cached::<_, $marker>::new(
            diesel::update(users::table.find($owner))
                .set($column.eq($column + 1))
                .returning($column),
        )
    };
}

/// One change-log entry: owner, version, kind, subject, detail, time.
type ChangeEntry = (i64, i64, &'static str, i64, Option<i64>, Millis);

/// The insert values of one change-log row.
type ChangeValues = (
    diesel::dsl::Eq<changes::owner, i64>,
    diesel::dsl::Eq<changes::version, i64>,
    diesel::dsl::Eq<changes::kind, &'static str>,
    diesel::dsl::Eq<changes::subject, Option<i64>>,
    diesel::dsl::Eq<changes::detail, Option<i64>>,
    diesel::dsl::Eq<changes::at, Millis>,
);

/// The rows that log `entries`, for one insert. An array, so each length is one cached
/// statement.
fn change_rows<const N: usize>(entries: [ChangeEntry; N]) -> [ChangeValues; N] {
    entries.map(|(owner, version, kind, subject, detail, at)| {
        (
            changes::owner.eq(owner),
            changes::version.eq(version),
            changes::kind.eq(kind),
            changes::subject.eq(Some(subject)),
            changes::detail.eq(detail),
            changes::at.eq(at),
        )
    })
}

/// Writes the row (owner → other), inserting it if the pair had none: a transition's row write
/// on its own, for the test that it stays prepared.
#[cfg(test)]
pub(crate) fn write_side(
    conn: &mut DbConn,
    owner: i64,
    other: i64,
    side: &Side,
) -> Result<(), StoreError> {
    let values = SideValues::new(side);
    native!(conn, |c| write_side_query!(owner, other, values)
        .get_result::<i64>(c))
    .map_err(StoreError::user_reference)?;
    Ok(())
}

/// Takes `owner`'s next sync version and logs a change of `kind` to `subject` (for
/// relationships, the owner's row on that user; the address book uses it too).
pub(crate) fn record_change(
    conn: &mut DbConn,
    owner: i64,
    kind: &'static str,
    subject: i64,
    at: Millis,
) -> Result<(), StoreError> {
    record_change_detail(conn, owner, kind, subject, None, at)
}

/// [`record_change`] with a second id, for changes that name a pair such as (group, member).
pub(crate) fn record_change_detail(
    conn: &mut DbConn,
    owner: i64,
    kind: &'static str,
    subject: i64,
    detail: Option<i64>,
    at: Millis,
) -> Result<(), StoreError> {
    let version = next_version(conn, owner)?;
    execute_native(
        conn,
        diesel::insert_into(changes::table)
            .values(change_rows([(owner, version, kind, subject, detail, at)])),
    )?;
    Ok(())
}

/// Takes `owner`'s next sync version (locking the user's row until the transaction ends).
pub(crate) fn next_version(conn: &mut DbConn, owner: i64) -> Result<i64, StoreError> {
    native!(conn, |c| bump_query!(NextVersion, users::version, owner)
        .get_result::<i64>(c))
    .optional()?
    .ok_or(StoreError::NotFound("user"))
}

/// What a transition does to the users row of one of its two owners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OwnerEffect {
    /// The owner's row changed: the owner takes the next sync version and logs the change.
    Logged,
    /// The owner's row did not change, but it is in their friend list and the other side
    /// did: their list stamp moves (`ListCache`), which their sync log does not show.
    Restamped,
    /// Neither.
    Untouched,
}

/// The two rows of the transition `t` of `me` on `other`, mine first: owner, subject, the
/// owner's side, and what the transition does to the owner's users row.
pub(crate) fn owner_rows(
    me: i64,
    other: i64,
    t: &Transition,
) -> [(i64, i64, &Side, OwnerEffect); 2] {
    let any_changed = t.mine_changed || t.theirs_changed;
    let effect = |side: &Side, changed: bool| {
        if changed {
            OwnerEffect::Logged
        } else if any_changed && side.friendship != Friendship::None {
            OwnerEffect::Restamped
        } else {
            OwnerEffect::Untouched
        }
    };
    [
        (
            me,
            other,
            &t.pair.mine,
            effect(&t.pair.mine, t.mine_changed),
        ),
        (
            other,
            me,
            &t.pair.theirs,
            effect(&t.pair.theirs, t.theirs_changed),
        ),
    ]
}

/// Runs one statement of a transition on a blocking-pool connection's own `PgConnection` or
/// `SqliteConnection` (see `transition_attempt!`).
macro_rules! run_native {
    ($conn:ident, $query:expr, $method:ident) => {
        diesel::RunQueryDsl::$method($query, $conn)
    };
}

/// Runs one statement of a transition on a worker's async connection (see
/// `transition_attempt!`), its SQL text rendered once (`prerendered!`).
macro_rules! run_on_worker {
    ($conn:ident, $query:expr, $method:ident) => {
        diesel_async::RunQueryDsl::$method(prerendered!($query), &mut *$conn).await
    };
}

/// The first half of a transition's attempt, for both kinds of connection: locks the pair
/// (`$pg`: on PostgreSQL; SQLite's `BEGIN IMMEDIATE` already keeps other writers out), reads
/// its two rows and the other user, and decides. `$run!($conn, query, method)` runs one
/// statement on `$conn` and gives its `QueryResult` (`run_native` or `run_on_worker`).
/// Evaluates to the `Transition`, or returns the error from the enclosing function.
macro_rules! decide_attempt {
    ($run:ident, $conn:ident, $pg:expr, $me:expr, $other:expr, $decide:expr) => {{
        let (me, other): (i64, i64) = ($me, $other);
        let (low, high) = (me.min(other), me.max(other));
        if $pg {
            let _: bool = $run!($conn, lock_pair_query!(low, high), get_result)?;
        }
        let rows: Vec<(i64, SideRow)> = $run!($conn, pair_rows(low, high), load)?;
        let mut sides = sides_of(rows, low)?;
        if me != low {
            sides.swap(0, 1);
        }
        let [mine, theirs] = sides;
        let pair = Pair { mine, theirs };
        let them: Option<(bool, bool)> =
            $run!($conn, counterpart_of(other), get_result).optional()?;

        $decide(&pair, them.map(counterpart)).map_err(StoreError::Rule)?
    }};
}

/// One attempt at a transition on PostgreSQL, inside a write transaction, written once for
/// both kinds of PostgreSQL connection (`decide_attempt!` on `$run`), then the writes through
/// the query builder. Expands to the body of a function that returns `Result<Transition,
/// StoreError>`. `crate::batch` does the same for many pairs at once, and
/// `crate::sqlite_writes` the writes on SQLite; keep the three in step.
macro_rules! transition_attempt {
    ($run:ident, $conn:ident, $me:expr, $other:expr, $decide:expr) => {{
        let (me, other): (i64, i64) = ($me, $other);
        let t = decide_attempt!($run, $conn, true, me, other, $decide);

        let rows = owner_rows(me, other, &t);
        for &(owner, subject, side, effect) in &rows {
            if effect == OwnerEffect::Logged {
                let values = SideValues::new(side);
                let _: i64 = $run!($conn, write_side_query!(owner, subject, values), get_result)
                    .map_err(StoreError::user_reference)?;
            }
        }
        // Users rows in id order: every transition locks them after its pair, and one order
        // keeps transitions on two pairs with a user in common from deadlocking.
        let mut owners = rows;
        owners.sort_unstable_by_key(|&(owner, ..)| owner);
        let mut entries = Vec::with_capacity(2);
        for (owner, subject, side, effect) in owners {
            if effect == OwnerEffect::Logged {
                let version: Option<i64> = $run!(
                    $conn,
                    bump_query!(NextVersion, users::version, owner),
                    get_result
                )
                .optional()?;
                let version = version.ok_or(StoreError::NotFound("user"))?;
                entries.push((
                    owner,
                    version,
                    CHANGE_KIND_RELATIONSHIP,
                    subject,
                    None,
                    side.updated_at,
                ));
            } else if effect == OwnerEffect::Restamped {
                let _: Option<i64> = $run!(
                    $conn,
                    bump_query!(NextListStamp, users::list_stamp, owner),
                    get_result
                )
                .optional()?;
            }
        }
        // A transition has two rows, so at most two entries.
        match entries[..] {
            [one] => {
                $run!(
                    $conn,
                    diesel::insert_into(changes::table).values(change_rows([one])),
                    execute
                )?;
            }
            [a, b] => {
                $run!(
                    $conn,
                    diesel::insert_into(changes::table).values(change_rows([a, b])),
                    execute
                )?;
            }
            _ => {}
        }
        Ok(t)
    }};
}

/// One attempt at a transition on a blocking-pool connection, inside `write_tx` (or a SQLite
/// batch's transaction, `crate::batch`).
pub(crate) fn transition_tx(
    conn: &mut DbConn,
    me: i64,
    other: i64,
    decide: &Decide,
) -> Result<Transition, StoreError> {
    match conn {
        DbConn::Pg(c) => transition_attempt!(run_native, c, me, other, decide),
        DbConn::Sqlite(c) => {
            let t = decide_attempt!(run_native, c, false, me, other, decide);
            let rows = owner_rows(me, other, &t).map(|(owner, subject, side, effect)| {
                (owner, subject, SideValues::new(side), effect)
            });
            crate::sqlite_writes::write(c, rows)?;
            Ok(t)
        }
    }
}

/// One attempt at a transition on a worker's PostgreSQL connection, inside its transaction.
async fn transition_on_worker(
    conn: &mut AsyncPgConnection,
    me: i64,
    other: i64,
    decide: &Decide,
) -> Result<Transition, StoreError> {
    transition_attempt!(run_on_worker, conn, me, other, decide)
}

/// Runs `$attempt` (one attempt at `$transitions` transitions, in a transaction of its own)
/// until it succeeds, fails for good, or has run `TRANSITION_ATTEMPTS` times; evaluates to its
/// last result. Each attempt decides again on what it read (a `Decide` is pure). Used by the
/// single transition and by a batch (`crate::batch`).
macro_rules! with_retries {
    ($transitions:expr, $attempt:expr) => {{
        let mut attempt = 1;
        loop {
            let result: Result<_, StoreError> = $attempt;
            match result {
                Err(err) if attempt < TRANSITION_ATTEMPTS && retryable(&err) => {
                    tracing::warn!(
                        error = %err,
                        attempt,
                        transitions = $transitions,
                        "relationship transition retried"
                    );
                    attempt += 1;
                }
                done => break done,
            }
        }
    }};
}
pub(crate) use with_retries;

/// Failures that leave nothing behind and may pass on a second try: a unique clash with a
/// concurrent insert, a serialisation failure or deadlock, a busy database.
pub(crate) fn retryable(err: &StoreError) -> bool {
    matches!(err, StoreError::Conflict(_) | StoreError::Unavailable(_))
}

impl Store {
    /// `owner`'s `(version, list_stamp)`, which a cached friend-list page must match; `None`
    /// for no such user.
    async fn list_stamp(&self, owner: i64) -> DomainResult<Option<Stamp>> {
        read!(
            self,
            users::table
                .find(owner)
                .select((users::version, users::list_stamp)),
            get_result,
            |row: QueryResult<Stamp>| Ok(row.optional()?)
        )
    }

    /// One page of `owner`'s list. Each query is driven by an index range on the owner (or,
    /// for followers, on the other column) and joins the reverse row of each pair, so the two
    /// sides come from one statement's snapshot.
    async fn list_page(
        &self,
        owner: i64,
        filter: SideFilter,
        page: Page,
    ) -> DomainResult<Vec<Arc<Related>>> {
        if page.limit == 0 {
            return Ok(Vec::new());
        }
        let after = page.after.map_or(0, UserId::get);
        let limit = i64::from(page.limit);
        let reverse = diesel::alias!(relationships as reverse);
        let reverse_of_row = reverse
            .field(relationships::owner)
            .eq(relationships::other)
            .and(reverse.field(relationships::other).eq(relationships::owner));

        // One static query per filter, not a boxed one: boxed queries cannot run natively.
        // `$key` is the column that holds the owner, `$listed` the listed user's column; each
        // row comes back as (the row keyed by `$key`, its reverse, the listed user).
        macro_rules! page {
            ($key:expr, $listed:expr, $extra:expr, |$row:ident, $rev:ident, $user:ident| $entry:expr) => {
                read!(
                    self,
                    relationships::table
                        .inner_join(users::table.on(users::id.eq($listed)))
                        .left_join(reverse.on(reverse_of_row))
                        .filter($key.eq(owner))
                        .filter($listed.gt(after))
                        .filter($extra)
                        .order($listed)
                        .limit(limit)
                        .select((
                            SIDE_COLUMNS,
                            reverse.fields(SIDE_COLUMNS).nullable(),
                            UserRow::as_select(),
                        )),
                    load,
                    |rows: QueryResult<Vec<ListRow>>| rows?
                        .into_iter()
                        .map(|($row, $rev, $user)| $entry)
                        .collect::<Result<Vec<_>, StoreError>>()
                )
            };
        }
        macro_rules! mine {
            ($extra:expr) => {
                page!(
                    relationships::owner,
                    relationships::other,
                    $extra,
                    |mine, theirs, user| related(user, Some(mine), theirs)
                )
            };
        }
        let friendship_is = |f: Friendship| relationships::friendship.eq(f.as_str());
        match filter {
            SideFilter::Any => mine!(relationships::active),
            SideFilter::Friendship => {
                mine!(in_friend_list())
            }
            SideFilter::Friends => mine!(friendship_is(Friendship::Friends)),
            SideFilter::Incoming => mine!(friendship_is(Friendship::RequestedBy)),
            SideFilter::Outgoing => mine!(friendship_is(Friendship::Requested)),
            SideFilter::Following => mine!(relationships::following),
            SideFilter::Blocking => mine!(relationships::blocking),
            // Their rows on the owner, as the owner may have no row on a follower; the owner's
            // row on each of them is the reverse.
            SideFilter::Followers => page!(
                relationships::other,
                relationships::owner,
                relationships::following,
                |theirs, mine, user| related(user, mine, Some(theirs))
            ),
        }
    }
}

/// Whether `filter`'s pages may be kept in the `ListCache`: those that list only rows in the
/// friend list ([`in_friend_list`]), the rows whose changes move their owner's stamp. Followers,
/// followees and blocks may have no friendship; a celebrity's million followers are too many to
/// restamp on every change of its profile.
fn cacheable(filter: SideFilter) -> bool {
    matches!(
        filter,
        SideFilter::Friendship | SideFilter::Friends | SideFilter::Incoming | SideFilter::Outgoing
    )
}

/// A list entry; a missing row is an empty side.
fn related(
    user: UserRow,
    mine: Option<SideRow>,
    theirs: Option<SideRow>,
) -> Result<Arc<Related>, StoreError> {
    let side = |row: Option<SideRow>| row.map_or_else(|| Ok(Side::default()), SideRow::into_side);
    Ok(Arc::new(Related {
        user: user.into_profile()?,
        mine: side(mine)?,
        theirs: side(theirs)?,
    }))
}

#[async_trait]
impl RelationshipStore for Store {
    async fn transition(
        &self,
        me: UserId,
        other: UserId,
        decide: Decide,
    ) -> DomainResult<Transition> {
        if me == other {
            // Both "rows" would be one; the table's CHECK refuses it anyway.
            return Err(DomainError::invalid("id", "cannot be yourself"));
        }
        let (me, other) = (me.get(), other.get());
        // Transitions asked for at once share a transaction (`crate::batch`).
        if let Some(batcher) = self.batcher() {
            return self.on_worker(batcher.submit(me, other, decide)).await;
        }
        // PostgreSQL's transitions run on the worker's own connection when it has them: a
        // transition is nine round trips, each a wait the worker can spend on other requests
        // instead of a blocking-pool thread sleeping on its socket.
        if let Some(pg) = self.async_pg() {
            return self
                .on_worker(async move {
                    pg.run(move |conn| {
                        Box::pin(async move {
                            with_retries!(1, {
                                conn.transaction(async |c| {
                                    transition_on_worker(c, me, other, &decide).await
                                })
                                .await
                            })
                        })
                    })
                    .await?
                })
                .await;
        }
        self.serial_write(move |conn| {
            with_retries!(1, {
                write_tx(conn, |conn| transition_tx(conn, me, other, &decide))
            })
        })
        .await
    }

    async fn pair(&self, me: UserId, other: UserId) -> DomainResult<Pair> {
        let (me, other) = (me.get(), other.get());
        // One statement, so both sides come from the same snapshot.
        read!(self, pair_rows(me, other), load, |rows: QueryResult<
            Vec<(i64, SideRow)>,
        >| {
            let [mine, theirs] = sides_of(rows?, me)?;
            Ok(Pair { mine, theirs })
        })
    }

    async fn list(
        &self,
        owner: UserId,
        filter: SideFilter,
        page: Page,
    ) -> DomainResult<Vec<Arc<Related>>> {
        if !cacheable(filter) || page.limit == 0 || !self.lists().enabled() {
            return self.list_page(owner.get(), filter, page).await;
        }
        let key = PageKey {
            owner: owner.get(),
            filter,
            after: page.after.map_or(0, UserId::get),
            limit: i64::from(page.limit),
        };
        // The stamp before the page: a page read after it is at least as new, so keeping the
        // page under it can make a later read miss, never serve a stale page.
        let Some(stamp) = self.list_stamp(owner.get()).await? else {
            return self.list_page(owner.get(), filter, page).await;
        };
        if let Some(rows) = self.lists().get(key, stamp) {
            return Ok(rows);
        }
        let rows = self.list_page(owner.get(), filter, page).await?;
        self.lists().put(key, stamp, &rows);
        Ok(rows)
    }

    async fn find_request(
        &self,
        owner: UserId,
        request_id: RequestId,
    ) -> DomainResult<Option<UserId>> {
        self.run(move |conn| {
            let pending = [
                Friendship::Requested,
                Friendship::RequestedBy,
                Friendship::Ignored,
            ]
            .map(|f| f.as_str());
            relationships::table
                .filter(relationships::owner.eq(owner.get()))
                .filter(relationships::request_id.eq(request_id.get()))
                .filter(relationships::friendship.eq_any(pending))
                .select(relationships::other)
                .first::<i64>(conn)
                .optional()?
                .map(to_user_id)
                .transpose()
        })
        .await
    }

    async fn count_incoming(&self, owner: UserId) -> DomainResult<u64> {
        self.run(move |conn| {
            let n = relationships::table
                .filter(relationships::owner.eq(owner.get()))
                .filter(relationships::friendship.eq(Friendship::RequestedBy.as_str()))
                .count()
                .get_result::<i64>(conn)?;
            u64::try_from(n).map_err(|_| StoreError::Internal("negative count".to_owned()))
        })
        .await
    }

    async fn ensure_user(
        &self,
        phone: &Phone,
        candidate: UserId,
        now: Millis,
    ) -> DomainResult<UserProfile> {
        let e164 = phone.e164().to_owned();
        let region = phone.region().to_owned();
        self.serial_write(move |conn| {
            let id = ensure_placeholder(conn, candidate, &e164, &region, now)?;
            users::table
                .find(id.get())
                .select(UserRow::as_select())
                .first(conn)?
                .into_profile()
        })
        .await
    }
}
