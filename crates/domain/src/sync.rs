//! Incremental sync across devices: the version a client sends, the deltas it gets back, how
//! they are derived from what the store read, and the compaction policy of the change log.
//!
//! Every write that changes what a user sees appends a change entry for that user (the
//! *owner*) and takes the owner's next version. A sync from version `v` reads, in one snapshot,
//! the owner's current version and the current state of everything named by the entries after
//! `v`; what no longer exists comes back as a tombstone. Version 0 asks for the full state,
//! without tombstones. Compaction deletes old entries and raises the owner's *floor*: a sync
//! from below the floor (other than 0) must start again from 0 ([`DomainError::ResyncRequired`]).

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;

use crate::addressbook::{Contact, ContactId, Tag, TagId};
use crate::error::{DomainError, DomainResult};
use crate::group::{GroupMemberDelta, MembershipDelta};
use crate::ids::{GroupId, Millis, UserId};
use crate::ports::{Clock, UserProfile};
use crate::relationship::{ConvType, Friendship, Side};

#[cfg(test)]
mod tests;

/// One day in milliseconds.
const DAY_MS: Millis = 24 * 60 * 60 * 1000;

/// The SealTalk status a friends delta carries when no friendship is left at all (a withdrawn
/// or dissolved request): Kith's addition next to 10/11/20/21/30.
pub const STATUS_NO_FRIENDSHIP: i32 = 0;

/// The largest version a client may send: versions are stored as signed 64-bit numbers.
const VERSION_MAX: u64 = i64::MAX as u64;

/// A sync version as a client sends it: a non-negative integer; 0 asks for the full state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SyncVersion(u64);

impl SyncVersion {
    /// The version of a device that holds nothing.
    pub const ZERO: SyncVersion = SyncVersion(0);

    /// Parses the decimal digits of a path segment. Signs, blanks, fractions, exponents and
    /// numbers past `i64::MAX` are `Invalid("version")`.
    pub fn parse(raw: &str) -> DomainResult<Self> {
        let invalid = || DomainError::invalid("version", "must be a non-negative integer");
        if raw.is_empty() || raw.len() > 19 || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        raw.parse::<u64>()
            .ok()
            .filter(|v| *v <= VERSION_MAX)
            .map(Self)
            .ok_or_else(invalid)
    }

    /// A version the store reported; negative numbers are refused.
    pub fn from_stored(raw: i64) -> DomainResult<Self> {
        u64::try_from(raw)
            .map(Self)
            .map_err(|_| DomainError::Internal("a stored version is negative".into()))
    }

    /// The number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for SyncVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The current state of one user the owner has (or had) a relationship row on, as the store
/// read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerState {
    /// The other user.
    pub id: UserId,
    /// Their profile; `None` when the user no longer exists.
    pub user: Option<UserProfile>,
    /// The owner's row on them; `None` when there is none.
    pub mine: Option<Side>,
    /// When the latest change entry about them was recorded (0 in a full read): the stamp
    /// of a tombstone.
    pub changed_at: Millis,
}

/// A contact or tag as the store read it: present, or gone since the entry was recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry<Id, T> {
    /// It exists.
    Present(T),
    /// It was deleted; `at` is when the latest change entry about it was recorded.
    Deleted {
        /// Its id.
        id: Id,
        /// The change entry's instant.
        at: Millis,
    },
}

/// What the store read for one sync, all in one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncRead {
    /// The owner's current version.
    pub version: SyncVersion,
    /// The owner's compaction floor: entries at or below it are gone.
    pub floor: SyncVersion,
    /// The owner's profile, when it changed (always, in a full read).
    pub user: Option<UserProfile>,
    /// Each user named by a relationship entry (in a full read: every active row).
    pub peers: Vec<PeerState>,
    /// Each contact named by an entry (in a full read: every contact).
    pub contacts: Vec<Entry<ContactId, Contact>>,
    /// Each tag named by an entry (in a full read: every tag).
    pub tags: Vec<Entry<TagId, Tag>>,
    /// The owner's memberships named by an entry (in a full read: every membership).
    pub groups: Vec<MembershipDelta>,
    /// The member rows named by an entry (in a full read: every member of the owner's groups).
    pub group_members: Vec<GroupMemberDelta>,
}

/// The change log's storage side of sync.
#[async_trait]
pub trait SyncStore: Send + Sync + std::fmt::Debug {
    /// Reads, in one read-only snapshot, the owner's version and floor and the current state of
    /// everything the owner's change entries after `since` name, deduplicated; with `since` 0,
    /// the owner's full state instead. When `since` is below the floor or not below the
    /// version, no entries are read (they are incomplete, or there are none).
    /// Errors: `NotFound("user")` for an unknown owner.
    async fn read_since(&self, owner: UserId, since: SyncVersion) -> DomainResult<SyncRead>;

