//! [`SyncStore`] on the database: snapshot reads of the change log and the state it names,
//! compaction, and the multi-owner change recording that profile fan-out needs.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use kith_domain::addressbook::{ContactId, TagId};
use kith_domain::sync::{
    Compacted, Entry, PeerState, SyncRead, SyncStore, SyncVersion, FRIEND_LIST_STATES,
};
use kith_domain::{DomainResult, Millis, UserId};

use crate::accounts::UserRow;
use crate::addressbook::{ContactRow, TagRow};
use crate::conn::{execute_native, write_tx, DbConn};
use crate::error::StoreError;
use crate::groups::{co_members, group_full_state, group_sync_rows};
use crate::relationships::{in_friend_list, SideRow, SIDE_COLUMNS};
use crate::schema::{changes, contacts, relationships, sync_floors, tags, users};
use crate::store::{to_user_id, Store};

/// `changes.kind` values, as the writers record them.
const KIND_USER: &str = "user";
const KIND_RELATIONSHIP: &str = "relationship";
const KIND_CONTACT: &str = "contact";
const KIND_TAG: &str = "tag";
const KIND_GROUP: &str = "group";
const KIND_GROUP_MEMBER: &str = "group_member";

/// The most values one `IN (...)` list carries, far below SQLite's bound-parameter limit.
const IN_CHUNK: usize = 500;
/// The most ids one lock statement names (PostgreSQL allows 65,535 parameters).
const LOCK_CHUNK: usize = 10_000;
/// Rows per multi-row insert of change entries (six parameters each).
const INSERT_CHUNK: usize = 500;
/// Owners compacted per write transaction, so SQLite's write lock is never held for long.
const COMPACT_OWNERS_PER_TX: usize = 100;

