//! [`GroupStore`](kith_domain::group::GroupStore) on the database: groups and their members,
//! written in transactions that lock the group row, and the group rows incremental sync reads.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use diesel::prelude::*;
use kith_domain::group::{
    change_entries, GroupDecide, GroupInfo, GroupMemberDelta, GroupRecord, GroupRole, GroupState,
    GroupStore, Member, MemberView, MembershipDelta, MyGroup,
};
use kith_domain::ids::GroupId;
use kith_domain::{DomainResult, UserId};

use crate::conn::{execute_native, write_tx, DbConn};
use crate::error::StoreError;
use crate::schema::{chat_groups, group_members, users};
use crate::store::{to_user_id, Store};
use crate::sync::{lock_users, record_changes_for, Change};

/// How many times a group write runs when the database refuses it for a reason a retry cures.
const WRITE_ATTEMPTS: u32 = 3;

/// The most values one `IN (...)` list carries; SQLite caps bound parameters per statement.
const IN_CHUNK: usize = 500;

/// One `chat_groups` row.
#[derive(Queryable, Selectable, Insertable, AsChangeset, Debug, Clone)]
#[diesel(table_name = chat_groups)]
pub(crate) struct GroupRow {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) portrait_uri: String,
    pub(crate) creator_id: i64,
    pub(crate) bulletin: String,
    pub(crate) bulletin_at: i64,
    pub(crate) member_count: i32,
    pub(crate) dismissed: bool,
    pub(crate) stamp: i64,
    pub(crate) created_at: i64,
}

impl GroupRow {
    /// The row of a group and its member count.
    fn of(g: &GroupRecord, member_count: usize) -> Result<Self, StoreError> {
        Ok(Self {
            id: g.id.get(),
            name: g.name.clone(),
            portrait_uri: g.portrait_uri.clone(),
            creator_id: g.creator.get(),
            bulletin: g.bulletin.clone(),
            bulletin_at: g.bulletin_at,
            member_count: i32::try_from(member_count)
                .map_err(|_| StoreError::Internal("member count overflows".to_owned()))?,
            dismissed: g.dismissed,
            stamp: g.stamp,
            created_at: g.created_at,
        })
    }

    /// The domain record.
    fn record(&self) -> Result<GroupRecord, StoreError> {
        Ok(GroupRecord {
            id: to_group_id(self.id)?,
            name: self.name.clone(),
            portrait_uri: self.portrait_uri.clone(),
            creator: to_user_id(self.creator_id)?,
            bulletin: self.bulletin.clone(),
            bulletin_at: self.bulletin_at,
            dismissed: self.dismissed,
            stamp: self.stamp,
            created_at: self.created_at,
        })
    }

    /// The sync view of the group.
    fn info(&self) -> Result<GroupInfo, StoreError> {
        Ok(GroupInfo {
            id: to_group_id(self.id)?,
            name: self.name.clone(),
            portrait_uri: self.portrait_uri.clone(),
            creator: to_user_id(self.creator_id)?,
            member_count: u32::try_from(self.member_count)
                .map_err(|_| StoreError::Corrupt("chat_groups.member_count < 0".to_owned()))?,
            stamp: self.stamp,
        })
    }
}

/// One `group_members` row.
#[derive(Queryable, Selectable, Insertable, AsChangeset, Debug, Clone)]
#[diesel(table_name = group_members)]
pub(crate) struct MemberRow {
    pub(crate) group_id: i64,
    pub(crate) member_id: i64,
    pub(crate) role: i32,
    pub(crate) display_name: String,
    pub(crate) joined_at: i64,
    pub(crate) stamp: i64,
}

impl MemberRow {
    fn of(group: GroupId, user: UserId, m: &Member) -> Self {
        Self {
            group_id: group.get(),
            member_id: user.get(),
            role: m.role.code(),
            display_name: m.display_name.clone(),
            joined_at: m.joined_at,
            stamp: m.stamp,
        }
    }

