//! The SealTalk group API's HTTP mapping (`/group/...`, `/user/groups`), over the in-memory ports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use actix_web::{test, App};
use kith_http::configure;
use serde_json::{json, Value};
use support::{call, sign_up, state};

macro_rules! app {
    ($state:expr) => {
        test::init_service(App::new().configure(configure($state))).await
    };
}

/// POST with a body; (HTTP status, body).
macro_rules! post {
    ($app:expr, $path:expr, $token:expr, $body:expr) => {{
        let a = call(&$app, "POST", $path, Some($body), Some($token)).await;
        (a.status, a.body)
    }};
}

macro_rules! get {
    ($app:expr, $path:expr, $token:expr) => {{
        let a = call(&$app, "GET", &$path, None, Some($token)).await;
        (a.status, a.body)
    }};
}

/// Makes `a` and `b` friends through the friendship API.
macro_rules! befriend {
    ($app:expr, ($a:expr, $ta:expr), ($b:expr, $tb:expr)) => {{
        let (_, r) = post!($app, "/friendship/invite", $ta, json!({"friendId": $b}));
        assert_eq!(r["code"], 200, "{r}");
        let (_, r) = post!($app, "/friendship/agree", $tb, json!({"friendId": $a}));
        assert_eq!(r["code"], 200, "{r}");
    }};
}

fn code(body: &Value) -> i64 {
    body["code"].as_i64().unwrap()
}

