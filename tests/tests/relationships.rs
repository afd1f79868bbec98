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

    let r = kith.post("/friendship/invite", json!({"friendId": b, "message": "hello"}), Some(&ta));
    assert_eq!(r.body["result"]["action"], "Sent", "{}", r.text);
    assert_eq!(status_with(&kith, &ta, &b), Some(10));
    assert_eq!(status_with(&kith, &tb, &a), Some(11));
    let r = kith.post("/friendship/agree", json!({"friendId": a}), Some(&tb));
    assert_eq!(r.code(), 200, "{}", r.text);
    assert_eq!(status_with(&kith, &ta, &b), Some(20));
    assert_eq!(status_with(&kith, &tb, &a), Some(20));
    let r = kith.get(&format!("/friendship/{b}/profile"), Some(&ta));
    assert_eq!(r.body["result"]["user"]["nickname"], "Bob");

    // A block keeps the friendship and shows in the blacklist.
    assert_eq!(kith.post("/user/add_to_blacklist", json!({"friendId": b}), Some(&ta)).code(), 200);
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
        assert_eq!(pair, ["Added", "Sent"], "one request, then friends: {actions:?}");
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
