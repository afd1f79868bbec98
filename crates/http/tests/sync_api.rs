//! `/user/sync/{version}`'s HTTP mapping: version parsing, the resync code and the JSON shape,
//! over a canned sync store (the store itself is tested in kith-store and end to end).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use actix_web::{test, App};
use kith_domain::addressbook::{Contact, ContactDraft, ContactFields, ContactId, TagId};
use kith_domain::group::{GroupInfo, GroupMemberDelta, GroupRole, MembershipDelta};
use kith_domain::ids::GroupId;
use kith_domain::memory::MemorySms;
use kith_domain::phone::Phone;
use kith_domain::ports::{Privacy, UserProfile};
use kith_domain::relationship::{ConvType, Friendship, Side};
use kith_domain::sync::{
    Entry, PeerState, SyncPolicy, SyncPorts, SyncRead, SyncService, SyncVersion,
};
use kith_domain::UserId;
use kith_http::{configure, AppState};
use support::{call, sign_up, state, CannedSync};

const T: i64 = 1_700_000_000_000;

macro_rules! app {
    ($state:expr) => {
        test::init_service(App::new().configure(configure($state))).await
    };
}

/// A state whose sync service reads from `canned`.
fn with_canned() -> (AppState, Arc<MemorySms>, Arc<CannedSync>) {
    let (mut state, sms, clock) = state();
    let canned = Arc::new(CannedSync::default());
    state.sync = Arc::new(SyncService::new(
        SyncPorts {
            store: canned.clone(),
            clock,
        },
        SyncPolicy::default(),
    ));
    (state, sms, canned)
}

fn profile(id: i64, nickname: &str) -> UserProfile {
    UserProfile {
        id: UserId::new(id).unwrap(),
        phone: Phone::parse("86", "13900000001").unwrap(),
        registered: true,
        nickname: nickname.into(),
        portrait_uri: "https://p/x".into(),
        user_name: None,
        gender: None,
        birth_date: None,
        email: None,
        privacy: Privacy::default(),
        created_at: T,
        updated_at: T + 1,
    }
}

#[actix_web::test]
async fn bad_versions_are_400_and_a_session_is_required() {
    let (state, sms, canned) = with_canned();
    let (_, token) = sign_up(&state, &sms, 1, "Ann").await;
    let app = app!(state);
    for bad in ["abc", "-1", "1.5", "1e3", "99999999999999999999"] {
        let a = call(
            &app,
            "POST",
            &format!("/user/sync/{bad}"),
            None,
            Some(&token),
        )
        .await;
        assert_eq!(
            (a.status, a.body["code"].as_i64()),
            (400, Some(400)),
            "{bad}"
        );
    }
    let a = call(&app, "POST", "/user/sync/0", None, None).await;
    assert_eq!(a.status, 401);
    assert!(canned.asked.lock().unwrap().is_empty());
}

#[actix_web::test]
async fn a_version_below_the_floor_answers_code_4000() {
    let (state, sms, canned) = with_canned();
    let (_, token) = sign_up(&state, &sms, 1, "Ann").await;
    *canned.read.lock().unwrap() = SyncRead {
        version: SyncVersion::parse("20").unwrap(),
        floor: SyncVersion::parse("10").unwrap(),
        ..SyncRead::default()
    };
    let app = app!(state);
    let a = call(&app, "POST", "/user/sync/5", None, Some(&token)).await;
    assert_eq!(
        (a.status, a.body["code"].as_i64()),
        (200, Some(4000)),
        "{}",
        a.body
    );
    let a = call(&app, "GET", "/user/sync/10", None, Some(&token)).await;
    assert_eq!(a.body["code"], 200);
    assert_eq!(a.body["result"]["version"], 20);
}

