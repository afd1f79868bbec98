//! SealTalk groups: value types, roles, limits, the pure rules of every group command, and the
//! change-log entries each write records for incremental sync.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{DomainError, DomainResult};
use crate::ids::{GroupId, Millis, UserId};
use crate::ports::{AccountStore, Clock, Random, RelationshipStore};
use crate::values::{DisplayName, ImageUri};

#[cfg(test)]
mod tests;

/// A member's role in a group, with SealTalk's numbers.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub enum GroupRole {
    /// The one owner: dismisses, transfers, adds, kicks, names managers.
    Creator = 0,
    /// An ordinary member.
    #[default]
    Member = 1,
    /// Adds and kicks ordinary members.
    Manager = 2,
}

impl GroupRole {
    /// The number SealTalk shows and the database stores.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// Reads a stored number back; `None` for anything [`GroupRole::code`] does not write.
    pub fn from_code(code: i32) -> Option<Self> {
        match code {
            0 => Some(Self::Creator),
            1 => Some(Self::Member),
            2 => Some(Self::Manager),
            _ => None,
        }
    }

    /// Whether this role may add and kick members.
    pub fn manages(self) -> bool {
        matches!(self, Self::Creator | Self::Manager)
    }
}

/// A group as a member's sync view shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    /// The group.
    pub id: GroupId,
    /// Its name.
    pub name: String,
    /// Its portrait URL, "" when unset.
    pub portrait_uri: String,
    /// Its current creator.
    pub creator: UserId,
    /// How many members it has (0 once dismissed).
    pub member_count: u32,
    /// The group information's timestamp, bumped on every change of the group.
    pub stamp: Millis,
}

/// The state of one user's membership of one group, for incremental sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipDelta {
    /// The group.
    pub group: GroupInfo,
    /// The user's role ([`GroupRole::Member`] once deleted).
    pub role: GroupRole,
    /// The user's display name in the group ("" once deleted).
    pub display_name: String,
    /// The user is no longer a member, or the group was dismissed.
    pub deleted: bool,
    /// When this membership last changed: the later of the member row's and the group's stamp.
    pub stamp: Millis,
}

/// The state of one member row of one group, for incremental sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMemberDelta {
    /// The group.
    pub group: GroupId,
    /// The member.
    pub member: UserId,
    /// The member's role ([`GroupRole::Member`] once deleted).
    pub role: GroupRole,
    /// The member's display name in the group ("" once deleted).
    pub display_name: String,
    /// The user is no longer a member.
    pub deleted: bool,
    /// When the member row last changed (the group's stamp once deleted).
    pub stamp: Millis,
    /// The member's nickname.
    pub nickname: String,
    /// The member's portrait URL.
    pub portrait_uri: String,
}

/// The `changes.kind` of a change to a group's information or to the owner's membership of it.
pub const CHANGE_KIND_GROUP: &str = "group";
/// The `changes.kind` of a change to one member row of a group (the detail names the member).
pub const CHANGE_KIND_GROUP_MEMBER: &str = "group_member";

/// The tunable limits of groups (server config `KITH_GROUP_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupPolicy {
    /// The shortest group name, in characters.
    pub name_min_chars: usize,
    /// The longest group name, in characters.
    pub name_max_chars: usize,
    /// The longest bulletin, in characters.
    pub bulletin_max_chars: usize,
    /// The most members one group holds, its creator included.
    pub max_members: u32,
    /// The most groups one user belongs to.
    pub max_groups_per_user: u32,
}

impl Default for GroupPolicy {
    fn default() -> Self {
        Self {
            name_min_chars: 2,
            name_max_chars: 32,
            bulletin_max_chars: 1024,
            max_members: 500,
            max_groups_per_user: 500,
        }
    }
}

fn char_len(s: &str) -> usize {
    s.chars().count()
}