#[actix_web::test]
async fn create_list_read_and_manage_a_group() {
    let (state, sms, _) = state();
    let (a, ta) = sign_up(&state, &sms, 1, "Ann").await;
    let (b, tb) = sign_up(&state, &sms, 2, "Bob").await;
    let (c, tc) = sign_up(&state, &sms, 3, "Cat").await;
    let app = app!(state);
    befriend!(app, (a, &ta), (b, &tb));
    befriend!(app, (a, &ta), (c, &tc));

    let (s, r) = post!(
        app,
        "/group/create",
        &ta,
        json!({"name": "Team", "memberIds": [b]})
    );
    assert_eq!((s, code(&r)), (200, 200), "{r}");
    let g = r["result"]["id"].as_str().unwrap().to_owned();
    assert!(g.bytes().all(|c| c.is_ascii_digit()));

    // Numbers are accepted for ids as well as strings.
    let cn: u64 = c.parse().unwrap();
    let (_, r) = post!(
        app,
        "/group/add",
        &ta,
        json!({"groupId": g, "memberIds": [cn]})
    );
    assert_eq!(code(&r), 200, "{r}");

    for method in ["POST", "GET"] {
        let r = call(&app, method, "/user/groups", None, Some(&tb)).await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.body["result"],
            json!([{
                "id": g, "name": "Team", "portraitUri": "", "creatorId": a,
                "memberCount": 3, "role": 1, "displayName": "",
                "timestamp": r.body["result"][0]["timestamp"],
            }])
        );
    }

    let (s, r) = get!(app, format!("/group/{g}"), &tc);
    assert_eq!((s, code(&r)), (200, 200));
    assert_eq!(r["result"]["name"], "Team");
    assert_eq!(r["result"]["creatorId"], a.as_str());
    assert_eq!(r["result"]["memberCount"], 3);
    assert_eq!(r["result"]["maxMemberCount"], 500);

    let (_, r) = post!(
        app,
        "/group/set_display_name",
        &tb,
        json!({"groupId": g, "displayName": "Bobby"})
    );
    assert_eq!(code(&r), 200);
    let (_, r) = get!(app, format!("/group/{g}/members"), &tc);
    let members = r["result"].as_array().unwrap();
    let summary: Vec<(String, i64, String, String)> = members
        .iter()
        .map(|m| {
            (
                m["user"]["id"].as_str().unwrap().to_owned(),
                m["role"].as_i64().unwrap(),
                m["displayName"].as_str().unwrap().to_owned(),
                m["user"]["nickname"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut expected = vec![
        (a.clone(), 0, String::new(), "Ann".to_owned()),
        (b.clone(), 1, "Bobby".to_owned(), "Bob".to_owned()),
        (c.clone(), 1, String::new(), "Cat".to_owned()),
    ];
    expected.sort_by_key(|e| e.0.parse::<u64>().unwrap());
    assert_eq!(summary, expected);

    let (_, r) = post!(
        app,
        "/group/rename",
        &ta,
        json!({"groupId": g, "name": "Crew"})
    );
    assert_eq!(code(&r), 200);
    let (_, r) = post!(
        app,
        "/group/set_portrait_uri",
        &ta,
        json!({"groupId": g, "portraitUri": "http://x.com/p.png"})
    );
    assert_eq!(code(&r), 200);
    let (_, r) = post!(
        app,
        "/group/set_bulletin",
        &ta,
        json!({"groupId": g, "bulletin": "Hello all"})
    );
    assert_eq!(code(&r), 200);
    let (_, r) = get!(app, format!("/group/get_bulletin?groupId={g}"), &tb);
    assert_eq!(r["result"]["content"], "Hello all");
    assert_eq!(r["result"]["groupId"], g.as_str());
    let (_, r) = get!(app, format!("/group/{g}"), &tb);
    assert_eq!(r["result"]["name"], "Crew");
    assert_eq!(r["result"]["portraitUri"], "http://x.com/p.png");

    // Managers, then transfer, kick, quit and dismiss.
    let (_, r) = post!(
        app,
        "/group/set_manager",
        &ta,
        json!({"groupId": g, "memberIds": [b]})
    );
    assert_eq!(code(&r), 200);
    let (_, r) = post!(
        app,
        "/group/kick",
        &tb,
        json!({"groupId": g, "memberIds": [c]})
    );
    assert_eq!(code(&r), 200, "{r}");
    let (_, r) = post!(
        app,
        "/group/transfer",
        &ta,
        json!({"groupId": g, "userId": b})
    );
    assert_eq!(code(&r), 200);
    let (_, r) = get!(app, format!("/group/{g}"), &ta);
    assert_eq!(r["result"]["creatorId"], b.as_str());
    let (_, r) = post!(app, "/group/quit", &ta, json!({"groupId": g}));
    assert_eq!(code(&r), 200);
    let (s, r) = get!(app, format!("/group/{g}"), &ta);
    assert_eq!((s, code(&r)), (403, 403));
    let (_, r) = post!(app, "/group/dismiss", &tb, json!({"groupId": g}));
    assert_eq!(code(&r), 200);
    let (s, r) = get!(app, format!("/group/{g}"), &tb);
    assert_eq!((s, code(&r)), (404, 404));
    let (_, r) = post!(app, "/user/groups", &tb, json!({}));
    assert_eq!(r["result"], json!([]));
}

#[actix_web::test]
async fn roles_and_strangers_get_403_and_change_nothing() {
    let (state, sms, _) = state();
    let (a, ta) = sign_up(&state, &sms, 1, "Ann").await;
    let (b, tb) = sign_up(&state, &sms, 2, "Bob").await;
    let (c, tc) = sign_up(&state, &sms, 3, "Cat").await;
    let (_d, td) = sign_up(&state, &sms, 4, "Dan").await;
    let app = app!(state);
    befriend!(app, (a, &ta), (b, &tb));
    befriend!(app, (a, &ta), (c, &tc));
    befriend!(app, (b, &tb), (c, &tc));
    let (_, r) = post!(
        app,
        "/group/create",
        &ta,
        json!({"name": "Team", "memberIds": [b]})
    );
    let g = r["result"]["id"].as_str().unwrap().to_owned();

    let forbidden: Vec<(&str, Value)> = vec![
        ("/group/add", json!({"groupId": g, "memberIds": [c]})),
        ("/group/kick", json!({"groupId": g, "memberIds": [a]})),
        ("/group/dismiss", json!({"groupId": g})),
        ("/group/transfer", json!({"groupId": g, "userId": b})),
        ("/group/rename", json!({"groupId": g, "name": "Mine"})),
        (
            "/group/set_bulletin",
            json!({"groupId": g, "bulletin": "x"}),
        ),
        (
            "/group/set_manager",
            json!({"groupId": g, "memberIds": [b]}),
        ),
    ];
    for (path, body) in &forbidden {
        let (s, r) = post!(app, path, &tb, body.clone());
        assert_eq!((s, code(&r)), (403, 403), "{path}: {r}");
        assert!(r["message"].as_str().unwrap().contains("forbidden"), "{r}");
    }
    // A stranger may not even look.
    for path in [
        format!("/group/{g}"),
        format!("/group/{g}/members"),
        format!("/group/get_bulletin?groupId={g}"),
    ] {
        let (s, r) = get!(app, path, &td);
        assert_eq!((s, code(&r)), (403, 403), "{path}");
    }
    let (s, _) = post!(app, "/group/quit", &td, json!({"groupId": g}));
    assert_eq!(s, 403);
    let (_, r) = get!(app, format!("/group/{g}"), &ta);
    assert_eq!(r["result"]["name"], "Team");
    assert_eq!(r["result"]["memberCount"], 2);

    // Unknown groups are 404, whatever the id looks like.
    for path in ["/group/123456", "/group/5Vg2Xh9f", "/group/123456/members"] {
        let (s, r) = get!(app, path, &ta);
        assert_eq!((s, code(&r)), (404, 404), "{path}");
    }
    let (s, r) = post!(app, "/group/quit", &ta, json!({"groupId": "123456"}));
    assert_eq!((s, code(&r)), (404, 404));
    // Without a session: 401.
    let r = call(
        &app,
        "POST",
        "/group/create",
        Some(json!({"name": "x"})),
        None,
    )
    .await;
    assert_eq!(r.status, 401);
}

#[actix_web::test]
async fn only_friends_or_willing_users_join_and_never_a_blocker() {
    let (state, sms, _) = state();
    let (a, ta) = sign_up(&state, &sms, 1, "Ann").await;
    let (b, tb) = sign_up(&state, &sms, 2, "Bob").await;
    let (c, tc) = sign_up(&state, &sms, 3, "Cat").await;
    let app = app!(state);
    let (s, r) = post!(
        app,
        "/group/create",
        &ta,
        json!({"name": "Team", "memberIds": [b]})
    );
    assert_eq!((s, code(&r)), (403, 403), "{r}");
    let (_, r) = post!(app, "/user/groups", &ta, json!({}));
    assert_eq!(r["result"], json!([]));

    // b lets anyone add them; c does too but blocks a.
    let (_, r) = post!(
        app,
        "/user/set_privacy",
        &tb,
        json!({"allow_group_invites": true})
    );
    assert_eq!(code(&r), 200);
    let (_, r) = post!(
        app,
        "/user/set_privacy",
        &tc,
        json!({"allow_group_invites": true})
    );
    assert_eq!(code(&r), 200);
    let (_, r) = post!(app, "/user/add_to_blacklist", &tc, json!({"friendId": a}));
    assert_eq!(code(&r), 200);
    let (_, r) = post!(
        app,
        "/group/create",
        &ta,
        json!({"name": "Team", "memberIds": [b]})
    );
    assert_eq!(code(&r), 200, "{r}");
    let g = r["result"]["id"].as_str().unwrap().to_owned();
    let (s, r) = post!(
        app,
        "/group/add",
        &ta,
        json!({"groupId": g, "memberIds": [c]})
    );
    assert_eq!((s, code(&r)), (403, 403));
    assert!(r["message"].as_str().unwrap().contains("blocked"), "{r}");
}

#[actix_web::test]
async fn bad_input_is_400_in_the_envelope() {
    let (state, sms, _) = state();
    let (a, ta) = sign_up(&state, &sms, 1, "Ann").await;
    let app = app!(state);
    let too_many: Vec<String> = (1..=501).map(|n| n.to_string()).collect();
    let cases = [
        ("/group/create", json!({"name": "x", "memberIds": []})),
        (
            "/group/create",
            json!({"name": "n".repeat(33), "memberIds": []}),
        ),
        (
            "/group/create",
            json!({"name": "Team", "memberIds": ["abc"]}),
        ),
        (
            "/group/create",
            json!({"name": "Team", "memberIds": too_many}),
        ),
        ("/group/create", json!({"memberIds": []})),
        ("/group/add", json!({"groupId": "g1", "memberIds": [a]})),
        ("/group/add", json!({"groupId": "1", "memberIds": []})),
        (
            "/group/set_bulletin",
            json!({"groupId": "1", "bulletin": "b".repeat(1025)}),
        ),
        (
            "/group/set_portrait_uri",
            json!({"groupId": "1", "portraitUri": "ftp://x"}),
        ),
        (
            "/group/set_display_name",
            json!({"groupId": "1", "displayName": "d".repeat(33)}),
        ),
        ("/group/transfer", json!({"groupId": "1", "userId": "-4"})),
    ];
    for (path, body) in cases {
        let (s, r) = post!(app, path, &ta, body.clone());
        assert_eq!((s, code(&r)), (400, 400), "{path} {body}: {r}");
    }
    let (s, r) = get!(app, "/group/get_bulletin", &ta);
    assert_eq!((s, code(&r)), (400, 400));
    // A group of one is fine, and a 2-character name is the shortest.
    let (_, r) = post!(
        app,
        "/group/create",
        &ta,
        json!({"name": "ab", "memberIds": []})
    );
    assert_eq!(code(&r), 200, "{r}");
}