    /// Deletes every change entry recorded before `before` (and, per owner, every older-
    /// numbered entry), raising each owner's floor to the highest version deleted.
    async fn compact(&self, before: Millis) -> DomainResult<Compacted>;
}

/// What one compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Compacted {
    /// Owners whose floor rose.
    pub owners: u64,
    /// Change entries deleted.
    pub entries: u64,
}

/// The owner's own profile as sync shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDelta {
    /// The owner.
    pub id: UserId,
    /// Nickname.
    pub nickname: String,
    /// Portrait URL.
    pub portrait_uri: String,
    /// The last profile change.
    pub stamp: Millis,
}

/// One row of the owner's blacklist: `blocked: false` removes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlacklistDelta {
    /// The other user.
    pub friend: UserId,
    /// Whether the owner blocks them.
    pub blocked: bool,
    /// When the block was made, or when it was lifted.
    pub stamp: Millis,
}

/// One row of the owner's friend list (SealTalk's `friends`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FriendDelta {
    /// The other user.
    pub friend: UserId,
    /// The owner's private name for them ("" when none).
    pub display_name: String,
    /// 10, 11, 20, 21, 30, or [`STATUS_NO_FRIENDSHIP`].
    pub status: i32,
    /// The row leaves the list: status 30 or no friendship.
    pub deleted: bool,
    /// When the row last changed, or when it went.
    pub stamp: Millis,
    /// Their nickname ("" in a tombstone for a user who no longer exists).
    pub nickname: String,
    /// Their portrait URL.
    pub portrait_uri: String,
}

/// One entry of contacts v1's contact and conversation lists: the owner's own row on a user.
/// Only what the owner's row holds is here (their follow of the owner, for one, changes without
/// an entry in the owner's log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationDelta {
    /// The other user.
    pub user: UserId,
    /// The owner's private name for them.
    pub display_name: Option<String>,
    /// Friends.
    pub is_friend: bool,
    /// The owner follows them.
    pub is_following: bool,
    /// The owner starred them.
    pub is_starred: bool,
    /// The owner blocks them.
    pub is_blocked: bool,
    /// Which conversation list.
    pub conv_type: ConvType,
    /// The owner holds nothing on them any more: the entry leaves both lists.
    pub deleted: bool,
    /// When the owner's row last changed, or when it went.
    pub stamp: Millis,
}

/// Everything that changed for the owner after the version the client sent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncDelta {
    /// The version to send next time.
    pub version: SyncVersion,
    /// The owner's profile, when it changed.
    pub user: Option<UserDelta>,
    /// Blacklist rows.
    pub blacklist: Vec<BlacklistDelta>,
    /// Friend list rows.
    pub friends: Vec<FriendDelta>,
    /// The owner's memberships.
    pub groups: Vec<MembershipDelta>,
    /// Member rows of the owner's groups.
    pub group_members: Vec<GroupMemberDelta>,
    /// Address book contacts.
    pub contacts: Vec<Entry<ContactId, Contact>>,
    /// Address book tags.
    pub tags: Vec<Entry<TagId, Tag>>,
    /// Contacts v1 rows (contact and conversation lists).
    pub conversations: Vec<ConversationDelta>,
}

/// How long change entries are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncPolicy {
    /// Entries older than this are compacted away; a device offline for longer syncs from 0.
    pub horizon_ms: Millis,
}

impl Default for SyncPolicy {
    /// Thirty days.
    fn default() -> Self {
        Self {
            horizon_ms: 30 * DAY_MS,
        }
    }
}

/// The ports the sync service drives.
#[derive(Debug, Clone)]
pub struct SyncPorts {
    /// The change log and the state it names.
    pub store: Arc<dyn SyncStore>,
    /// Time, for the compaction horizon.
    pub clock: Arc<dyn Clock>,
}

/// Incremental sync and compaction of the change log.
#[derive(Debug)]
pub struct SyncService {
    ports: SyncPorts,
    policy: SyncPolicy,
}

impl SyncService {
    /// Builds the service.
    pub fn new(ports: SyncPorts, policy: SyncPolicy) -> Self {
        Self { ports, policy }
    }

    /// The policy in force.
    pub fn policy(&self) -> SyncPolicy {
        self.policy
    }

    /// What changed for `me` after `since`, and the version to send next time.
    /// Errors: [`DomainError::ResyncRequired`] when `since` is below the compaction floor
    /// (and not 0), or above the current version (the device holds a state this server never
    /// had, for example after a restore from backup).
    pub async fn sync(&self, me: UserId, since: SyncVersion) -> DomainResult<SyncDelta> {
        let read = self.ports.store.read_since(me, since).await?;
        if since != SyncVersion::ZERO && (since < read.floor || since > read.version) {
            return Err(DomainError::ResyncRequired {
                asked: since.get(),
                floor: read.floor.get(),
            });
        }
        Ok(derive(read, since == SyncVersion::ZERO))
    }