/// Runs `f` in a read-only snapshot: `REPEATABLE READ READ ONLY` on PostgreSQL; on SQLite a
/// deferred transaction, whose first read fixes the WAL snapshot every later read sees. A write
/// committed meanwhile is either wholly visible or not at all.
pub(crate) fn read_tx<T>(
    conn: &mut DbConn,
    f: impl FnOnce(&mut DbConn) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    match conn {
        DbConn::Sqlite(c) => AnsiTransactionManager::begin_transaction_sql(c, "BEGIN DEFERRED")?,
        DbConn::Pg(c) => AnsiTransactionManager::begin_transaction_sql(
            c,
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        )?,
    }
    match f(conn) {
        Ok(value) => {
            <DbConn as Connection>::TransactionManager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(err) => match <DbConn as Connection>::TransactionManager::rollback_transaction(conn) {
            Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => Err(err),
            Err(rollback) => Err(rollback.into()),
        },
    }
}

fn version_of(raw: i64) -> Result<SyncVersion, StoreError> {
    SyncVersion::from_stored(raw).map_err(|_| StoreError::Corrupt("a negative version".into()))
}

fn to_i64(v: SyncVersion) -> Result<i64, StoreError> {
    i64::try_from(v.get()).map_err(|_| StoreError::Internal("version out of range".into()))
}

/// What the entries after a version name, deduplicated, with the latest instant of each.
#[derive(Debug, Default)]
struct Named {
    user: bool,
    peers: BTreeMap<i64, Millis>,
    contacts: BTreeMap<i64, Millis>,
    tags: BTreeMap<i64, Millis>,
    groups: BTreeSet<i64>,
    members: BTreeSet<(i64, i64)>,
}

/// Reads the owner's entries after `since`, by the (owner, version) key.
fn named_since(conn: &mut DbConn, owner: i64, since: i64) -> Result<Named, StoreError> {
    let rows: Vec<(String, Option<i64>, Option<i64>, i64)> = changes::table
        .filter(changes::owner.eq(owner))
        .filter(changes::version.gt(since))
        .order(changes::version)
        .select((
            changes::kind,
            changes::subject,
            changes::detail,
            changes::at,
        ))
        .load(conn)?;
    let mut named = Named::default();
    let latest = |map: &mut BTreeMap<i64, Millis>, id: i64, at: Millis| {
        let slot = map.entry(id).or_insert(at);
        *slot = (*slot).max(at);
    };
    for (kind, subject, detail, at) in rows {
        let missing = || StoreError::Corrupt(format!("a {kind} change without its subject"));
        match kind.as_str() {
            KIND_USER => named.user = true,
            KIND_RELATIONSHIP => latest(&mut named.peers, subject.ok_or_else(missing)?, at),
            KIND_CONTACT => latest(&mut named.contacts, subject.ok_or_else(missing)?, at),
            KIND_TAG => latest(&mut named.tags, subject.ok_or_else(missing)?, at),
            KIND_GROUP => {
                named.groups.insert(subject.ok_or_else(missing)?);
            }
            KIND_GROUP_MEMBER => {
                named
                    .members
                    .insert((subject.ok_or_else(missing)?, detail.ok_or_else(missing)?));
            }
            other => {
                // A kind this build does not know (written by a newer one): nothing to show.
                tracing::warn!(kind = other, "sync skipped a change of unknown kind");
            }
        }
    }
    Ok(named)
}

fn profile_of(conn: &mut DbConn, id: i64) -> Result<kith_domain::ports::UserProfile, StoreError> {
    users::table
        .find(id)
        .select(UserRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(StoreError::NotFound("user"))?
        .into_profile()
}

/// The owner's rows on these users and their profiles.
fn peers_named(
    conn: &mut DbConn,
    owner: i64,
    named: &BTreeMap<i64, Millis>,
) -> Result<Vec<PeerState>, StoreError> {
    let ids: Vec<i64> = named.keys().copied().collect();
    let mut sides = BTreeMap::new();
    let mut profiles = BTreeMap::new();
    for chunk in ids.chunks(IN_CHUNK) {
        let rows: Vec<(i64, SideRow)> = relationships::table
            .filter(relationships::owner.eq(owner))
            .filter(relationships::other.eq_any(chunk))
            .select((relationships::other, SIDE_COLUMNS))
            .load(conn)?;
        for (other, row) in rows {
            sides.insert(other, row.into_side()?);
        }
        let users: Vec<UserRow> = users::table
            .filter(users::id.eq_any(chunk))
            .select(UserRow::as_select())
            .load(conn)?;
        for row in users {
            let p = row.into_profile()?;
            profiles.insert(p.id.get(), p);
        }
    }
    named
        .iter()
        .map(|(&id, &at)| {
            Ok(PeerState {
                id: to_user_id(id)?,
                user: profiles.remove(&id),
                mine: sides.remove(&id),
                changed_at: at,
            })
        })
        .collect()
}

fn contacts_named(
    conn: &mut DbConn,
    owner: i64,
    named: &BTreeMap<i64, Millis>,
) -> Result<Vec<Entry<ContactId, kith_domain::addressbook::Contact>>, StoreError> {
    let ids: Vec<i64> = named.keys().copied().collect();
    let mut found = BTreeMap::new();
    for chunk in ids.chunks(IN_CHUNK) {
        let rows: Vec<ContactRow> = contacts::table
            .filter(contacts::owner.eq(owner))
            .filter(contacts::id.eq_any(chunk))
            .select(ContactRow::as_select())
            .load(conn)?;
        for row in rows {
            let c = row.into_contact()?;
            found.insert(c.id.get(), c);
        }
    }
    named
        .iter()
        .map(|(&id, &at)| match found.remove(&id) {
            Some(c) => Ok(Entry::Present(c)),
            None => Ok(Entry::Deleted {
                id: ContactId::from_stored(id)
                    .map_err(|_| StoreError::Corrupt("a contact change names a bad id".into()))?,
                at,
            }),
        })
        .collect()
}

fn tags_named(
    conn: &mut DbConn,
    owner: i64,
    named: &BTreeMap<i64, Millis>,
) -> Result<Vec<Entry<TagId, kith_domain::addressbook::Tag>>, StoreError> {
    let ids: Vec<i64> = named.keys().copied().collect();
    let mut found = BTreeMap::new();
    for chunk in ids.chunks(IN_CHUNK) {
        let rows: Vec<TagRow> = tags::table
            .filter(tags::owner.eq(owner))
            .filter(tags::id.eq_any(chunk))
            .select(TagRow::as_select())
            .load(conn)?;
        for row in rows {
            let t = row.into_tag()?;
            found.insert(t.id.get(), t);
        }
    }
    named
        .iter()
        .map(|(&id, &at)| match found.remove(&id) {
            Some(t) => Ok(Entry::Present(t)),
            None => Ok(Entry::Deleted {
                id: TagId::from_stored(id)
                    .map_err(|_| StoreError::Corrupt("a tag change names a bad id".into()))?,
                at,
            }),
        })
        .collect()
}

/// The owner's full state: profile, every active relationship row, the address book, groups.
fn full_state(conn: &mut DbConn, owner: i64, read: &mut SyncRead) -> Result<(), StoreError> {
    read.user = Some(profile_of(conn, owner)?);
    let rows: Vec<(SideRow, UserRow)> = relationships::table
        .inner_join(users::table.on(users::id.eq(relationships::other)))
        .filter(relationships::owner.eq(owner))
        .filter(relationships::active)
        .order(relationships::other)
        .select((SIDE_COLUMNS, UserRow::as_select()))
        .load(conn)?;
    read.peers = rows
        .into_iter()
        .map(|(side, user)| {
            let user = user.into_profile()?;
            Ok(PeerState {
                id: user.id,
                user: Some(user),
                mine: Some(side.into_side()?),
                changed_at: 0,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    read.contacts = contacts::table
        .filter(contacts::owner.eq(owner))
        .order(contacts::id)
        .select(ContactRow::as_select())
        .load(conn)?
        .into_iter()
        .map(|row| row.into_contact().map(Entry::Present))
        .collect::<Result<_, _>>()?;
    read.tags = tags::table
        .filter(tags::owner.eq(owner))
        .order(tags::id)
        .select(TagRow::as_select())
        .load(conn)?
        .into_iter()
        .map(|row| row.into_tag().map(Entry::Present))
        .collect::<Result<_, _>>()?;
    (read.groups, read.group_members) = group_full_state(conn, owner)?;
    Ok(())
}

/// One sync read, inside the snapshot.
fn read_since_tx(
    conn: &mut DbConn,
    owner: i64,
    since: SyncVersion,
) -> Result<SyncRead, StoreError> {
    let version = users::table
        .find(owner)
        .select(users::version)
        .first::<i64>(conn)
        .optional()?
        .ok_or(StoreError::NotFound("user"))?;
    let floor = sync_floors::table
        .find(owner)
        .select(sync_floors::floor)
        .first::<i64>(conn)
        .optional()?
        .unwrap_or(0);
    let mut read = SyncRead {
        version: version_of(version)?,
        floor: version_of(floor)?,
        ..SyncRead::default()
    };
    if since == SyncVersion::ZERO {
        full_state(conn, owner, &mut read)?;
        return Ok(read);
    }
    if since < read.floor || since >= read.version {
        return Ok(read);
    }
    let named = named_since(conn, owner, to_i64(since)?)?;
    if named.user {
        read.user = Some(profile_of(conn, owner)?);
    }
    read.peers = peers_named(conn, owner, &named.peers)?;
    read.contacts = contacts_named(conn, owner, &named.contacts)?;
    read.tags = tags_named(conn, owner, &named.tags)?;
    if !named.groups.is_empty() || !named.members.is_empty() {
        let groups: Vec<i64> = named.groups.into_iter().collect();
        let members: Vec<(i64, i64)> = named.members.into_iter().collect();
        (read.groups, read.group_members) = group_sync_rows(conn, owner, &groups, &members)?;
    }
    Ok(read)
}

/// One compaction: per owner, deletes the entries up to the newest one recorded before
/// `before`, and raises the floor to it.
fn compact_all(conn: &mut DbConn, before: Millis) -> Result<Compacted, StoreError> {
    // An index range on `changes_at`: only the entries past the horizon are read.
    let olds: Vec<(i64, Option<i64>)> = changes::table
        .filter(changes::at.lt(before))
        .group_by(changes::owner)
        .select((changes::owner, diesel::dsl::max(changes::version)))
        .load(conn)?;
    let mut done = Compacted::default();
    for chunk in olds.chunks(COMPACT_OWNERS_PER_TX) {
        let (owners, entries) = write_tx(conn, |conn| {
            let (mut owners, mut entries) = (0u64, 0u64);
            for &(owner, floor) in chunk {
                let Some(floor) = floor else { continue };
                let deleted = diesel::delete(
                    changes::table
                        .filter(changes::owner.eq(owner))
                        .filter(changes::version.le(floor)),
                )
                .execute(conn)?;
                // The same SQL on both backends; MultiConnection's DSL has no ON CONFLICT.
                diesel::sql_query(
                    "INSERT INTO sync_floors (owner, floor) VALUES ($1, $2) \
                     ON CONFLICT (owner) DO UPDATE SET floor = CASE \
                     WHEN excluded.floor > sync_floors.floor THEN excluded.floor \
                     ELSE sync_floors.floor END",
                )
                .bind::<BigInt, _>(owner)
                .bind::<BigInt, _>(floor)
                .execute(conn)?;
                owners += 1;
                entries += u64::try_from(deleted).unwrap_or(u64::MAX);
            }
            Ok((owners, entries))
        })?;
        done.owners += owners;
        done.entries += entries;
    }
    Ok(done)
}

/// One change entry to record: `owner`'s view of `subject` (and `detail`) changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Change {
    pub(crate) owner: i64,
    pub(crate) kind: &'static str,
    pub(crate) subject: i64,
    pub(crate) detail: Option<i64>,
}

/// Locks these users' rows on PostgreSQL, in ascending id order (the contract's lock order);
/// SQLite's `BEGIN IMMEDIATE` already serialises writers.
pub(crate) fn lock_users(conn: &mut DbConn, ids: &BTreeSet<i64>) -> Result<(), StoreError> {
    if let DbConn::Pg(c) = conn {
        let ids: Vec<i64> = ids.iter().copied().collect();
        for chunk in ids.chunks(LOCK_CHUNK) {
            users::table
                .filter(users::id.eq_any(chunk))
                .order(users::id)
                .select(users::id)
                .for_update()
                .load::<i64>(c)?;
        }
    }
    Ok(())
}

/// Records many owners' changes: one version bump per owner, the entries numbered in the order
/// given. The caller has locked every owner ([`lock_users`]) on PostgreSQL.
pub(crate) fn record_changes_for(
    conn: &mut DbConn,
    list: &[Change],
    at: Millis,
) -> Result<(), StoreError> {
    let mut per_owner: BTreeMap<i64, Vec<&Change>> = BTreeMap::new();
    for c in list {
        per_owner.entry(c.owner).or_default().push(c);
    }
    // Owners with the same number of entries share one UPDATE.
    let mut by_count: BTreeMap<usize, Vec<i64>> = BTreeMap::new();
    for (owner, entries) in &per_owner {
        by_count.entry(entries.len()).or_default().push(*owner);
    }
    let mut last_version: BTreeMap<i64, i64> = BTreeMap::new();
    for (n, owners) in by_count {
        let n = i64::try_from(n).map_err(|_| StoreError::Internal("too many changes".into()))?;
        for chunk in owners.chunks(IN_CHUNK) {
            let bumped: Vec<(i64, i64)> =
                diesel::update(users::table.filter(users::id.eq_any(chunk)))
                    .set(users::version.eq(users::version + n))
                    .returning((users::id, users::version))
                    .get_results(conn)?;
            if bumped.len() != chunk.len() {
                return Err(StoreError::NotFound("user"));
            }
            last_version.extend(bumped);
        }
    }
    let mut rows = Vec::with_capacity(list.len());
    for (owner, entries) in &per_owner {
        let last = last_version
            .get(owner)
            .copied()
            .ok_or(StoreError::NotFound("user"))?;
        let n = i64::try_from(entries.len()).unwrap_or(i64::MAX);
        for (c, version) in entries.iter().zip(last - n + 1..) {
            rows.push((
                changes::owner.eq(c.owner),
                changes::version.eq(version),
                changes::kind.eq(c.kind),
                changes::subject.eq(Some(c.subject)),
                changes::detail.eq(c.detail),
                changes::at.eq(at),
            ));
        }
    }
    for chunk in rows.chunks(INSERT_CHUNK) {
        execute_native(conn, diesel::insert_into(changes::table).values(chunk))?;
    }
    Ok(())
}

/// Who shows a user's profile: the owners of friend-list rows on them (the sync log's
/// [`FRIEND_LIST_STATES`], and the friend-list cache's every friendship but `none`), and every
/// (group, member) of the groups they belong to (them included).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Watchers {
    /// Owners whose synced friend list shows the user.
    friends: Vec<i64>,
    /// Owners whose friend-list pages show the user (`friends` and the `deleted` rows).
    listers: Vec<i64>,
    co_members: Vec<(i64, i64)>,
}

impl Watchers {
    fn read(conn: &mut DbConn, user: i64) -> Result<Self, StoreError> {
        let rows = relationships::table
            .filter(relationships::other.eq(user))
            .filter(in_friend_list())
            .order(relationships::owner)
            .select((relationships::owner, relationships::friendship))
            .load::<(i64, String)>(conn)?;
        let friends = rows
            .iter()
            .filter(|(_, f)| FRIEND_LIST_STATES.iter().any(|s| s.as_str() == f))
            .map(|&(owner, _)| owner)
            .collect();
        Ok(Self {
            friends,
            listers: rows.into_iter().map(|(owner, _)| owner).collect(),
            co_members: co_members(conn, user)?,
        })
    }

    fn owners(&self, user: i64) -> BTreeSet<i64> {
        let mut ids: BTreeSet<i64> = self.listers.iter().copied().collect();
        ids.extend(self.co_members.iter().map(|&(_, m)| m));
        ids.insert(user);
        ids
    }

    /// Reads and locks the watchers of `user` (and `user`) in ascending id order. A watcher
    /// that appears between the read and the lock is read again and locked too: any later one
    /// must record a change for `user` (a row leaves friendship `none` only in a transition that
    /// changes both rows of the pair), so it waits for this transaction and then reads the new
    /// profile anyway.
    pub(crate) fn lock(conn: &mut DbConn, user: i64) -> Result<Self, StoreError> {
        let first = Self::read(conn, user)?;
        if matches!(conn, DbConn::Sqlite(_)) {
            return Ok(first);
        }
        let locked = first.owners(user);
        lock_users(conn, &locked)?;
        let again = Self::read(conn, user)?;
        let extra: BTreeSet<i64> = again.owners(user).difference(&locked).copied().collect();
        // Out of the global order, but rare; a deadlock is detected and the caller retries.
        lock_users(conn, &extra)?;
        Ok(again)
    }

    /// Moves the list stamp of every owner whose friend-list pages show `user`, whose profile
    /// changed: their cached pages (`ListCache`) are read again. Their sync logs are untouched.
    pub(crate) fn restamp_lists(&self, conn: &mut DbConn) -> Result<(), StoreError> {
        for chunk in self.listers.chunks(IN_CHUNK) {
            execute_native(
                conn,
                diesel::update(users::table.filter(users::id.eq_any(chunk)))
                    .set(users::list_stamp.eq(users::list_stamp + 1)),
            )?;
        }
        Ok(())
    }

    /// Records that `user`'s public profile changed in each watcher's view.
    pub(crate) fn record(
        &self,
        conn: &mut DbConn,
        user: i64,
        at: Millis,
    ) -> Result<(), StoreError> {
        let mut list: Vec<Change> = self
            .friends
            .iter()
            .filter(|&&f| f != user)
            .map(|&owner| Change {
                owner,
                kind: KIND_RELATIONSHIP,
                subject: user,
                detail: None,
            })
            .collect();
        list.extend(self.co_members.iter().map(|&(group, owner)| Change {
            owner,
            kind: KIND_GROUP_MEMBER,
            subject: group,
            detail: Some(user),
        }));
        list.sort_unstable();
        list.dedup();
        record_changes_for(conn, &list, at)
    }
}

#[async_trait]
impl SyncStore for Store {
    async fn read_since(&self, owner: UserId, since: SyncVersion) -> DomainResult<SyncRead> {
        self.run(move |conn| read_tx(conn, |conn| read_since_tx(conn, owner.get(), since)))
            .await
    }

    async fn compact(&self, before: Millis) -> DomainResult<Compacted> {
        self.run_beside_writer(move |conn| compact_all(conn, before))
            .await
    }
}
