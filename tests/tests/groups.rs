//! End to end: SealTalk groups through the real binary, on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Barrier};

use kith_e2e::{both_backends, Kith, TestDb};
use serde_json::{json, Value};

const PW: &str = "kith-Secret1";

fn ok(a: kith_e2e::Answer) -> Value {
    assert_eq!((a.status, a.code()), (200, 200), "{}", a.text);
    a.body
}

fn befriend(kith: &Kith, (a, ta): (&str, &str), (b, tb): (&str, &str)) {
    ok(kith.post("/friendship/invite", json!({"friendId": b}), Some(ta)));
    ok(kith.post("/friendship/agree", json!({"friendId": a}), Some(tb)));
}

both_backends!(groups_lifecycle, |db: TestDb| {
    let kith = Kith::start(&db, &[]);
    let (ann, ta) = kith.sign_up("13900000401", "Ann", PW);
    let (bob, tb) = kith.sign_up("13900000402", "Bob", PW);
    let (cy, tc) = kith.sign_up("13900000403", "Cy", PW);
    let (_dan, td) = kith.sign_up("13900000404", "Dan", PW);
    befriend(&kith, (&ann, &ta), (&bob, &tb));
    befriend(&kith, (&ann, &ta), (&cy, &tc));

    let r = ok(kith.post(
        "/group/create",
        json!({"name": "Team", "memberIds": [bob]}),
        Some(&ta),
    ));
    let g = r["result"]["id"].as_str().unwrap().to_owned();
    ok(kith.post(
        "/group/add",
        json!({"groupId": g, "memberIds": [cy]}),
        Some(&ta),
    ));
    ok(kith.post(
        "/group/set_bulletin",
        json!({"groupId": g, "bulletin": "Hi"}),
        Some(&ta),
    ));

    let r = ok(kith.post("/user/groups", json!({}), Some(&tc)));
    assert_eq!(r["result"][0]["id"], g.as_str());
    assert_eq!(r["result"][0]["memberCount"], 3);
    assert_eq!(r["result"][0]["creatorId"], ann.as_str());
    assert_eq!(r["result"][0]["role"], 1);
    let r = ok(kith.get(&format!("/group/{g}/members"), Some(&tb)));
    assert_eq!(r["result"].as_array().unwrap().len(), 3);
    let r = ok(kith.get(&format!("/group/get_bulletin?groupId={g}"), Some(&tb)));
    assert_eq!(r["result"]["content"], "Hi");

    // A member may not kick; a stranger may not look; nothing changed.
    let a = kith.post(
        "/group/kick",
        json!({"groupId": g, "memberIds": [cy]}),
        Some(&tb),
    );
    assert_eq!((a.status, a.code()), (403, 403));
    let a = kith.get(&format!("/group/{g}"), Some(&td));
    assert_eq!((a.status, a.code()), (403, 403));
    let a = kith.get("/group/424242", Some(&ta));
    assert_eq!((a.status, a.code()), (404, 404));

    // The creator leaves: the oldest member (Bob, who joined at creation) inherits.
    ok(kith.post("/group/quit", json!({"groupId": g}), Some(&ta)));
    let r = ok(kith.get(&format!("/group/{g}"), Some(&tb)));
    assert_eq!(r["result"]["creatorId"], bob.as_str());
    assert_eq!(r["result"]["memberCount"], 2);
    ok(kith.post("/group/quit", json!({"groupId": g}), Some(&tc)));
    ok(kith.post("/group/quit", json!({"groupId": g}), Some(&tb)));
    // The last member left: the group is gone.
    let a = kith.get(&format!("/group/{g}"), Some(&tb));
    assert_eq!((a.status, a.code()), (404, 404));
    let r = ok(kith.get("/user/groups", Some(&tb)));
    assert_eq!(r["result"], json!([]));
});

both_backends!(
    concurrent_adds_respect_the_configured_member_limit,
    |db: TestDb| {
        let kith = Arc::new(Kith::start(
            &db,
            &[
                ("KITH_GROUP_MAX_MEMBERS", "4"),
                ("KITH_GROUP_NAME_MIN", "3"),
                // Seven sign-ups from one address.
                ("KITH_CAPTCHA_AFTER", "off"),
            ],
        ));
        let (ann, ta) = kith.sign_up("13900000410", "Ann", PW);
        let a = kith.post(
            "/group/create",
            json!({"name": "ab", "memberIds": []}),
            Some(&ta),
        );
        assert_eq!((a.status, a.code()), (400, 400), "{}", a.text);
        let r = ok(kith.post(
            "/group/create",
            json!({"name": "Race", "memberIds": []}),
            Some(&ta),
        ));
        let g = r["result"]["id"].as_str().unwrap().to_owned();

        const RACERS: usize = 6;
        let mut friends = Vec::new();
        for i in 0..RACERS {
            let (id, t) = kith.sign_up(&format!("1390000042{i}"), "Racer", PW);
            befriend(&kith, (&ann, &ta), (&id, &t));
            friends.push(id);
        }
        let barrier = Arc::new(Barrier::new(RACERS));
        let handles: Vec<_> = friends
            .into_iter()
            .map(|id| {
                let (kith, barrier, ta, g) = (kith.clone(), barrier.clone(), ta.clone(), g.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let a = kith.post(
                        "/group/add",
                        json!({"groupId": g, "memberIds": [id]}),
                        Some(&ta),
                    );
                    (a.status, a.code())
                })
            })
            .collect();
        let results: Vec<(u16, i64)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let added = results.iter().filter(|r| **r == (200, 200)).count();
        assert_eq!(added, 3, "{results:?}");
        assert!(
            results.iter().all(|r| *r == (200, 200) || *r == (400, 400)),
            "{results:?}"
        );
        let r = ok(kith.get(&format!("/group/{g}"), Some(&ta)));
        assert_eq!(r["result"]["memberCount"], 4);
        assert_eq!(r["result"]["maxMemberCount"], 4);
        let r = ok(kith.get(&format!("/group/{g}/members"), Some(&ta)));
        assert_eq!(r["result"].as_array().unwrap().len(), 4);
    }
);