fn no_controls(field: &'static str, s: &str, allow_newlines: bool) -> DomainResult<()> {
    let bad = s
        .chars()
        .any(|c| c.is_control() && !(allow_newlines && matches!(c, '\n' | '\r' | '\t')));
    if bad {
        return Err(DomainError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// A group's name: within the policy's character range, not blank, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupName(String);

impl GroupName {
    /// Validates a name against `policy`. It is stored exactly as sent.
    pub fn new(raw: impl Into<String>, policy: &GroupPolicy) -> DomainResult<Self> {
        let raw = raw.into();
        let n = char_len(&raw);
        if n < policy.name_min_chars || n > policy.name_max_chars {
            return Err(DomainError::invalid(
                "name",
                format!(
                    "must be {} to {} characters",
                    policy.name_min_chars, policy.name_max_chars
                ),
            ));
        }
        if raw.trim().is_empty() {
            return Err(DomainError::invalid("name", "must not be blank"));
        }
        no_controls("name", &raw, false)?;
        Ok(Self(raw))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A group's bulletin: at most the policy's characters; empty clears it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Bulletin(String);

impl Bulletin {
    /// Validates a bulletin against `policy`. Line breaks and tabs are kept.
    pub fn new(raw: impl Into<String>, policy: &GroupPolicy) -> DomainResult<Self> {
        let raw = raw.into();
        if char_len(&raw) > policy.bulletin_max_chars {
            return Err(DomainError::invalid(
                "bulletin",
                format!("must be at most {} characters", policy.bulletin_max_chars),
            ));
        }
        no_controls("bulletin", &raw, true)?;
        Ok(Self(raw))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A list of user ids a command names (`memberIds`): deduplicated, in ascending order, at most
/// the policy's member limit long, never empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MemberIds(Vec<UserId>);

impl MemberIds {
    /// Validates a list. `allow_empty` is for group creation, where the creator alone is a group.
    pub fn new(
        ids: impl IntoIterator<Item = UserId>,
        policy: &GroupPolicy,
        allow_empty: bool,
    ) -> DomainResult<Self> {
        let set: BTreeSet<UserId> = ids.into_iter().collect();
        if set.is_empty() && !allow_empty {
            return Err(DomainError::invalid(
                "memberIds",
                "must name at least one user",
            ));
        }
        if set.len() > policy.max_members as usize {
            return Err(DomainError::invalid(
                "memberIds",
                format!("must name at most {} users", policy.max_members),
            ));
        }
        Ok(Self(set.into_iter().collect()))
    }

    /// Parses a list as clients send it (decimal ids), then validates it as [`MemberIds::new`]
    /// does. A list longer than the member limit is refused before any id is parsed, so a huge
    /// list costs nothing.
    pub fn parse<I>(raw: I, policy: &GroupPolicy, allow_empty: bool) -> DomainResult<Self>
    where
        I: IntoIterator,
        I::IntoIter: ExactSizeIterator,
        I::Item: AsRef<str>,
    {
        let raw = raw.into_iter();
        if raw.len() > policy.max_members as usize {
            return Err(DomainError::invalid(
                "memberIds",
                format!("must name at most {} users", policy.max_members),
            ));
        }
        let ids = raw
            .map(|r| {
                UserId::parse(r.as_ref())
                    .map_err(|_| DomainError::invalid("memberIds", "is not a user id"))
            })
            .collect::<DomainResult<Vec<_>>>()?;
        Self::new(ids, policy, allow_empty)
    }

    /// The ids, ascending.
    pub fn ids(&self) -> &[UserId] {
        &self.0
    }
}

/// A group as stored, without its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    /// The group.
    pub id: GroupId,
    /// Its name.
    pub name: String,
    /// Its portrait URL, "" when unset.
    pub portrait_uri: String,
    /// Its current creator (changes on transfer, or when the creator quits).
    pub creator: UserId,
    /// Its bulletin, "" when unset.
    pub bulletin: String,
    /// When the bulletin was last set (0 if never).
    pub bulletin_at: Millis,
    /// True once dismissed; a dismissed group has no members.
    pub dismissed: bool,
    /// The group information's timestamp, bumped on every change of the group or its members.
    pub stamp: Millis,
    /// When it was created.
    pub created_at: Millis,
}

/// One member of a group, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The member's role.
    pub role: GroupRole,
    /// The member's display name in the group, "" when unset.
    pub display_name: String,
    /// When the member joined (the oldest member inherits a group its creator leaves).
    pub joined_at: Millis,
    /// When this member row last changed.
    pub stamp: Millis,
}

/// A group and its current members: what every group command reads and writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupState {
    /// The group.
    pub group: GroupRecord,
    /// The current members, by user id.
    pub members: BTreeMap<UserId, Member>,
}

impl GroupState {
    /// How many members the group has.
    pub fn member_count(&self) -> u32 {
        u32::try_from(self.members.len()).unwrap_or(u32::MAX)
    }

    /// The role of `user`, if a member.
    pub fn role_of(&self, user: UserId) -> Option<GroupRole> {
        self.members.get(&user).map(|m| m.role)
    }

    /// The sync view of the group.
    pub fn info(&self) -> GroupInfo {
        GroupInfo {
            id: self.group.id,
            name: self.group.name.clone(),
            portrait_uri: self.group.portrait_uri.clone(),
            creator: self.group.creator,
            member_count: self.member_count(),
            stamp: self.group.stamp,
        }
    }
}

/// One member with their public profile, as the member list shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    /// The member.
    pub user: UserId,
    /// Their nickname.
    pub nickname: String,
    /// Their portrait URL.
    pub portrait_uri: String,
    /// Their member row.
    pub member: Member,
}

/// One group of a user's group list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MyGroup {
    /// The group.
    pub info: GroupInfo,
    /// The user's role in it.
    pub role: GroupRole,
    /// The user's display name in it.
    pub display_name: String,
}

/// What a caller asks of a group. Every command is applied by [`apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupCommand {
    /// Create the group with the actor as creator and these members.
    Create {
        /// Its name.
        name: GroupName,
        /// The other first members (the actor in the list is ignored).
        members: MemberIds,
    },
    /// Add these users (those already members are ignored).
    Add(MemberIds),
    /// Remove these members (those not members are ignored).
    Kick(MemberIds),
    /// The actor leaves.
    Quit,
    /// End the group.
    Dismiss,
    /// Make this member the creator; the actor becomes an ordinary member.
    Transfer(UserId),
    /// Rename the group.
    Rename(GroupName),
    /// Set (or with `None` clear) the group's portrait.
    SetPortrait(Option<ImageUri>),
    /// Set the bulletin ("" clears it).
    SetBulletin(Bulletin),
    /// Set the actor's own display name in the group ("" clears it).
    SetDisplayName(DisplayName),
    /// Make these members managers (`true`) or ordinary members (`false`).
    SetManagers(MemberIds, bool),
}

impl GroupCommand {
    /// The users the command may make members: their group counts must be read for the limit.
    pub fn joining(&self, actor: UserId) -> Vec<UserId> {
        match self {
            Self::Create { members, .. } => {
                let mut all: BTreeSet<UserId> = members.ids().iter().copied().collect();
                all.insert(actor);
                all.into_iter().collect()
            }
            Self::Add(members) => members.ids().to_vec(),
            _ => Vec::new(),
        }
    }
}

/// What [`apply`] needs besides the group and the command.
#[derive(Debug, Clone, Copy)]
pub struct GroupContext<'a> {
    /// Who asks.
    pub actor: UserId,
    /// The group the command is about (the id of a new group for `Create`).
    pub group: GroupId,
    /// Now.
    pub now: Millis,
    /// The limits.
    pub policy: &'a GroupPolicy,
    /// How many groups each user of [`GroupCommand::joining`] belongs to now.
    pub group_counts: &'a BTreeMap<UserId, u32>,
}