    fn member(&self) -> Result<Member, StoreError> {
        Ok(Member {
            role: self.role()?,
            display_name: self.display_name.clone(),
            joined_at: self.joined_at,
            stamp: self.stamp,
        })
    }

    fn role(&self) -> Result<GroupRole, StoreError> {
        GroupRole::from_code(self.role)
            .ok_or_else(|| StoreError::Corrupt("group_members.role is not a known role".to_owned()))
    }
}

/// Checks a stored group id.
pub(crate) fn to_group_id(raw: i64) -> Result<GroupId, StoreError> {
    GroupId::new(raw).map_err(|_| StoreError::Corrupt(format!("group id {raw} out of range")))
}

/// The `chat_groups` rows with these ids, by id.
fn groups_by_id(
    conn: &mut DbConn,
    ids: &BTreeSet<i64>,
) -> Result<BTreeMap<i64, GroupRow>, StoreError> {
    let ids: Vec<i64> = ids.iter().copied().collect();
    let mut out = BTreeMap::new();
    for chunk in ids.chunks(IN_CHUNK) {
        let rows: Vec<GroupRow> = chat_groups::table
            .filter(chat_groups::id.eq_any(chunk))
            .select(GroupRow::as_select())
            .load(conn)?;
        out.extend(rows.into_iter().map(|r| (r.id, r)));
    }
    Ok(out)
}

/// Nickname and portrait of these users, by id.
fn faces(
    conn: &mut DbConn,
    ids: &BTreeSet<i64>,
) -> Result<BTreeMap<i64, (String, String)>, StoreError> {
    let ids: Vec<i64> = ids.iter().copied().collect();
    let mut out = BTreeMap::new();
    for chunk in ids.chunks(IN_CHUNK) {
        let rows: Vec<(i64, String, String)> = users::table
            .filter(users::id.eq_any(chunk))
            .select((users::id, users::nickname, users::portrait_uri))
            .load(conn)?;
        out.extend(rows.into_iter().map(|(id, n, p)| (id, (n, p))));
    }
    Ok(out)
}

/// A membership delta from the group and, when the user is a member, their row.
fn membership_delta(
    group: &GroupRow,
    row: Option<&MemberRow>,
) -> Result<MembershipDelta, StoreError> {
    let info = group.info()?;
    Ok(match row {
        Some(m) => MembershipDelta {
            stamp: m.stamp.max(group.stamp),
            role: m.role()?,
            display_name: m.display_name.clone(),
            deleted: false,
            group: info,
        },
        None => MembershipDelta {
            stamp: group.stamp,
            role: GroupRole::Member,
            display_name: String::new(),
            deleted: true,
            group: info,
        },
    })
}

/// A member delta from the group, the member's face and, when a member, their row.
fn member_delta(
    group: &GroupRow,
    member: i64,
    row: Option<&MemberRow>,
    face: Option<&(String, String)>,
) -> Result<GroupMemberDelta, StoreError> {
    let (nickname, portrait_uri) = face.cloned().unwrap_or_default();
    let (role, display_name, deleted, stamp) = match row {
        Some(m) => (m.role()?, m.display_name.clone(), false, m.stamp),
        None => (GroupRole::Member, String::new(), true, group.stamp),
    };
    Ok(GroupMemberDelta {
        group: to_group_id(group.id)?,
        member: to_user_id(member)?,
        role,
        display_name,
        deleted,
        stamp,
        nickname,
        portrait_uri,
    })
}

