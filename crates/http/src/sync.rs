//! `/user/sync/{version}` of document 003: the domain's sync delta in SealTalk's field names,
//! plus Kith's extra keys for the v2 address book and the v1 contact and conversation lists.

use actix_web::web;
use kith_domain::addressbook::{Contact, ContactId, Tag, TagId};
use kith_domain::group::{GroupMemberDelta, MembershipDelta};
use kith_domain::sync::{
    BlacklistDelta, ConversationDelta, Entry, FriendDelta, SyncDelta, SyncVersion, UserDelta,
};
use serde::Serialize;
use serde_json::{json, Value};

use crate::addressbook::{contact_doc, tag_doc};
use crate::common::Authed;
use crate::sealtalk::{self, ok_result, SealAnswer, SealResult, SealTalk, SessionFaults};
use crate::AppState;

type Me = Authed<SealTalk>;

/// Adds `/sync/{version}` (POST as the document says, GET too) to the `/user` scope; it must
/// come before `/user/{id}`.
pub fn routes(scope: actix_web::Scope) -> actix_web::Scope {
    scope.service(sealtalk::get_post("/sync/{version}", sync))
}

/// Everything that changed for the caller since `version`.
#[utoipa::path(
    method(post, get),
    path = "/user/sync/{version}",
    tag = "sync",
    security(("bearer" = []), ("cookie" = [])),
    params(("version" = u64, Path, minimum = 0, maximum = 9_223_372_036_854_775_807_u64,
        description = "The `version` of the previous sync, 0 for everything", example = "0")),
    responses(
        (status = 200,
         description = "the changes; 4000 the version is older than the compaction horizon: \
                        sync again from 0 (see docs/sync.md)",
         body = SealAnswer<SyncResult>,
         example = json!({"code": 200, "result": {
            "version": 1234567894_u64,
            "user": {"id": "4503599627370497", "nickname": "Tom",
                "portraitUri": "http://test.com/user/abc123.jpg", "timestamp": 1234567891_u64},
            "blacklist": [{"friendId": "4503599627370498", "status": true,
                "timestamp": 1234567891_u64}],
            "friends": [{"friendId": "4503599627370498", "displayName": "Jerry", "status": 20,
                "isDeleted": false, "timestamp": 1234567892_u64,
                "user": {"nickname": "Jerry", "portraitUri": ""}}],
            "groups": [{"displayName": "Ironman", "role": 1, "isDeleted": true,
                "timestamp": 1234567893_u64,
                "group": {"id": "7696581394433", "name": "Team 1",
                    "portraitUri": "http://test.com/group/abc123.jpg",
                    "creatorId": "4503599627370499", "memberCount": 5,
                    "timestamp": 1234567893_u64}}],
            "group_members": [{"groupId": "7696581394433", "memberId": "4503599627370498",
                "displayName": "Ironman", "role": 1, "isDeleted": true,
                "timestamp": 1234567893_u64,
                "user": {"nickname": "Tom", "portraitUri": "http://test.com/user/abc123.jpg"}}],
            "contacts": [], "tags": [], "conversations": []}})),
        SessionFaults,
    )
)]
async fn sync(state: web::Data<AppState>, me: Me, path: web::Path<String>) -> SealResult {
    let since = SyncVersion::parse(&path.into_inner())?;
    let delta = state.sync.sync(me.caller.user_id, since).await?;
    Ok(ok_result(delta_json(delta)))
}