const NOT_MEMBER: DomainError = DomainError::Forbidden("you are not a member of this group");

/// Applies `cmd` of `ctx.actor` to the group as it stands (`None`: no such group) and returns
/// the group as it should be. Returns `before` unchanged when the command changes nothing. Errors:
/// `NotFound("group")` for an unknown or dismissed group, `Forbidden` for a non-member or a role
/// that may not, `Invalid` for a target that does not fit, `Conflict("groupId")` when a new
/// group's id is taken.
pub fn apply(
    before: Option<&GroupState>,
    cmd: &GroupCommand,
    ctx: &GroupContext<'_>,
) -> DomainResult<GroupState> {
    let before = match (before, cmd) {
        (None, GroupCommand::Create { name, members }) => return create(name, members, ctx),
        (Some(_), GroupCommand::Create { .. }) => return Err(DomainError::Conflict("groupId")),
        (None, _) => return Err(DomainError::NotFound("group")),
        (Some(s), _) if s.group.dismissed => return Err(DomainError::NotFound("group")),
        (Some(s), _) => s,
    };
    let actor = ctx.actor;
    let my_role = before.role_of(actor).ok_or(NOT_MEMBER)?;
    let mut next = before.clone();
    let now = ctx.now;
    match cmd {
        GroupCommand::Create { .. } => return Err(DomainError::Conflict("groupId")),
        GroupCommand::Add(ids) => {
            if !my_role.manages() {
                return Err(DomainError::Forbidden(
                    "only the creator and managers may add members",
                ));
            }
            let joining: Vec<UserId> = ids
                .ids()
                .iter()
                .copied()
                .filter(|u| !before.members.contains_key(u))
                .collect();
            check_room(before.members.len(), &joining, ctx)?;
            for u in joining {
                next.members.insert(u, new_member(GroupRole::Member, now));
            }
        }
        GroupCommand::Kick(ids) => {
            if !my_role.manages() {
                return Err(DomainError::Forbidden(
                    "only the creator and managers may kick members",
                ));
            }
            for &u in ids.ids() {
                if u == actor {
                    return Err(DomainError::invalid(
                        "memberIds",
                        "cannot kick yourself: quit instead",
                    ));
                }
                match before.role_of(u) {
                    None => {}
                    Some(GroupRole::Creator) => {
                        return Err(DomainError::Forbidden("the creator cannot be kicked"))
                    }
                    Some(GroupRole::Manager) if my_role != GroupRole::Creator => {
                        return Err(DomainError::Forbidden("only the creator may kick managers"))
                    }
                    Some(_) => {
                        next.members.remove(&u);
                    }
                }
            }
        }
        GroupCommand::Quit => {
            next.members.remove(&actor);
            if next.members.is_empty() {
                next.group.dismissed = true;
            } else if my_role == GroupRole::Creator {
                // The longest-standing member inherits; ties go to the smaller id.
                let heir = next
                    .members
                    .iter()
                    .min_by_key(|(id, m)| (m.joined_at, **id))
                    .map(|(id, _)| *id)
                    .ok_or(DomainError::Internal(
                        "a non-empty group has no member".into(),
                    ))?;
                set_role(&mut next, heir, GroupRole::Creator, now);
                next.group.creator = heir;
            }
        }
        GroupCommand::Dismiss => {
            creator_only(my_role, "only the creator may dismiss the group")?;
            next.members.clear();
            next.group.dismissed = true;
        }
        GroupCommand::Transfer(to) => {
            creator_only(my_role, "only the creator may transfer the group")?;
            if *to == actor {
                return Err(DomainError::invalid("userId", "you already own this group"));
            }
            if !before.members.contains_key(to) {
                return Err(DomainError::invalid(
                    "userId",
                    "is not a member of this group",
                ));
            }
            set_role(&mut next, actor, GroupRole::Member, now);
            set_role(&mut next, *to, GroupRole::Creator, now);
            next.group.creator = *to;
        }
        GroupCommand::Rename(name) => {
            managers_only(
                my_role,
                "only the creator and managers may rename the group",
            )?;
            next.group.name = name.as_str().to_owned();
        }
        GroupCommand::SetPortrait(uri) => {
            managers_only(
                my_role,
                "only the creator and managers may set the group portrait",
            )?;
            next.group.portrait_uri = uri.as_ref().map_or("", ImageUri::as_str).to_owned();
        }
        GroupCommand::SetBulletin(text) => {
            managers_only(
                my_role,
                "only the creator and managers may set the bulletin",
            )?;
            if next.group.bulletin != text.as_str() {
                next.group.bulletin = text.as_str().to_owned();
                next.group.bulletin_at = now;
            }
        }
        GroupCommand::SetDisplayName(name) => {
            if let Some(m) = next.members.get_mut(&actor) {
                if m.display_name != name.as_str() {
                    m.display_name = name.as_str().to_owned();
                    m.stamp = now;
                }
            }
        }
        GroupCommand::SetManagers(ids, manager) => {
            creator_only(my_role, "only the creator may name managers")?;
            let role = if *manager {
                GroupRole::Manager
            } else {
                GroupRole::Member
            };
            for &u in ids.ids() {
                match before.role_of(u) {
                    None => {
                        return Err(DomainError::invalid(
                            "memberIds",
                            format!("{u} is not a member of this group"),
                        ))
                    }
                    Some(GroupRole::Creator) => {
                        return Err(DomainError::invalid(
                            "memberIds",
                            "the creator's role cannot change",
                        ))
                    }
                    Some(_) => set_role(&mut next, u, role, now),
                }
            }
        }
    }
    if next != *before {
        next.group.stamp = now.max(before.group.stamp);
    }
    Ok(next)
}

