//! The SealTalk friendship API (004) and the 003 blacklist, over the in-memory ports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use actix_web::{test, App};
use kith_http::configure;
use serde_json::{json, Value};
use support::{sign_up, state};

macro_rules! call {
    ($app:expr, $method:ident, $path:expr, $token:expr, $body:expr) => {{
        let req = test::TestRequest::$method()
            .uri(&$path)
            .insert_header(("Authorization", format!("Bearer {}", $token)))
            .set_json($body)
            .to_request();
        let res = test::call_service(&$app, req).await;
        let status = res.status().as_u16();
        let link = res
            .headers()
            .get("link")
            .map(|v| v.to_str().unwrap().to_owned());
        let body: Value = test::read_body_json(res).await;
        (status, body, link)
    }};
}

#[actix_web::test]
async fn invite_agree_profile_and_delete() {
    let (state, sms, _) = state();
    let (a, ta) = sign_up(&state, &sms, 1, "Ann").await;
    let (b, tb) = sign_up(&state, &sms, 2, "Bob").await;
    let (c, tc) = sign_up(&state, &sms, 3, "Cat").await;
    let app = test::init_service(App::new().configure(configure(state))).await;

    let (s, r, _) = call!(
        app,
        post,
        "/friendship/invite",
        ta,
        json!({"friendId": b, "message": "hi"})
    );
    assert_eq!((s, &r["result"]["action"]), (200, &json!("Sent")), "{r}");
    let (_, r, _) = call!(app, post, "/friendship/invite", ta, json!({"friendId": b}));
    assert_eq!(r["result"]["action"], "None", "pending: no second request");

    let (_, r, _) = call!(app, get, "/friendship/all", tb, json!({}));
    let rows = r["result"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["status"], 11);
    assert_eq!(rows[0]["message"], "hi");
    assert_eq!(rows[0]["user"]["id"], a.as_str());
    assert_eq!(rows[0]["user"]["phone"], "", "not a friend yet: no phone");
    let time = rows[0]["updatedTime"].as_str().unwrap();
    assert!(time.parse::<i64>().unwrap() > 0, "{time}");
    let at = rows[0]["updatedAt"].as_str().unwrap();
    assert_eq!((at.len(), &at[10..11], &at[23..]), (24, "T", "Z"), "{at}");
    let (_, r, _) = call!(app, get, "/friendship/all", ta, json!({}));
    assert_eq!(r["result"][0]["status"], 10);

    let (s, _, _) = call!(app, get, format!("/friendship/{a}/profile"), tb, json!({}));
    assert_eq!(s, 403);
    let (s, r, _) = call!(app, post, "/friendship/agree", tb, json!({"friendId": a}));
    assert_eq!((s, &r["result"]["action"]), (200, &json!("Added")));
    for (t, other) in [(&ta, &b), (&tb, &a)] {
        let (_, r, _) = call!(app, get, "/friendship/all", t, json!({}));
        assert_eq!(r["result"][0]["status"], 20, "symmetric");
        assert_eq!(r["result"][0]["user"]["id"], other.as_str());
    }
    let (s, r, _) = call!(app, get, format!("/friendship/{a}/profile"), tb, json!({}));
    assert_eq!((s, &r["result"]["user"]["nickname"]), (200, &json!("Ann")));
    assert_eq!(r["result"]["user"]["phone"], "13900000001");

    let (s, r, _) = call!(app, post, "/friendship/invite", ta, json!({"friendId": b}));
    assert_eq!((s, r["code"].as_i64()), (400, Some(400)), "already friends");
    let (s, _, _) = call!(app, post, "/friendship/invite", ta, json!({"friendId": a}));
    assert_eq!(s, 400, "myself");
    let (s, _, _) = call!(
        app,
        post,
        "/friendship/invite",
        ta,
        json!({"friendId": "12345"})
    );
    assert_eq!(s, 404, "unknown");
    let (s, _, _) = call!(
        app,
        post,
        "/friendship/invite",
        ta,
        json!({"friendId": "abc"})
    );
    assert_eq!(s, 400);
    let (s, _, _) = call!(
        app,
        post,
        "/friendship/invite",
        ta,
        json!({"friendId": c, "message": "x".repeat(65)})
    );
    assert_eq!(s, 400, "message over 64");

    let (s, _, _) = call!(app, post, "/friendship/delete", ta, json!({"friendId": b}));
    assert_eq!(s, 200);
    for t in [&ta, &tb] {
        let (_, r, _) = call!(app, get, "/friendship/all", t, json!({}));
        assert_eq!(r["result"][0]["status"], 30, "deleted on both rows");
    }
    let (s, _, _) = call!(app, post, "/friendship/delete", ta, json!({"friendId": c}));
    assert_eq!(s, 404, "not a friend");
    let ids: Vec<String> = (0..101).map(|i| (i + 1).to_string()).collect();
    let (s, _, _) = call!(
        app,
        post,
        "/friendship/batch_delete",
        ta,
        json!({"friendIds": ids})
    );
    assert_eq!(s, 400);
    let (s, _, _) = call!(
        app,
        post,
        "/friendship/batch_delete",
        ta,
        json!({"friendIds": [b, c]})
    );
    assert_eq!(s, 200);
    let _ = tc;
}

