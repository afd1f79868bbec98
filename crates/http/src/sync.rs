//! `/user/sync/{version}` of document 003: the domain's sync delta in SealTalk's field names,
//! plus Kith's extra keys for the v2 address book and the v1 contact and conversation lists.

use actix_web::web;
use kith_domain::addressbook::{Contact, ContactId, Tag, TagId};
use kith_domain::group::{GroupMemberDelta, MembershipDelta};
use kith_domain::sync::{
    BlacklistDelta, ConversationDelta, Entry, FriendDelta, SyncDelta, SyncVersion, UserDelta,
};
use serde_json::{json, Value};

use crate::addressbook::{contact_doc, tag_doc};
use crate::common::Authed;
use crate::sealtalk::{ok_result, SealResult, SealTalk};
use crate::AppState;

type Me = Authed<SealTalk>;

/// Adds `/sync/{version}` (POST as the document says, GET too) to the `/user` scope; it must
/// come before `/user/{id}`.
pub fn routes(scope: actix_web::Scope) -> actix_web::Scope {
    scope.route(
        "/sync/{version}",
        web::route()
            .guard(actix_web::guard::Any(actix_web::guard::Get()).or(actix_web::guard::Post()))
            .to(sync),
    )
}

async fn sync(state: web::Data<AppState>, me: Me, path: web::Path<String>) -> SealResult {
    let since = SyncVersion::parse(&path.into_inner())?;
    let delta = state.sync.sync(me.caller.user_id, since).await?;
    Ok(ok_result(delta_json(delta)))
}

/// The whole answer.
pub fn delta_json(d: SyncDelta) -> Value {
    json!({
        "version": d.version.get(),
        "user": d.user.as_ref().map(user_json),
        "blacklist": d.blacklist.iter().map(blacklist_json).collect::<Vec<_>>(),
        "friends": d.friends.iter().map(friend_json).collect::<Vec<_>>(),
        "groups": d.groups.iter().map(membership_json).collect::<Vec<_>>(),
        "group_members": d.group_members.iter().map(member_json).collect::<Vec<_>>(),
        "contacts": d.contacts.iter().map(contact_json).collect::<Vec<_>>(),
        "tags": d.tags.iter().map(tag_json).collect::<Vec<_>>(),
        "conversations": d.conversations.iter().map(conversation_json).collect::<Vec<_>>(),
    })
}

fn user_json(u: &UserDelta) -> Value {
    json!({
        "id": u.id.to_string(),
        "nickname": u.nickname,
        "portraitUri": u.portrait_uri,
        "timestamp": u.stamp,
    })
}

fn blacklist_json(b: &BlacklistDelta) -> Value {
    json!({
        "friendId": b.friend.to_string(),
        "status": b.blocked,
        "timestamp": b.stamp,
    })
}

fn friend_json(f: &FriendDelta) -> Value {
    json!({
        "friendId": f.friend.to_string(),
        "displayName": f.display_name,
        "status": f.status,
        "isDeleted": f.deleted,
        "timestamp": f.stamp,
        "user": {"nickname": f.nickname, "portraitUri": f.portrait_uri},
    })
}

fn membership_json(m: &MembershipDelta) -> Value {
    json!({
        "displayName": m.display_name,
        "role": m.role.code(),
        "isDeleted": m.deleted,
        "timestamp": m.stamp,
        "group": {
            "id": m.group.id.to_string(),
            "name": m.group.name,
            "portraitUri": m.group.portrait_uri,
            "creatorId": m.group.creator.to_string(),
            "memberCount": m.group.member_count,
            "timestamp": m.group.stamp,
        },
    })
}

fn member_json(m: &GroupMemberDelta) -> Value {
    json!({
        "groupId": m.group.to_string(),
        "memberId": m.member.to_string(),
        "displayName": m.display_name,
        "role": m.role.code(),
        "isDeleted": m.deleted,
        "timestamp": m.stamp,
        "user": {"nickname": m.nickname, "portraitUri": m.portrait_uri},
    })
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
fn conversation_json(c: &ConversationDelta) -> Value {
    json!({
        "user_id": c.user.to_string(),
        "display_name": c.display_name,
        "is_friend": c.is_friend,
        "is_following": c.is_following,
        "is_starred": c.is_starred,
        "is_blocked": c.is_blocked,
        "conv_type": c.conv_type.as_str(),
        "is_deleted": c.deleted,
        "updated_at": c.stamp,
    })
}