fn new_member(role: GroupRole, now: Millis) -> Member {
    Member {
        role,
        display_name: String::new(),
        joined_at: now,
        stamp: now,
    }
}

fn set_role(state: &mut GroupState, user: UserId, role: GroupRole, now: Millis) {
    if let Some(m) = state.members.get_mut(&user) {
        if m.role != role {
            m.role = role;
            m.stamp = now;
        }
    }
}

fn creator_only(role: GroupRole, why: &'static str) -> DomainResult<()> {
    if role == GroupRole::Creator {
        Ok(())
    } else {
        Err(DomainError::Forbidden(why))
    }
}

fn managers_only(role: GroupRole, why: &'static str) -> DomainResult<()> {
    if role.manages() {
        Ok(())
    } else {
        Err(DomainError::Forbidden(why))
    }
}

/// Refuses joiners that would overfill the group or exceed their own group limit.
fn check_room(current: usize, joining: &[UserId], ctx: &GroupContext<'_>) -> DomainResult<()> {
    let max = ctx.policy.max_members as usize;
    if current + joining.len() > max {
        return Err(DomainError::invalid(
            "memberIds",
            format!("a group has at most {max} members"),
        ));
    }
    for u in joining {
        let count = ctx.group_counts.get(u).copied().unwrap_or(0);
        if count >= ctx.policy.max_groups_per_user {
            return Err(DomainError::invalid(
                "memberIds",
                format!(
                    "{u} is already in {} groups, the most one user may join",
                    ctx.policy.max_groups_per_user
                ),
            ));
        }
    }
    Ok(())
}

