//! End to end: `/user/sync/{version}` across two devices of one user, tombstones, bad versions,
//! and the resync code after compaction, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use kith_e2e::{both_backends, Kith, TestDb};
use serde_json::{json, Value};

const PW: &str = "kith-Secret1";

/// One device's copy of the sync view, kept by the client rules of docs/sync.md.
#[derive(Debug, Default, Clone, PartialEq)]
struct Device {
    version: u64,
    user: Value,
    friends: BTreeMap<String, Value>,
    blacklist: BTreeMap<String, Value>,
    contacts: BTreeMap<String, Value>,
    tags: BTreeMap<String, Value>,
    conversations: BTreeMap<String, Value>,
    groups: BTreeMap<String, Value>,
    members: BTreeMap<(String, String), Value>,
}

fn rows(r: &Value, key: &str) -> Vec<Value> {
    r[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} missing in {r}"))
        .clone()
}

fn text(v: &Value) -> String {
    v.as_str().unwrap().to_owned()
}

impl Device {
    /// Syncs from the device's version and applies the answer; returns the raw result.
    fn sync(&mut self, kith: &Kith, token: &str) -> Value {
        let a = kith.post(
            &format!("/user/sync/{}", self.version),
            json!({}),
            Some(token),
        );
        assert_eq!(a.code(), 200, "{}", a.text);
        let r = a.body["result"].clone();
        self.apply(&r);
        r
    }

    fn apply(&mut self, r: &Value) {
        self.version = r["version"].as_u64().unwrap();
        if !r["user"].is_null() {
            self.user = r["user"].clone();
        }
        for f in rows(r, "friends") {
            let id = text(&f["friendId"]);
            let status = f["status"].as_i64().unwrap();
            if status == 30 || status == 0 {
                self.friends.remove(&id);
            } else {
                self.friends.insert(id, f);
            }
        }
        for b in rows(r, "blacklist") {
            let id = text(&b["friendId"]);
            if b["status"] == true {
                self.blacklist.insert(id, b);
            } else {
                self.blacklist.remove(&id);
            }
        }
        for (key, map) in [("contacts", &mut self.contacts), ("tags", &mut self.tags)] {
            for c in rows(r, key) {
                let id = text(&c["_id"]);
                if c["_deleted"] == true {
                    map.remove(&id);
                } else {
                    map.insert(id, c);
                }
            }
        }
        for c in rows(r, "conversations") {
            let id = text(&c["user_id"]);
            if c["is_deleted"] == true {
                self.conversations.remove(&id);
            } else {
                self.conversations.insert(id, c);
            }
        }
        for g in rows(r, "groups") {
            let id = text(&g["group"]["id"]);
            if g["isDeleted"] == true {
                self.groups.remove(&id);
                self.members.retain(|(group, _), _| *group != id);
            } else {
                self.groups.insert(id, g);
            }
        }
        for m in rows(r, "group_members") {
            let key = (text(&m["groupId"]), text(&m["memberId"]));
            if m["isDeleted"] == true {
                self.members.remove(&key);
            } else {
                self.members.insert(key, m);
            }
        }
    }

    /// What a fresh device gets from sync/0.
    fn fresh(kith: &Kith, token: &str) -> Device {
        let mut d = Device::default();
        d.sync(kith, token);
        d
    }
}

fn login(kith: &Kith, national: &str) -> String {
    let a = kith.post(
        "/user/login",
        json!({"region": 86, "phone": national, "password": PW}),
        None,
    );
    assert_eq!(a.code(), 200, "{}", a.text);
    text(&a.body["result"]["token"])
}