#[actix_web::test]
async fn the_answer_uses_sealtalks_names_and_kiths_extra_keys() {
    let (state, sms, canned) = with_canned();
    let (me, token) = sign_up(&state, &sms, 1, "Ann").await;
    let me_id = UserId::parse(&me).unwrap();
    let friend = Side {
        friendship: Friendship::Friends,
        display_name: Some("Bobby".into()),
        conv_type: ConvType::Sticky,
        created_at: T,
        updated_at: T + 5,
        ..Side::default()
    };
    let gone = ContactId::from_stored(42).unwrap();
    let contact = Contact::create(
        ContactId::from_stored(43).unwrap(),
        ContactFields::new(ContactDraft {
            name: "Carol".into(),
            ..ContactDraft::default()
        })
        .unwrap(),
        T,
    );
    let group = GroupId::new(77).unwrap();
    *canned.read.lock().unwrap() = SyncRead {
        version: SyncVersion::parse("9").unwrap(),
        floor: SyncVersion::ZERO,
        user: Some(profile(me_id.get(), "Ann")),
        peers: vec![
            PeerState {
                id: UserId::new(2).unwrap(),
                user: Some(profile(2, "Bob")),
                mine: Some(friend),
                changed_at: T + 5,
            },
            PeerState {
                id: UserId::new(3).unwrap(),
                user: Some(profile(3, "Cy")),
                mine: None,
                changed_at: T + 6,
            },
        ],
        contacts: vec![
            Entry::Present(contact.clone()),
            Entry::Deleted {
                id: gone,
                at: T + 7,
            },
        ],
        tags: vec![Entry::Deleted {
            id: TagId::from_random(5),
            at: T + 8,
        }],
        groups: vec![MembershipDelta {
            group: GroupInfo {
                id: group,
                name: "Team".into(),
                portrait_uri: String::new(),
                creator: me_id,
                member_count: 2,
                stamp: T,
            },
            role: GroupRole::Creator,
            display_name: "Boss".into(),
            deleted: false,
            stamp: T,
        }],
        group_members: vec![GroupMemberDelta {
            group,
            member: UserId::new(2).unwrap(),
            role: GroupRole::Member,
            display_name: String::new(),
            deleted: true,
            stamp: T,
            nickname: "Bob".into(),
            portrait_uri: String::new(),
        }],
    };
    let app = app!(state);
    let a = call(&app, "GET", "/user/sync/3", None, Some(&token)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let r = &a.body["result"];
    assert_eq!(r["version"], 9);
    assert_eq!(r["user"]["id"], me.as_str());
    assert_eq!(r["user"]["nickname"], "Ann");
    assert_eq!(r["user"]["timestamp"], T + 1);

    let friends = r["friends"].as_array().unwrap();
    assert_eq!(friends.len(), 2);
    assert_eq!(friends[0]["friendId"], "2");
    assert_eq!(friends[0]["displayName"], "Bobby");
    assert_eq!(friends[0]["status"], 20);
    assert_eq!(friends[0]["isDeleted"], false);
    assert_eq!(friends[0]["user"]["nickname"], "Bob");
    assert_eq!(friends[1]["status"], 0);
    assert_eq!(friends[1]["isDeleted"], true);

    let blacklist = r["blacklist"].as_array().unwrap();
    assert_eq!(blacklist[0]["friendId"], "2");
    assert_eq!(blacklist[0]["status"], false);

    assert_eq!(r["contacts"][0]["_id"], contact.id.to_string());
    assert_eq!(r["contacts"][0]["name"], "Carol");
    assert_eq!(r["contacts"][1]["_id"], gone.to_string());
    assert_eq!(r["contacts"][1]["_deleted"], true);
    assert_eq!(r["tags"][0]["_deleted"], true);
    assert_eq!(r["tags"][0]["doc_type"], "tag");

    assert_eq!(r["groups"][0]["group"]["id"], "77");
    assert_eq!(r["groups"][0]["group"]["name"], "Team");
    assert_eq!(r["groups"][0]["role"], 0);
    assert_eq!(r["groups"][0]["displayName"], "Boss");
    assert_eq!(r["group_members"][0]["groupId"], "77");
    assert_eq!(r["group_members"][0]["memberId"], "2");
    assert_eq!(r["group_members"][0]["isDeleted"], true);
    assert_eq!(r["group_members"][0]["user"]["nickname"], "Bob");

    let conv = r["conversations"].as_array().unwrap();
    assert_eq!(conv[0]["user_id"], "2");
    assert_eq!(conv[0]["conv_type"], "sticky");
    assert_eq!(conv[0]["is_friend"], true);
    assert_eq!(conv[1]["is_deleted"], true);

    // POST answers the same; the store was asked for the caller and the version sent.
    let b = call(&app, "POST", "/user/sync/3", None, Some(&token)).await;
    assert_eq!(b.body, a.body);
    let asked = canned.asked.lock().unwrap().clone();
    assert_eq!(asked, vec![(me_id, SyncVersion::parse("3").unwrap()); 2]);
}

#[actix_web::test]
async fn nothing_changed_answers_empty_lists_and_the_same_version() {
    let (state, sms, canned) = with_canned();
    let (_, token) = sign_up(&state, &sms, 1, "Ann").await;
    *canned.read.lock().unwrap() = SyncRead {
        version: SyncVersion::parse("4").unwrap(),
        ..SyncRead::default()
    };
    let app = app!(state);
    let a = call(&app, "POST", "/user/sync/4", None, Some(&token)).await;
    let r = &a.body["result"];
    assert_eq!(r["version"], 4);
    assert!(r["user"].is_null());
    for key in [
        "blacklist",
        "friends",
        "groups",
        "group_members",
        "contacts",
        "tags",
        "conversations",
    ] {
        assert_eq!(r[key], serde_json::json!([]), "{key}");
    }
}