fn create(
    name: &GroupName,
    members: &MemberIds,
    ctx: &GroupContext<'_>,
) -> DomainResult<GroupState> {
    let others: Vec<UserId> = members
        .ids()
        .iter()
        .copied()
        .filter(|u| *u != ctx.actor)
        .collect();
    let mut joining = others.clone();
    joining.push(ctx.actor);
    check_room(0, &joining, ctx)?;
    let mut state = GroupState {
        group: GroupRecord {
            id: ctx.group,
            name: name.as_str().to_owned(),
            portrait_uri: String::new(),
            creator: ctx.actor,
            bulletin: String::new(),
            bulletin_at: 0,
            dismissed: false,
            stamp: ctx.now,
            created_at: ctx.now,
        },
        members: BTreeMap::new(),
    };
    state
        .members
        .insert(ctx.actor, new_member(GroupRole::Creator, ctx.now));
    for u in others {
        state
            .members
            .insert(u, new_member(GroupRole::Member, ctx.now));
    }
    Ok(state)
}

/// One change-log entry a group write records (see the sync contract).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChangeEntry {
    /// Whose sync view changed.
    pub owner: UserId,
    /// [`CHANGE_KIND_GROUP`] or [`CHANGE_KIND_GROUP_MEMBER`].
    pub kind: &'static str,
    /// The group.
    pub subject: GroupId,
    /// The member, for [`CHANGE_KIND_GROUP_MEMBER`].
    pub detail: Option<UserId>,
}