both_backends!(two_devices_converge, |db: TestDb| {
    let kith = Kith::start(&db, &[]);
    let (ann, phone_a) = kith.sign_up("13900000301", "Ann", PW);
    let tablet_a = login(&kith, "13900000301");
    let (bob, tb) = kith.sign_up("13900000302", "Bob", PW);
    let (cy, _) = kith.sign_up("13900000303", "Cy", PW);

    let mut phone = Device::fresh(&kith, &phone_a);
    let mut tablet = Device::fresh(&kith, &tablet_a);
    let tablet_start = tablet.version;
    assert_eq!(phone, tablet);
    assert_eq!(phone.user["nickname"], "Ann");
    assert_eq!(phone.user["id"], ann.as_str());

    // The phone acts.
    let ok = |a: kith_e2e::Answer| assert_eq!(a.code(), 200, "{}", a.text);
    ok(kith.post(
        "/friendship/invite",
        json!({"friendId": bob}),
        Some(&phone_a),
    ));
    ok(kith.post("/friendship/agree", json!({"friendId": ann}), Some(&tb)));
    ok(kith.post(
        "/friendship/set_display_name",
        json!({"friendId": bob, "displayName": "Bobby"}),
        Some(&phone_a),
    ));
    ok(kith.post(
        "/user/add_to_blacklist",
        json!({"friendId": cy}),
        Some(&phone_a),
    ));
    let r = kith.post(
        &format!("/api/v1/contact/{bob}/conversation/sticky"),
        json!({}),
        Some(&phone_a),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let keep = kith.post("/api/v2/contact", json!({"name": "Dora"}), Some(&phone_a));
    let drop = kith.post("/api/v2/contact", json!({"name": "Eve"}), Some(&phone_a));
    let drop_id = text(&drop.body["id"]);
    ok(kith.post(
        "/user/set_nickname",
        json!({"nickname": "Annie"}),
        Some(&phone_a),
    ));
    // Bob's new nickname shows in Ann's friend list.
    ok(kith.post(
        "/user/set_nickname",
        json!({"nickname": "Robert"}),
        Some(&tb),
    ));

    let r = tablet.sync(&kith, &tablet_a);
    assert!(r["version"].as_u64().unwrap() > tablet_start);
    assert_eq!(tablet.user["nickname"], "Annie");
    let friend = &tablet.friends[&bob];
    assert_eq!(friend["status"], 20);
    assert_eq!(friend["displayName"], "Bobby");
    assert_eq!(friend["user"]["nickname"], "Robert");
    assert!(tablet.blacklist.contains_key(&cy));
    assert_eq!(tablet.conversations[&bob]["conv_type"], "sticky");
    assert_eq!(tablet.contacts.len(), 2);
    assert_eq!(
        tablet,
        Device::fresh(&kith, &tablet_a),
        "the tablet converged"
    );

    // Nothing changed: same version, every list empty.
    let v = tablet.version;
    assert!(v > 0);
    let r = tablet.sync(&kith, &tablet_a);
    assert_eq!(r["version"].as_u64(), Some(v));
    assert!(r["user"].is_null());
    for key in [
        "friends",
        "blacklist",
        "contacts",
        "conversations",
        "groups",
    ] {
        assert_eq!(r[key], json!([]), "{key}");
    }

    // Unblock and delete: tombstones.
    ok(kith.post(
        "/user/remove_from_blacklist",
        json!({"friendId": cy}),
        Some(&phone_a),
    ));
    let r = kith.call(
        "DELETE",
        &format!("/api/v2/contact/{drop_id}"),
        None,
        Some(&phone_a),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = tablet.sync(&kith, &tablet_a);
    let unblock: Vec<&Value> = r["blacklist"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["friendId"] == cy.as_str())
        .collect();
    assert_eq!(unblock.len(), 1, "{r}");
    assert_eq!(unblock[0]["status"], false);
    let gone: Vec<&Value> = r["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["_id"] == drop_id.as_str())
        .collect();
    assert_eq!(gone.len(), 1, "{r}");
    assert_eq!(gone[0]["_deleted"], true);
    assert!(!tablet.blacklist.contains_key(&cy));
    assert_eq!(tablet.contacts.len(), 1);
    assert!(tablet
        .contacts
        .contains_key(keep.body["id"].as_str().unwrap()));

    // The phone, offline all along, catches up in one call and agrees.
    phone.sync(&kith, &phone_a);
    assert_eq!(phone, tablet);
    assert_eq!(phone, Device::fresh(&kith, &phone_a));

    // GET works too; bad versions are 400 in the envelope.
    let a = kith.get(&format!("/user/sync/{}", phone.version), Some(&phone_a));
    assert_eq!(a.body["result"]["version"].as_u64(), Some(phone.version));
    for bad in ["abc", "-1", "1.5"] {
        let a = kith.post(&format!("/user/sync/{bad}"), json!({}), Some(&phone_a));
        assert_eq!((a.status, a.code()), (400, 400), "{bad}: {}", a.text);
    }
    assert_eq!(kith.post("/user/sync/0", json!({}), None).status, 401);
});

both_backends!(compaction_makes_old_devices_resync, |db: TestDb| {
    let kith = Kith::start(
        &db,
        &[
            ("KITH_SYNC_HORIZON_SECS", "1"),
            ("KITH_SYNC_COMPACT_EVERY_SECS", "1"),
        ],
    );
    let (_, ta) = kith.sign_up("13900000311", "Ann", PW);
    let r = kith.post(
        "/user/set_nickname",
        json!({"nickname": "Annie"}),
        Some(&ta),
    );
    assert_eq!(r.code(), 200);
    let mut old = Device::fresh(&kith, &ta);
    assert_eq!(old.version, 1);
    for name in ["A", "B", "C"] {
        let r = kith.post("/api/v2/contact", json!({"name": name}), Some(&ta));
        assert_eq!(r.status, 200);
    }
    // Several compaction rounds pass the 1 s horizon.
    std::thread::sleep(std::time::Duration::from_millis(3500));
    let a = kith.post(&format!("/user/sync/{}", old.version), json!({}), Some(&ta));
    assert_eq!((a.status, a.code()), (200, 4000), "{}", a.text);
    // The client rule: start again from 0.
    old = Device::fresh(&kith, &ta);
    assert_eq!(old.contacts.len(), 3);
    let r = old.sync(&kith, &ta);
    assert_eq!(r["contacts"], json!([]));
});