/// The answer of `/user/sync/{version}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SyncResult {
    /// The version to send next time.
    version: u64,
    /// The caller's own profile, when it changed.
    user: Option<SyncUser>,
    /// Block changes.
    blacklist: Vec<SyncBlacklist>,
    /// Friendship changes.
    friends: Vec<SyncFriend>,
    /// Changes of the caller's memberships.
    groups: Vec<SyncMembership>,
    /// Changes of members of the caller's groups.
    group_members: Vec<SyncGroupMember>,
    /// Address book (document 002) contacts, or `{"_id", "_deleted": true, ...}` tombstones.
    #[schema(value_type = Vec<Object>)]
    contacts: Vec<Value>,
    /// Address book tags, or tombstones.
    #[schema(value_type = Vec<Object>)]
    tags: Vec<Value>,
    /// Contacts v1 (document 000) entries, in that API's field names.
    conversations: Vec<SyncConversation>,
}

/// The caller's profile in a sync.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SyncUser {
    /// User id.
    id: String,
    /// Nickname.
    nickname: String,
    /// Portrait URL.
    #[serde(rename = "portraitUri")]
    portrait_uri: String,
    /// Version stamp.
    timestamp: i64,
}

/// A block change.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SyncBlacklist {
    /// The other user.
    #[serde(rename = "friendId")]
    friend_id: String,
    /// Whether blocked now.
    status: bool,
    /// Version stamp.
    timestamp: i64,
}

/// Nickname and portrait of another user in a sync entry.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SyncPeer {
    /// Nickname.
    nickname: String,
    /// Portrait URL.
    #[serde(rename = "portraitUri")]
    portrait_uri: String,
}

/// A friendship change.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SyncFriend {
    /// The other user.
    #[serde(rename = "friendId")]
    friend_id: String,
    /// Remark name.
    #[serde(rename = "displayName")]
    display_name: String,
    /// 10, 11, 20, 21 or 30 as in `/friendship/all`.
    status: i32,
    /// Whether the entry is gone.
    #[serde(rename = "isDeleted")]
    is_deleted: bool,
    /// Version stamp.
    timestamp: i64,
    /// The other user.
    user: SyncPeer,
}

/// A group as a membership change shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SyncGroup {
    /// Group id.
    id: String,
    /// Name.
    name: String,
    /// Portrait URL.
    #[serde(rename = "portraitUri")]
    portrait_uri: String,
    /// The creator's id.
    #[serde(rename = "creatorId")]
    creator_id: String,
    /// How many members.
    #[serde(rename = "memberCount")]
    member_count: u32,
    /// Version stamp.
    timestamp: i64,
}

/// A change of one of the caller's memberships.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SyncMembership {
    /// The caller's name in the group.
    #[serde(rename = "displayName")]
    display_name: String,
    /// 0 creator, 1 member, 2 manager.
    role: i32,
    /// Whether the caller left or the group is gone.
    #[serde(rename = "isDeleted")]
    is_deleted: bool,
    /// Version stamp.
    timestamp: i64,
    /// The group.
    group: SyncGroup,
}

/// A change of a member of one of the caller's groups.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SyncGroupMember {
    /// Group id.
    #[serde(rename = "groupId")]
    group_id: String,
    /// Member id.
    #[serde(rename = "memberId")]
    member_id: String,
    /// The member's name in the group.
    #[serde(rename = "displayName")]
    display_name: String,
    /// 0 creator, 1 member, 2 manager.
    role: i32,
    /// Whether the member left.
    #[serde(rename = "isDeleted")]
    is_deleted: bool,
    /// Version stamp.
    timestamp: i64,
    /// The member.
    user: SyncPeer,
}

/// A contacts v1 entry.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SyncConversation {
    /// The other user.
    user_id: String,
    /// Remark name.
    display_name: Option<String>,
    /// Friends?
    is_friend: bool,
    /// Followed?
    is_following: bool,
    /// Starred?
    is_starred: bool,
    /// Blocked?
    is_blocked: bool,
    /// `normal`, `sticky` or `archive`.
    conv_type: String,
    /// Whether the entry is gone.
    is_deleted: bool,
    /// Version stamp.
    updated_at: i64,
}