/// The change-log entries of a write from `before` (`None`: the group is new) to `after`, by
/// ascending owner (the order stores must lock and bump owners in), without duplicates.
///
/// Every write bumps the group's stamp, so every member before or after gets a `group` entry.
/// Each member row that appeared, vanished or changed gets a `group_member` entry for every
/// member after the write and for the member itself. A joiner also gets a `group_member` entry
/// for every member after the write, so its devices learn the whole list from deltas alone.
pub fn change_entries(before: Option<&GroupState>, after: &GroupState) -> Vec<ChangeEntry> {
    if before == Some(after) {
        return Vec::new();
    }
    let empty = BTreeMap::new();
    let old = before.map_or(&empty, |b| &b.members);
    let new = &after.members;
    let g = after.group.id;
    let mut out: BTreeSet<ChangeEntry> = BTreeSet::new();
    let entry = |owner: UserId, detail: Option<UserId>| ChangeEntry {
        owner,
        kind: if detail.is_some() {
            CHANGE_KIND_GROUP_MEMBER
        } else {
            CHANGE_KIND_GROUP
        },
        subject: g,
        detail,
    };
    for &owner in old.keys().chain(new.keys()) {
        out.insert(entry(owner, None));
    }
    let touched: BTreeSet<UserId> = old
        .keys()
        .chain(new.keys())
        .copied()
        .filter(|u| old.get(u) != new.get(u))
        .collect();
    for &x in &touched {
        out.insert(entry(x, Some(x)));
        for &owner in new.keys() {
            out.insert(entry(owner, Some(x)));
        }
        if !old.contains_key(&x) && new.contains_key(&x) {
            for &y in new.keys() {
                out.insert(entry(x, Some(y)));
            }
        }
    }
    out.into_iter().collect()
}

/// Decides a group's next state inside the store's transaction, from the group as it stands
/// (`None`: no such group) and the group counts of [`GroupCommand::joining`]'s users. Pure, so a
/// store may run it again when it retries a transaction.
pub type GroupDecide = Box<
    dyn Fn(Option<&GroupState>, &BTreeMap<UserId, u32>) -> DomainResult<GroupState> + Send + Sync,
>;

/// Storage of groups and their members.
#[async_trait]
pub trait GroupStore: Send + Sync + std::fmt::Debug {
    /// In one transaction: locks the group row (absent: `None`), reads its members, locks the
    /// users rows of the members and of `joining` (ascending ids), counts the groups each of
    /// `joining` belongs to, calls `decide`, and when the result differs writes it (group row,
    /// member rows, member count) and records [`change_entries`] in their order, each bumping
    /// its owner's sync version. Returns the group as written. On an error nothing is written.
    async fn write(
        &self,
        group: GroupId,
        joining: Vec<UserId>,
        decide: GroupDecide,
    ) -> DomainResult<GroupState>;
    /// The group and its members; `None` when no such group was ever created.
    async fn state(&self, group: GroupId) -> DomainResult<Option<GroupState>>;
    /// The members of a group with their profiles, by ascending user id.
    async fn member_views(&self, group: GroupId) -> DomainResult<Vec<MemberView>>;
    /// The groups `user` belongs to, by ascending group id.
    async fn groups_of(&self, user: UserId) -> DomainResult<Vec<MyGroup>>;
}