#[actix_web::test]
async fn descriptions_blacklist_and_contacts_info() {
    let (state, sms, _) = state();
    let (_a, ta) = sign_up(&state, &sms, 1, "Ann").await;
    let (b, tb) = sign_up(&state, &sms, 2, "Bob").await;
    let app = test::init_service(App::new().configure(configure(state))).await;

    let (s, _, _) = call!(
        app,
        post,
        "/friendship/set_friend_description",
        ta,
        json!({"friendId": b, "displayName": "Bobby", "description": "met at work", "region": 86})
    );
    assert_eq!(s, 200);
    let (s, _, _) = call!(
        app,
        post,
        "/friendship/set_friend_description",
        ta,
        json!({"friendId": b, "description": ""})
    );
    assert_eq!(s, 200);
    let (_, r, _) = call!(
        app,
        post,
        "/friendship/get_friend_description",
        ta,
        json!({"friendId": b})
    );
    assert_eq!(
        r["result"],
        json!({"displayName": "Bobby", "region": "86", "phone": "", "description": "", "imageUri": ""})
    );
    let (s, _, _) = call!(
        app,
        post,
        "/friendship/set_display_name",
        ta,
        json!({"friendId": b, "displayName": "x".repeat(33)})
    );
    assert_eq!(s, 400);
    let (s, _, _) = call!(
        app,
        post,
        "/friendship/set_friend_description",
        ta,
        json!({"friendId": b, "imageUri": "javascript:alert(1)"})
    );
    assert_eq!(s, 400);

    let (s, _, _) = call!(
        app,
        post,
        "/user/add_to_blacklist",
        tb,
        json!({"friendId": "999"})
    );
    assert_eq!(s, 404);
    let (s, _, _) = call!(
        app,
        post,
        "/user/add_to_blacklist",
        tb,
        json!({"friendId": _a})
    );
    assert_eq!(s, 200);
    let (_, r, _) = call!(app, get, "/user/blacklist", tb, json!({}));
    let list = r["result"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], _a.as_str());
    assert_eq!(list[0]["nickname"], "Ann");
    assert!(list[0]["updatedAt"].as_str().unwrap().ends_with('Z'));
    let (_, r, _) = call!(app, post, "/friendship/invite", ta, json!({"friendId": b}));
    assert_eq!(
        r["result"]["action"], "None",
        "a blocked inviter sees nothing"
    );
    let (_, r, _) = call!(app, get, "/friendship/all", tb, json!({}));
    assert_eq!(r["result"].as_array().unwrap().len(), 0);

    let (_, r, _) = call!(
        app,
        post,
        "/friendship/get_contacts_info",
        tb,
        json!({"contactList": ["13900000001", "13900000009", "+86 139 0000 0002"]})
    );
    let rows = r["result"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["registered"], 1, "{r}");
    assert_eq!(rows[0]["relationship"], 0);
    assert_eq!(rows[1]["registered"], 0);
    assert!(rows[1].get("id").is_none());
    assert_eq!(rows[2]["registered"], 0, "myself is not listed");
    let (_, r, _) = call!(
        app,
        post,
        "/friendship/get_contacts_info",
        ta,
        json!({"contactList": ["13900000002"]})
    );
    assert_eq!(
        r["result"][0]["registered"], 0,
        "a blocker is not found by the blocked"
    );

    let (s, _, _) = call!(
        app,
        post,
        "/user/remove_from_blacklist",
        tb,
        json!({"friendId": _a})
    );
    assert_eq!(s, 200);
    let (_, r, _) = call!(app, get, "/user/blacklist", tb, json!({}));
    assert_eq!(r["result"], json!([]));
}

#[actix_web::test]
async fn long_lists_are_cut_and_linked() {
    let (state, sms, _) = state();
    let (_, t0) = sign_up(&state, &sms, 1, "Hub").await;
    let mut others = Vec::new();
    for n in 2..7 {
        others.push(sign_up(&state, &sms, n, "Fan").await.0);
    }
    let app = test::init_service(App::new().configure(configure(state))).await;
    for o in &others {
        call!(
            app,
            post,
            "/user/add_to_blacklist",
            t0,
            json!({"friendId": o})
        );
    }
    let (_, r, link) = call!(app, get, "/user/blacklist?limit=2", t0, json!({}));
    assert_eq!(r["result"].as_array().unwrap().len(), 2);
    let link = link.unwrap();
    assert!(link.contains("rel=\"next\""), "{link}");
    let next = &link[1..link.find('>').unwrap()];
    let mut seen: Vec<String> = r["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect();
    let mut next = Some(next.to_owned());
    while let Some(n) = next {
        let (_, r, link) = call!(app, get, n, t0, json!({}));
        seen.extend(
            r["result"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["id"].as_str().unwrap().to_owned()),
        );
        next = link.map(|l| l[1..l.find('>').unwrap()].to_owned());
    }
    let mut expected = others.clone();
    expected.sort_by_key(|s| s.parse::<i64>().unwrap());
    assert_eq!(seen, expected);
    let (s, _, _) = call!(app, get, "/user/blacklist?limit=x", t0, json!({}));
    assert_eq!(s, 400);
    let (s, _, _) = call!(app, get, "/user/blacklist?cursor=-4", t0, json!({}));
    assert_eq!(s, 400);
}