/// The current state of each named membership of `owner` and of each named (group, member)
/// row, `deleted: true` when absent. Groups with no row at all are left out. Runs in the
/// caller's transaction; takes no locks.
pub(crate) fn group_sync_rows(
    conn: &mut DbConn,
    owner: i64,
    groups: &[i64],
    members: &[(i64, i64)],
) -> Result<(Vec<MembershipDelta>, Vec<GroupMemberDelta>), StoreError> {
    let mut wanted_groups: BTreeSet<i64> = groups.iter().copied().collect();
    wanted_groups.extend(members.iter().map(|&(g, _)| g));
    let rows = groups_by_id(conn, &wanted_groups)?;

    let mut memberships = Vec::new();
    let own: BTreeSet<i64> = groups.iter().copied().collect();
    let own_ids: Vec<i64> = own.iter().copied().collect();
    let mut mine: BTreeMap<i64, MemberRow> = BTreeMap::new();
    for chunk in own_ids.chunks(IN_CHUNK) {
        let found: Vec<MemberRow> = group_members::table
            .filter(group_members::member_id.eq(owner))
            .filter(group_members::group_id.eq_any(chunk))
            .select(MemberRow::as_select())
            .load(conn)?;
        mine.extend(found.into_iter().map(|m| (m.group_id, m)));
    }
    for g in &own {
        if let Some(group) = rows.get(g) {
            memberships.push(membership_delta(group, mine.get(g))?);
        }
    }

    let pairs: BTreeSet<(i64, i64)> = members.iter().copied().collect();
    let mut by_group: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for &(g, m) in &pairs {
        by_group.entry(g).or_default().push(m);
    }
    let mut found: BTreeMap<(i64, i64), MemberRow> = BTreeMap::new();
    for (g, ms) in &by_group {
        for chunk in ms.chunks(IN_CHUNK) {
            let rows: Vec<MemberRow> = group_members::table
                .filter(group_members::group_id.eq(g))
                .filter(group_members::member_id.eq_any(chunk))
                .select(MemberRow::as_select())
                .load(conn)?;
            found.extend(rows.into_iter().map(|r| ((r.group_id, r.member_id), r)));
        }
    }
    let people: BTreeSet<i64> = pairs.iter().map(|&(_, m)| m).collect();
    let faces = faces(conn, &people)?;
    let mut member_rows = Vec::new();
    for &(g, m) in &pairs {
        if let Some(group) = rows.get(&g) {
            member_rows.push(member_delta(group, m, found.get(&(g, m)), faces.get(&m))?);
        }
    }
    Ok((memberships, member_rows))
}

/// Every current membership of `owner`, and every member row of those groups, by group then
/// member. Runs in the caller's transaction; takes no locks.
pub(crate) fn group_full_state(
    conn: &mut DbConn,
    owner: i64,
) -> Result<(Vec<MembershipDelta>, Vec<GroupMemberDelta>), StoreError> {
    let mine: Vec<(MemberRow, GroupRow)> = group_members::table
        .inner_join(chat_groups::table)
        .filter(group_members::member_id.eq(owner))
        .filter(chat_groups::dismissed.eq(false))
        .order(group_members::group_id)
        .select((MemberRow::as_select(), GroupRow::as_select()))
        .load(conn)?;
    let mut memberships = Vec::with_capacity(mine.len());
    let mut members = Vec::new();
    for (row, group) in &mine {
        memberships.push(membership_delta(group, Some(row))?);
        let all: Vec<(MemberRow, String, String)> = group_members::table
            .inner_join(users::table.on(users::id.eq(group_members::member_id)))
            .filter(group_members::group_id.eq(group.id))
            .order(group_members::member_id)
            .select((MemberRow::as_select(), users::nickname, users::portrait_uri))
            .load(conn)?;
        for (m, nickname, portrait) in all {
            let face = (nickname, portrait);
            members.push(member_delta(group, m.member_id, Some(&m), Some(&face))?);
        }
    }
    Ok((memberships, members))
}

/// (group, member) for every member of every group `user` belongs to (`user` included), by
/// group then member: whose views show `user`'s nickname and portrait. Takes no locks.
pub(crate) fn co_members(conn: &mut DbConn, user: i64) -> Result<Vec<(i64, i64)>, StoreError> {
    let others = diesel::alias!(group_members as others);
    Ok(group_members::table
        .inner_join(
            others.on(others
                .field(group_members::group_id)
                .eq(group_members::group_id)),
        )
        .filter(group_members::member_id.eq(user))
        .order((
            others.field(group_members::group_id),
            others.field(group_members::member_id),
        ))
        .select((
            others.field(group_members::group_id),
            others.field(group_members::member_id),
        ))
        .load(conn)?)
}