/// The ports the group service drives.
#[derive(Debug, Clone)]
pub struct GroupPorts {
    /// Groups.
    pub store: Arc<dyn GroupStore>,
    /// Relationships, for who may be added.
    pub relationships: Arc<dyn RelationshipStore>,
    /// Users, for who exists and their privacy.
    pub accounts: Arc<dyn AccountStore>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Randomness for group ids.
    pub random: Arc<dyn Random>,
}

/// How many times a new group draws an id when the one drawn is taken.
const CREATE_ATTEMPTS: u32 = 4;

/// Group commands and reads, with every rule of who may do what.
#[derive(Debug)]
pub struct GroupService {
    ports: GroupPorts,
    policy: GroupPolicy,
}

impl GroupService {
    /// Builds the service.
    pub fn new(ports: GroupPorts, policy: GroupPolicy) -> Self {
        Self { ports, policy }
    }

    /// The limits in force (HTTP validates input against them).
    pub fn policy(&self) -> &GroupPolicy {
        &self.policy
    }

    /// Checks that `me` may make each of `users` a member: a registered user who has not
    /// blocked me, and my friend unless they let anyone add them to groups.
    async fn check_admission(&self, me: UserId, users: &[UserId]) -> DomainResult<()> {
        for &u in users {
            if u == me {
                continue;
            }
            let profile = self
                .ports
                .accounts
                .get_user(u)
                .await?
                .filter(|p| p.registered)
                .ok_or(DomainError::NotFound("user"))?;
            let pair = self.ports.relationships.pair(me, u).await?;
            if pair.theirs.blocking {
                return Err(DomainError::Forbidden(
                    "a user who blocked you cannot be added",
                ));
            }
            if !pair.mine.is_friend() && !profile.privacy.allow_group_invites {
                return Err(DomainError::Forbidden(
                    "only friends, or users who allow group invites, can be added",
                ));
            }
        }
        Ok(())
    }

    async fn run(&self, me: UserId, group: GroupId, cmd: GroupCommand) -> DomainResult<GroupState> {
        let joining = cmd.joining(me);
        let now = self.ports.clock.now();
        let policy = self.policy;
        let decide: GroupDecide = Box::new(move |before, counts| {
            apply(
                before,
                &cmd,
                &GroupContext {
                    actor: me,
                    group,
                    now,
                    policy: &policy,
                    group_counts: counts,
                },
            )
        });
        self.ports.store.write(group, joining, decide).await
    }

    /// The group, if `me` may see it: `NotFound` when unknown or dismissed, `Forbidden` when
    /// `me` is not a member.
    pub async fn group(&self, me: UserId, group: GroupId) -> DomainResult<GroupState> {
        let state = self
            .ports
            .store
            .state(group)
            .await?
            .filter(|s| !s.group.dismissed)
            .ok_or(DomainError::NotFound("group"))?;
        if !state.members.contains_key(&me) {
            return Err(NOT_MEMBER);
        }
        Ok(state)
    }

    /// Creates a group with `me` as its creator and `members` (friends, or users who allow it).
    pub async fn create(
        &self,
        me: UserId,
        name: GroupName,
        members: MemberIds,
    ) -> DomainResult<GroupId> {
        self.check_admission(me, members.ids()).await?;
        let cmd = GroupCommand::Create { name, members };
        let mut attempt = 1;
        loop {
            let id = GroupId::from_random(self.ports.random.next_u64());
            match self.run(me, id, cmd.clone()).await {
                Err(DomainError::Conflict(_)) if attempt < CREATE_ATTEMPTS => attempt += 1,
                done => return done.map(|s| s.group.id),
            }
        }
    }