    /// Compacts the change entries older than the horizon, as of now.
    pub async fn compact(&self) -> DomainResult<Compacted> {
        let before = self
            .ports
            .clock
            .now()
            .saturating_sub(self.policy.horizon_ms);
        self.ports.store.compact(before).await
    }
}

/// Turns what the store read into the delta. A full read keeps only the rows a client keeps:
/// no tombstones.
pub fn derive(read: SyncRead, full: bool) -> SyncDelta {
    let SyncRead {
        version,
        floor: _,
        user,
        peers,
        contacts,
        tags,
        groups,
        group_members,
    } = read;
    let mut delta = SyncDelta {
        version,
        user: user.map(|u| UserDelta {
            id: u.id,
            nickname: u.nickname,
            portrait_uri: u.portrait_uri,
            stamp: u.updated_at,
        }),
        ..SyncDelta::default()
    };
    for peer in &peers {
        let blacklist = blacklist_row(peer);
        let friend = friend_row(peer);
        let conversation = conversation_row(peer);
        if !full || blacklist.blocked {
            delta.blacklist.push(blacklist);
        }
        if !full || !friend.deleted {
            delta.friends.push(friend);
        }
        if !full || !conversation.deleted {
            delta.conversations.push(conversation);
        }
    }
    let present_only = |keep: bool| !full || keep;
    delta.contacts = contacts
        .into_iter()
        .filter(|c| present_only(matches!(c, Entry::Present(_))))
        .collect();
    delta.tags = tags
        .into_iter()
        .filter(|t| present_only(matches!(t, Entry::Present(_))))
        .collect();
    // A device drops every member row of a group it leaves (client rule), so rows of such a
    // group in the same answer would come back to life on it: they are left out.
    let left: BTreeSet<GroupId> = groups
        .iter()
        .filter(|g| g.deleted)
        .map(|g| g.group.id)
        .collect();
    delta.groups = groups
        .into_iter()
        .filter(|g| present_only(!g.deleted))
        .collect();
    delta.group_members = group_members
        .into_iter()
        .filter(|m| present_only(!m.deleted) && !left.contains(&m.group))
        .collect();
    delta
}

/// The row's stamp, or the change entry's when the row is gone. Only the row's own instant,
/// so that a row reads the same in a delta and in a full state.
fn row_stamp(peer: &PeerState) -> Millis {
    peer.mine.as_ref().map_or(peer.changed_at, |s| s.updated_at)
}

/// The blacklist row of a peer: blocked, or a tombstone.
pub fn blacklist_row(peer: &PeerState) -> BlacklistDelta {
    match peer.mine.as_ref().filter(|s| s.blocking) {
        Some(side) => BlacklistDelta {
            friend: peer.id,
            blocked: true,
            stamp: side.blocked_at.unwrap_or(side.updated_at),
        },
        None => BlacklistDelta {
            friend: peer.id,
            blocked: false,
            stamp: row_stamp(peer),
        },
    }
}

/// The friendship states that keep a row in a device's friend list: SealTalk lists 30 too, but
/// for a device a deleted friendship is one to drop. The owners of such rows on a user see the
/// user's nickname and portrait, so a change of those is recorded for them.
pub const FRIEND_LIST_STATES: [Friendship; 4] = [
    Friendship::Requested,
    Friendship::RequestedBy,
    Friendship::Friends,
    Friendship::Ignored,
];

fn kept_in_friend_list(f: Friendship) -> bool {
    FRIEND_LIST_STATES.contains(&f)
}

/// The friend-list row of a peer, or a tombstone (status 30, or no friendship at all).
pub fn friend_row(peer: &PeerState) -> FriendDelta {
    let friendship = peer
        .mine
        .as_ref()
        .map_or(Friendship::None, |s| s.friendship);
    let status = friendship.sealtalk_status().unwrap_or(STATUS_NO_FRIENDSHIP);
    let (nickname, portrait_uri) = peer.user.as_ref().map_or_else(
        || (String::new(), String::new()),
        |u| (u.nickname.clone(), u.portrait_uri.clone()),
    );
    FriendDelta {
        friend: peer.id,
        display_name: peer
            .mine
            .as_ref()
            .and_then(|s| s.display_name.clone())
            .unwrap_or_default(),
        status,
        deleted: !kept_in_friend_list(friendship) || peer.user.is_none(),
        stamp: row_stamp(peer),
        nickname,
        portrait_uri,
    }
}

/// The contacts v1 row of a peer: the owner's row, or a tombstone when it holds nothing.
pub fn conversation_row(peer: &PeerState) -> ConversationDelta {
    let empty = Side::default();
    let side = peer.mine.as_ref().unwrap_or(&empty);
    ConversationDelta {
        user: peer.id,
        display_name: side.display_name.clone(),
        is_friend: side.is_friend(),
        is_following: side.following,
        is_starred: side.starred,
        is_blocked: side.blocking,
        conv_type: side.conv_type,
        deleted: side.is_empty() || peer.user.is_none(),
        stamp: row_stamp(peer),
    }
}
