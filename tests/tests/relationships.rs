//! End to end: the relationship core through its faces, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Barrier};

use kith_e2e::{both_backends, Kith, TestDb};
use serde_json::{json, Value};

const PW: &str = "kith-Secret1";

fn status_with(kith: &Kith, token: &str, other: &str) -> Option<i64> {
    let a = kith.get("/friendship/all", Some(token));
    a.body["result"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["user"]["id"] == other)
        .and_then(|r| r["status"].as_i64())
}

both_backends!(sealtalk_invite_agree_delete_and_blacklist, |db: TestDb| {
    let kith = Kith::start(&db, &[]);
    let (a, ta) = kith.sign_up("13900000101", "Ann", PW);
    let (b, tb) = kith.sign_up("13900000102", "Bob", PW);

    let r = kith.post(
        "/friendship/invite",
        json!({"friendId": b, "message": "hello"}),
        Some(&ta),
    );
    assert_eq!(r.body["result"]["action"], "Sent", "{}", r.text);
    assert_eq!(status_with(&kith, &ta, &b), Some(10));
    assert_eq!(status_with(&kith, &tb, &a), Some(11));
    let r = kith.post("/friendship/agree", json!({"friendId": a}), Some(&tb));
    assert_eq!(r.code(), 200, "{}", r.text);
    assert_eq!(status_with(&kith, &ta, &b), Some(20));
    assert_eq!(status_with(&kith, &tb, &a), Some(20));
    let r = kith.get(&format!("/friendship/{b}/profile"), Some(&ta));
    assert_eq!(r.body["result"]["user"]["nickname"], "Bob");
    // Ann's list, read twice unchanged (the second answer is the kept one), then after Bob
    // renames and after Ann gives him a remark: each change shows in the next answer.
    let entry = |kith: &Kith| {
        let a = kith.get("/friendship/all", Some(&ta));
        let row = a.body["result"][0].clone();
        (row["user"]["nickname"].clone(), row["displayName"].clone())
    };
    assert_eq!(entry(&kith), (json!("Bob"), json!("")));
    assert_eq!(entry(&kith), (json!("Bob"), json!("")));
    let r = kith.post(
        "/user/set_nickname",
        json!({"nickname": "Robert"}),
        Some(&tb),
    );
    assert_eq!(r.code(), 200);
    assert_eq!(entry(&kith), (json!("Robert"), json!("")));
    let r = kith.post(
        "/friendship/set_display_name",
        json!({"friendId": b, "displayName": "Bobby"}),
        Some(&ta),
    );
    assert_eq!(r.code(), 200, "{}", r.text);
    assert_eq!(entry(&kith), (json!("Robert"), json!("Bobby")));

    // A block keeps the friendship and shows in the blacklist.
    assert_eq!(
        kith.post("/user/add_to_blacklist", json!({"friendId": b}), Some(&ta))
            .code(),
        200
    );
    let r = kith.get("/user/blacklist", Some(&ta));
    assert_eq!(r.body["result"][0]["id"], b.as_str());
    assert_eq!(status_with(&kith, &ta, &b), Some(20));

    let r = kith.post("/friendship/delete", json!({"friendId": b}), Some(&ta));
    assert_eq!(r.code(), 200);
    assert_eq!(status_with(&kith, &ta, &b), Some(30));
    assert_eq!(status_with(&kith, &tb, &a), Some(30));
    // Blocked: Bob's invitation vanishes.
    let r = kith.post("/friendship/invite", json!({"friendId": a}), Some(&tb));
    assert_eq!(r.body["result"]["action"], "None");
    assert_eq!(status_with(&kith, &ta, &b), Some(30));
    let r = kith.post("/friendship/invite", json!({"friendId": "4242"}), Some(&tb));
    assert_eq!(r.status, 404);
});