/// Reads a group and its members. With `lock`, PostgreSQL holds the group row `FOR UPDATE`
/// until the transaction ends (SQLite's `BEGIN IMMEDIATE` already keeps other writers out), so
/// two writes to one group, such as two adds racing for the last places, run one after the other.
fn load_state(conn: &mut DbConn, group: i64, lock: bool) -> Result<Option<GroupState>, StoreError> {
    let row = match conn {
        DbConn::Pg(c) if lock => chat_groups::table
            .find(group)
            .select(GroupRow::as_select())
            .for_update()
            .first::<GroupRow>(c)
            .optional()?,
        _ => chat_groups::table
            .find(group)
            .select(GroupRow::as_select())
            .first::<GroupRow>(conn)
            .optional()?,
    };
    let Some(row) = row else {
        return Ok(None);
    };
    let rows: Vec<MemberRow> = group_members::table
        .filter(group_members::group_id.eq(group))
        .order(group_members::member_id)
        .select(MemberRow::as_select())
        .load(conn)?;
    let mut members = BTreeMap::new();
    for m in rows {
        members.insert(to_user_id(m.member_id)?, m.member()?);
    }
    Ok(Some(GroupState {
        group: row.record()?,
        members,
    }))
}

/// How many groups each of these users belongs to.
fn group_counts(
    conn: &mut DbConn,
    ids: &BTreeSet<i64>,
) -> Result<BTreeMap<UserId, u32>, StoreError> {
    let ids: Vec<i64> = ids.iter().copied().collect();
    let mut out = BTreeMap::new();
    for &id in &ids {
        out.insert(to_user_id(id)?, 0);
    }
    for chunk in ids.chunks(IN_CHUNK) {
        let counts: Vec<(i64, i64)> = group_members::table
            .filter(group_members::member_id.eq_any(chunk))
            .group_by(group_members::member_id)
            .select((group_members::member_id, diesel::dsl::count_star()))
            .load(conn)?;
        for (id, n) in counts {
            let n = u32::try_from(n).map_err(|_| StoreError::Internal("bad count".to_owned()))?;
            out.insert(to_user_id(id)?, n);
        }
    }
    Ok(out)
}

/// Writes the difference between `before` and `after` and records its change entries.
fn write_diff(
    conn: &mut DbConn,
    before: Option<&GroupState>,
    after: &GroupState,
) -> Result<(), StoreError> {
    let g = after.group.id;
    let row = GroupRow::of(&after.group, after.members.len())?;
    if before.is_some() {
        diesel::update(chat_groups::table.find(g.get()))
            .set(&row)
            .execute(conn)?;
    } else {
        diesel::insert_into(chat_groups::table)
            .values(&row)
            .execute(conn)
            .map_err(|e| match StoreError::from(e) {
                StoreError::Conflict(_) => StoreError::Conflict("groupId"),
                other => other,
            })?;
    }
    let empty = BTreeMap::new();
    let old = before.map_or(&empty, |b| &b.members);
    for user in old.keys() {
        if !after.members.contains_key(user) {
            diesel::delete(group_members::table.find((g.get(), user.get()))).execute(conn)?;
        }
    }
    let mut inserts = Vec::new();
    for (user, m) in &after.members {
        match old.get(user) {
            None => inserts.push(MemberRow::of(g, *user, m)),
            Some(o) if o != m => {
                diesel::update(group_members::table.find((g.get(), user.get())))
                    .set(MemberRow::of(g, *user, m))
                    .execute(conn)?;
            }
            Some(_) => {}
        }
    }
    for chunk in inserts.chunks(IN_CHUNK) {
        execute_native(
            conn,
            diesel::insert_into(group_members::table).values(chunk),
        )
        .map_err(StoreError::user_reference)?;
    }
    // Every owner was locked by `write_group_tx`, as `record_changes_for` requires.
    let entries: Vec<Change> = change_entries(before, after)
        .into_iter()
        .map(|e| Change {
            owner: e.owner.get(),
            kind: e.kind,
            subject: e.subject.get(),
            detail: e.detail.map(UserId::get),
        })
        .collect();
    record_changes_for(conn, &entries, after.group.stamp)
}