    /// Adds users to a group (creator and managers). Users already in it are skipped.
    pub async fn add(&self, me: UserId, group: GroupId, members: MemberIds) -> DomainResult<()> {
        let state = self.group(me, group).await?;
        if !state.role_of(me).is_some_and(GroupRole::manages) {
            return Err(DomainError::Forbidden(
                "only the creator and managers may add members",
            ));
        }
        let new: Vec<UserId> = members
            .ids()
            .iter()
            .copied()
            .filter(|u| !state.members.contains_key(u))
            .collect();
        self.check_admission(me, &new).await?;
        self.run(me, group, GroupCommand::Add(members))
            .await
            .map(drop)
    }

    /// Removes members (creator: anyone else; managers: ordinary members).
    pub async fn kick(&self, me: UserId, group: GroupId, members: MemberIds) -> DomainResult<()> {
        self.run(me, group, GroupCommand::Kick(members))
            .await
            .map(drop)
    }

    /// Leaves a group; a creator's group passes to the oldest member, the last member's ends.
    pub async fn quit(&self, me: UserId, group: GroupId) -> DomainResult<()> {
        self.run(me, group, GroupCommand::Quit).await.map(drop)
    }

    /// Ends a group (creator only).
    pub async fn dismiss(&self, me: UserId, group: GroupId) -> DomainResult<()> {
        self.run(me, group, GroupCommand::Dismiss).await.map(drop)
    }

    /// Hands the group to another member (creator only).
    pub async fn transfer(&self, me: UserId, group: GroupId, to: UserId) -> DomainResult<()> {
        self.run(me, group, GroupCommand::Transfer(to))
            .await
            .map(drop)
    }

    /// Renames a group (creator and managers).
    pub async fn rename(&self, me: UserId, group: GroupId, name: GroupName) -> DomainResult<()> {
        self.run(me, group, GroupCommand::Rename(name))
            .await
            .map(drop)
    }

    /// Sets or clears the group portrait (creator and managers).
    pub async fn set_portrait_uri(
        &self,
        me: UserId,
        group: GroupId,
        uri: Option<ImageUri>,
    ) -> DomainResult<()> {
        self.run(me, group, GroupCommand::SetPortrait(uri))
            .await
            .map(drop)
    }

    /// Sets the bulletin (creator and managers).
    pub async fn set_bulletin(
        &self,
        me: UserId,
        group: GroupId,
        bulletin: Bulletin,
    ) -> DomainResult<()> {
        self.run(me, group, GroupCommand::SetBulletin(bulletin))
            .await
            .map(drop)
    }

    /// Sets my display name in a group (any member).
    pub async fn set_display_name(
        &self,
        me: UserId,
        group: GroupId,
        name: DisplayName,
    ) -> DomainResult<()> {
        self.run(me, group, GroupCommand::SetDisplayName(name))
            .await
            .map(drop)
    }

    /// Makes members managers, or ordinary members again (creator only).
    pub async fn set_managers(
        &self,
        me: UserId,
        group: GroupId,
        members: MemberIds,
        manager: bool,
    ) -> DomainResult<()> {
        self.run(me, group, GroupCommand::SetManagers(members, manager))
            .await
            .map(drop)
    }

    /// The bulletin and when it was set (members only).
    pub async fn bulletin(&self, me: UserId, group: GroupId) -> DomainResult<(String, Millis)> {
        let state = self.group(me, group).await?;
        Ok((state.group.bulletin, state.group.bulletin_at))
    }

    /// The members with their profiles (members only).
    pub async fn members(&self, me: UserId, group: GroupId) -> DomainResult<Vec<MemberView>> {
        self.group(me, group).await?;
        self.ports.store.member_views(group).await
    }

    /// The groups I belong to.
    pub async fn my_groups(&self, me: UserId) -> DomainResult<Vec<MyGroup>> {
        self.ports.store.groups_of(me).await
    }
}