both_backends!(racing_invitations_make_one_legal_pair, |db: TestDb| {
    let kith = Arc::new(Kith::start(&db, &[]));
    let users: Vec<(String, String)> = (0..6)
        .map(|i| kith.sign_up(&format!("139000002{i:02}"), "U", PW))
        .collect();
    // Pairs (0,1), (2,3), (4,5) invite each other at the same instant.
    let barrier = Arc::new(Barrier::new(6));
    let handles: Vec<_> = (0..6)
        .map(|i| {
            let (kith, barrier) = (kith.clone(), barrier.clone());
            let me = users[i].1.clone();
            let other = users[i ^ 1].0.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let r = kith.post("/friendship/invite", json!({"friendId": other}), Some(&me));
                assert_eq!(r.status, 200, "{}", r.text);
                r.body["result"]["action"].as_str().unwrap().to_owned()
            })
        })
        .collect();
    let actions: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for p in 0..3 {
        let (x, y) = (2 * p, 2 * p + 1);
        let mut pair = [actions[x].as_str(), actions[y].as_str()];
        pair.sort_unstable();
        assert_eq!(
            pair,
            ["Added", "Sent"],
            "one request, then friends: {actions:?}"
        );
        assert_eq!(status_with(&kith, &users[x].1, &users[y].0), Some(20));
        assert_eq!(status_with(&kith, &users[y].1, &users[x].0), Some(20));
    }
});

/// The rows of `/friendship/all`, as (id, status), for comparisons.
pub fn friendship_rows(kith: &Kith, token: &str) -> Vec<(String, i64)> {
    let a = kith.get("/friendship/all", Some(token));
    a.body["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r: &Value| {
            (
                r["user"]["id"].as_str().unwrap().to_owned(),
                r["status"].as_i64().unwrap(),
            )
        })
        .collect()
}