/// One attempt at a group write, inside `write_tx`.
fn write_group_tx(
    conn: &mut DbConn,
    group: GroupId,
    joining: &[UserId],
    decide: &GroupDecide,
) -> Result<GroupState, StoreError> {
    let before = load_state(conn, group.get(), true)?;
    let joining: BTreeSet<i64> = joining.iter().map(|u| u.get()).collect();
    let mut everyone = joining.clone();
    if let Some(b) = &before {
        everyone.extend(b.members.keys().map(|u| u.get()));
    }
    // Also keeps the group counts read after it true until commit.
    lock_users(conn, &everyone)?;
    let counts = group_counts(conn, &joining)?;
    let after = decide(before.as_ref(), &counts).map_err(StoreError::Rule)?;
    if before.as_ref() != Some(&after) {
        write_diff(conn, before.as_ref(), &after)?;
    }
    Ok(after)
}

/// Failures that leave nothing behind and may pass on a second try: a unique clash with a
/// concurrent insert, a serialisation failure or deadlock, a busy database.
fn retryable(err: &StoreError) -> bool {
    matches!(err, StoreError::Conflict(_) | StoreError::Unavailable(_))
}

#[async_trait]
impl GroupStore for Store {
    async fn write(
        &self,
        group: GroupId,
        joining: Vec<UserId>,
        decide: GroupDecide,
    ) -> DomainResult<GroupState> {
        self.serial_write(move |conn| {
            let mut attempt = 1;
            loop {
                let result = write_tx(conn, |conn| write_group_tx(conn, group, &joining, &decide));
                match result {
                    // `decide` is pure, so running the whole transaction again is safe.
                    Err(err) if attempt < WRITE_ATTEMPTS && retryable(&err) => {
                        tracing::warn!(error = %err, attempt, "group write retried");
                        attempt += 1;
                    }
                    done => return done,
                }
            }
        })
        .await
    }

    async fn state(&self, group: GroupId) -> DomainResult<Option<GroupState>> {
        self.run(move |conn| {
            // One transaction, so the group and its members come from one snapshot.
            conn.transaction(|conn| load_state(conn, group.get(), false))
        })
        .await
    }

    async fn member_views(&self, group: GroupId) -> DomainResult<Vec<MemberView>> {
        self.run(move |conn| {
            let rows: Vec<(MemberRow, String, String)> = group_members::table
                .inner_join(users::table.on(users::id.eq(group_members::member_id)))
                .filter(group_members::group_id.eq(group.get()))
                .order(group_members::member_id)
                .select((MemberRow::as_select(), users::nickname, users::portrait_uri))
                .load(conn)?;
            rows.into_iter()
                .map(|(m, nickname, portrait_uri)| {
                    Ok(MemberView {
                        user: to_user_id(m.member_id)?,
                        nickname,
                        portrait_uri,
                        member: m.member()?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn groups_of(&self, user: UserId) -> DomainResult<Vec<MyGroup>> {
        self.run(move |conn| {
            let rows: Vec<(MemberRow, GroupRow)> = group_members::table
                .inner_join(chat_groups::table)
                .filter(group_members::member_id.eq(user.get()))
                .order(group_members::group_id)
                .select((MemberRow::as_select(), GroupRow::as_select()))
                .load(conn)?;
            rows.into_iter()
                .map(|(m, g)| {
                    Ok(MyGroup {
                        info: g.info()?,
                        role: m.role()?,
                        display_name: m.display_name,
                    })
                })
                .collect()
        })
        .await
    }
}