/// The whole answer.
pub fn delta_json(d: SyncDelta) -> SyncResult {
    SyncResult {
        version: d.version.get(),
        user: d.user.as_ref().map(user_json),
        blacklist: d.blacklist.iter().map(blacklist_json).collect(),
        friends: d.friends.iter().map(friend_json).collect(),
        groups: d.groups.iter().map(membership_json).collect(),
        group_members: d.group_members.iter().map(member_json).collect(),
        contacts: d.contacts.iter().map(contact_json).collect(),
        tags: d.tags.iter().map(tag_json).collect(),
        conversations: d.conversations.iter().map(conversation_json).collect(),
    }
}

fn user_json(u: &UserDelta) -> SyncUser {
    SyncUser {
        id: u.id.to_string(),
        nickname: u.nickname.clone(),
        portrait_uri: u.portrait_uri.clone(),
        timestamp: u.stamp,
    }
}

fn blacklist_json(b: &BlacklistDelta) -> SyncBlacklist {
    SyncBlacklist {
        friend_id: b.friend.to_string(),
        status: b.blocked,
        timestamp: b.stamp,
    }
}

fn friend_json(f: &FriendDelta) -> SyncFriend {
    SyncFriend {
        friend_id: f.friend.to_string(),
        display_name: f.display_name.clone(),
        status: f.status,
        is_deleted: f.deleted,
        timestamp: f.stamp,
        user: SyncPeer {
            nickname: f.nickname.clone(),
            portrait_uri: f.portrait_uri.clone(),
        },
    }
}

fn membership_json(m: &MembershipDelta) -> SyncMembership {
    SyncMembership {
        display_name: m.display_name.clone(),
        role: m.role.code(),
        is_deleted: m.deleted,
        timestamp: m.stamp,
        group: SyncGroup {
            id: m.group.id.to_string(),
            name: m.group.name.clone(),
            portrait_uri: m.group.portrait_uri.clone(),
            creator_id: m.group.creator.to_string(),
            member_count: m.group.member_count,
            timestamp: m.group.stamp,
        },
    }
}

fn member_json(m: &GroupMemberDelta) -> SyncGroupMember {
    SyncGroupMember {
        group_id: m.group.to_string(),
        member_id: m.member.to_string(),
        display_name: m.display_name.clone(),
        role: m.role.code(),
        is_deleted: m.deleted,
        timestamp: m.stamp,
        user: SyncPeer {
            nickname: m.nickname.clone(),
            portrait_uri: m.portrait_uri.clone(),
        },
    }
}
/// A contact as document 002 shows it (without the `user_id` link, which changes with other
/// users' settings rather than with this book), or a CouchDB-style tombstone.
fn contact_json(c: &Entry<ContactId, Contact>) -> Value {
    match c {
        Entry::Present(c) => contact_doc(c, None),
        Entry::Deleted { id, at } => json!({
            "_id": id.to_string(),
            "_deleted": true,
            "doc_type": "contact",
            "modified_date": at,
        }),
    }
}

fn tag_json(t: &Entry<TagId, Tag>) -> Value {
    match t {
        Entry::Present(t) => tag_doc(t),
        Entry::Deleted { id, at } => json!({
            "_id": id.to_string(),
            "_deleted": true,
            "doc_type": "tag",
            "modified_date": at,
        }),
    }
}

/// A contacts v1 entry, in that API's field names.
fn conversation_json(c: &ConversationDelta) -> SyncConversation {
    SyncConversation {
        user_id: c.user.to_string(),
        display_name: c.display_name.clone(),
        is_friend: c.is_friend,
        is_following: c.is_following,
        is_starred: c.is_starred,
        is_blocked: c.is_blocked,
        conv_type: c.conv_type.as_str().to_owned(),
        is_deleted: c.deleted,
        updated_at: c.stamp,
    }
}

/// The sync call's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(sync))]
    struct Api;
    let mut doc = <Api as utoipa::OpenApi>::openapi();
    doc.merge(sealtalk::openapi());
    doc
}