both_backends!(the_faces_agree, |db: TestDb| {
    let kith = Kith::start(&db, &[]);
    let (a, ta) = kith.sign_up("13900000301", "Ann", PW);
    let (b, tb) = kith.sign_up("13900000302", "Bob", PW);
    let (c, tc) = kith.sign_up("13900000303", "Cat", PW);
    let (an, bn, cn): (i64, i64, i64) =
        (a.parse().unwrap(), b.parse().unwrap(), c.parse().unwrap());

    // A friendship made through 001 is a friendship in 004 and in v1.
    let r = kith.post(
        "/friends/request",
        json!({"requested_user_id": bn}),
        Some(&ta),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let request_id = r.body["friend_request_id"].as_i64().unwrap();
    assert_eq!(status_with(&kith, &tb, &a), Some(11));
    let r = kith.get("/friends/sync", Some(&tb));
    assert_eq!(r.body["friend_request"], 1, "{}", r.text);
    let r = kith.post(
        "/friends/accept",
        json!({"friend_request_id": request_id}),
        Some(&ta),
    );
    assert!(
        r.status == 403 || r.status == 404,
        "not mine to accept: {}",
        r.text
    );
    let r = kith.post(
        "/friends/accept",
        json!({"friend_request_id": request_id}),
        Some(&tb),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(status_with(&kith, &ta, &b), Some(20));
    let r = kith.get(&format!("/api/v1/contact/{b}"), Some(&ta));
    assert_eq!(r.body["is_friend"], true, "{}", r.text);

    // A block through 001 is in the 003 blacklist and in v1, and keeps the friendship.
    let r = kith.post("/blocks", json!({"user_id": bn}), Some(&ta));
    assert_eq!(r.status, 201, "{}", r.text);
    let r = kith.get("/user/blacklist", Some(&ta));
    assert_eq!(r.body["result"][0]["id"], b.as_str());
    let r = kith.get(&format!("/api/v1/contact/{b}"), Some(&ta));
    assert_eq!(
        (
            r.body["is_blocked"].as_bool(),
            r.body["is_friend"].as_bool()
        ),
        (Some(true), Some(true))
    );
    assert_eq!(
        kith.get(&format!("/api/v1/contact/{a}"), Some(&tb)).status,
        404,
        "the blocker is hidden"
    );
    let r = kith.call("DELETE", &format!("/blocks/{bn}"), None, Some(&ta));
    assert_eq!(r.status, 204);
    assert_eq!(
        kith.get("/user/blacklist", Some(&ta)).body["result"],
        json!([])
    );

    // A follow through v1 is a follower in 001; a remark through 004 is the v1 display name.
    let r = kith.post(&format!("/api/v1/contact/{a}/follow"), json!({}), Some(&tc));
    assert_eq!(r.status, 200, "{}", r.text);
    let r = kith.get(&format!("/follows/{an}/follower"), Some(&ta));
    let followers = r.body.as_array().unwrap();
    assert_eq!(followers.len(), 1, "{}", r.text);
    assert!(
        followers[0]
            .as_object()
            .unwrap()
            .values()
            .any(|v| v == &json!(cn)),
        "{}",
        r.text
    );
    let r = kith.post(
        "/friendship/set_display_name",
        json!({"friendId": a, "displayName": "Annie"}),
        Some(&tc),
    );
    assert_eq!(r.code(), 200);
    let r = kith.get(&format!("/api/v1/contact/{a}"), Some(&tc));
    assert_eq!(
        (
            r.body["display_name"].as_str(),
            r.body["is_following"].as_bool()
        ),
        (Some("Annie"), Some(true))
    );
    let r = kith.get("/api/v1/contact", Some(&tc));
    assert_eq!(r.body.as_array().unwrap().len(), 1, "{}", r.text);

    // Deleting through 001 shows 30 on both SealTalk rows.
    let r = kith.call("DELETE", &format!("/friends/{bn}"), None, Some(&ta));
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(status_with(&kith, &ta, &b), Some(30));
    assert_eq!(status_with(&kith, &tb, &a), Some(30));
    assert_eq!(kith.get("/friends", Some(&ta)).body, json!([]));
});

both_backends!(phone_book_upload_and_placeholder_takeover, |db: TestDb| {
    let kith = Kith::start(&db, &[]);
    let (_, ta) = kith.sign_up("13900000401", "Ann", PW);
    let r = kith.post(
        "/api/v1/contact/batch_upload",
        json!([
            {"tel": "139 0000 0402", "display_name": "Bob (work)"},
            {"tel": "not-a-phone", "display_name": "x"}
        ]),
        Some(&ta),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let results = r.body.as_array().cloned().unwrap_or_default();
    assert_eq!(results.len(), 2, "{}", r.text);
    assert!(results[1].get("error").is_some(), "{}", r.text);
    let placeholder = results[0]["user_id"].as_str().unwrap().to_owned();
    let a = kith.post(
        "/user/check_phone_available",
        json!({"region": 86, "phone": "13900000402"}),
        None,
    );
    assert_eq!(a.body["result"], true, "a placeholder is not an account");

    let (b, _) = kith.sign_up("13900000402", "Bob", PW);
    assert_eq!(b, placeholder, "the new account takes over the placeholder");
    let r = kith.get(&format!("/api/v1/contact/{b}"), Some(&ta));
    assert_eq!(r.body["display_name"], "Bob (work)", "{}", r.text);
    assert_eq!(r.body["nickname"], "Bob");
    assert_eq!(r.body["is_following"], true);
    assert_eq!(r.body["phone"], "+8613900000402");
});

both_backends!(invite_cooldowns_are_configurable, |db: TestDb| {
    let kith = Kith::start(&db, &[("KITH_INVITE_PENDING_COOLDOWN_SECS", "0")]);
    let (_, ta) = kith.sign_up("13900000501", "Ann", PW);
    let (b, _) = kith.sign_up("13900000502", "Bob", PW);
    for _ in 0..2 {
        let r = kith.post("/friendship/invite", json!({"friendId": b}), Some(&ta));
        assert_eq!(r.body["result"]["action"], "Sent", "no cooldown: re-sent");
    }
    drop(kith);
    let kith = Kith::start(&db, &[]);
    let r = kith.post("/friendship/invite", json!({"friendId": b}), Some(&ta));
    assert_eq!(
        r.body["result"]["action"], "None",
        "the default 3-day cooldown"
    );
});
