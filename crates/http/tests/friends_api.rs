//! The friends / follows / blocks API (001)'s HTTP mapping, over the in-memory ports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use actix_web::{test, App};
use kith_domain::ports::{Privacy, ProfileChange};
use kith_domain::UserId;
use kith_http::{configure, AppState};
use serde_json::{json, Value};
use support::{call, sign_up, state};

macro_rules! app {
    ($state:expr) => {
        test::init_service(App::new().configure(configure($state))).await
    };
}

/// A signed-up user: numeric id and session token.
struct User {
    id: i64,
    token: String,
}

async fn users(state: &AppState, sms: &kith_domain::memory::MemorySms, n: u32) -> Vec<User> {
    let mut out = Vec::new();
    for i in 1..=n {
        let (id, token) = sign_up(state, sms, i, &format!("user{i}")).await;
        out.push(User {
            id: id.parse().unwrap(),
            token,
        });
    }
    out
}

fn ids(list: &Value, key: &str) -> Vec<i64> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|r| r[key].as_i64().unwrap())
        .collect()
}

#[actix_web::test]
async fn request_resend_accept_and_delete() {
    let (state, sms, _) = state();
    let u = users(&state, &sms, 2).await;
    let (a, b) = (&u[0], &u[1]);
    let app = app!(state);

    let r = call(
        &app,
        "POST",
        "/friends/request",
        Some(json!({"requested_user_id": b.id})),
        Some(&a.token),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let request_id = r.body["friend_request_id"].as_i64().unwrap();
    assert_eq!(r.body["is_friend"], false);

    let r = call(&app, "GET", "/friends/sync", None, Some(&b.token)).await;
    assert_eq!((r.status, &r.body), (200, &json!({"friend_request": 1})));

    let r = call(&app, "GET", "/friends/request", None, Some(&b.token)).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        json!([{
            "friend_request_id": request_id,
            "request_user_id": a.id,
            "request_user_name": null,
            "request_user_nick_name": "user1",
            "request_user_age": null,
            "request_user_gender": null,
            "request_email": null,
            "created_at": "2023-11-14T22:13:20.000Z",
        }])
    );
    let r = call(&app, "GET", "/friends/request_sent", None, Some(&a.token)).await;
    assert_eq!(
        r.body,
        json!([{
            "friend_request_id": request_id,
            "requested_user_id": b.id,
            "requested_user_name": null,
            "requested_user_nick_name": "user2",
            "requested_user_age": null,
            "requested_user_gender": null,
            "requested_email": null,
            "created_at": "2023-11-14T22:13:20.000Z",
        }])
    );

    // A resend pushes the same request again: still one request, same id.
    let r = call(
        &app,
        "POST",
        "/friends/request",
        Some(json!({"requested_user_id": b.id, "resend": true})),
        Some(&a.token),
    )
    .await;
    assert_eq!(
        (r.status, r.body["friend_request_id"].as_i64()),
        (201, Some(request_id))
    );
    let r = call(&app, "GET", "/friends/request", None, Some(&b.token)).await;
    assert_eq!(ids(&r.body, "friend_request_id"), vec![request_id]);
    // So does a plain repeat within the cooldown.
    let r = call(
        &app,
        "POST",
        "/friends/request",
        Some(json!({"requested_user_id": b.id})),
        Some(&a.token),
    )
    .await;
    assert_eq!(
        (r.status, r.body["friend_request_id"].as_i64()),
        (201, Some(request_id))
    );

    // Only the requested user may accept.
    let r = call(
        &app,
        "POST",
        "/friends/accept",
        Some(json!({"friend_request_id": request_id})),
        Some(&a.token),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "not_found");
    let r = call(
        &app,
        "POST",
        "/friends/accept",
        Some(json!({"friend_request_id": request_id})),
        Some(&b.token),
    )
    .await;
    assert_eq!((r.status, &r.body["is_friend"]), (201, &json!(true)));

    for (me, other) in [(a, b), (b, a)] {
        let r = call(&app, "GET", "/friends", None, Some(&me.token)).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body.as_array().unwrap().len(), 1);
        assert_eq!(r.body[0]["friend_id"], other.id);
        let keys: Vec<&String> = r.body[0].as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "friend_id",
                "friend_user_age",
                "friend_user_gender",
                "friend_user_name",
                "friend_user_nick_name"
            ]
        );
    }
    let r = call(&app, "GET", "/friends/sync", None, Some(&b.token)).await;
    assert_eq!(r.body["friend_request"], 0);
    let r = call(&app, "GET", "/friends/request", None, Some(&b.token)).await;
    assert_eq!(r.body, json!([]));
    let r = call(
        &app,
        "POST",
        "/friends/request",
        Some(json!({"requested_user_id": b.id})),
        Some(&a.token),
    )
    .await;
    assert_eq!(
        (r.status, &r.body["error"]["code"]),
        (409, &json!("already_friends"))
    );

    let r = call(
        &app,
        "DELETE",
        &format!("/friends/{}", a.id),
        None,
        Some(&b.token),
    )
    .await;
    assert_eq!((r.status, r.body), (204, Value::Null));
    let r = call(&app, "GET", "/friends", None, Some(&a.token)).await;
    assert_eq!(r.body, json!([]));
    let r = call(
        &app,
        "DELETE",
        &format!("/friends/{}", a.id),
        None,
        Some(&b.token),
    )
    .await;
    assert_eq!(r.status, 404);
}

#[actix_web::test]
async fn ignore_withdraw_and_requests_that_are_not_yours() {
    let (state, sms, _) = state();
    let u = users(&state, &sms, 4).await;
    let (b, c, d, e) = (&u[0], &u[1], &u[2], &u[3]);
    let app = app!(state);

    let r = call(
        &app,
        "POST",
        "/friends/request",
        Some(json!({"requested_user_id": b.id})),
        Some(&c.token),
    )
    .await;
    let from_c = r.body["friend_request_id"].as_i64().unwrap();
    let r = call(
        &app,
        "POST",
        "/friends/request",
        Some(json!({"requested_user_id": b.id})),
        Some(&d.token),
    )
    .await;
    let from_d = r.body["friend_request_id"].as_i64().unwrap();
    let r = call(&app, "GET", "/friends/request", None, Some(&b.token)).await;
    let mut got = ids(&r.body, "friend_request_id");
    got.sort();
    let mut want = vec![from_c, from_d];
    want.sort();
    assert_eq!(got, want);

    // A stranger can neither answer nor withdraw someone else's request.
    for path in ["/friends/accept", "/friends/ignore", "/friends/withdraw"] {
        let r = call(
            &app,
            "POST",
            path,
            Some(json!({"friend_request_id": from_c})),
            Some(&e.token),
        )
        .await;
        assert_eq!(r.status, 404, "{path}");
    }
    // The requested user cannot withdraw it, the requester cannot ignore it.
    let r = call(
        &app,
        "POST",
        "/friends/withdraw",
        Some(json!({"friend_request_id": from_c})),
        Some(&b.token),
    )
    .await;
    assert_eq!(r.status, 404);
    let r = call(
        &app,
        "POST",
        "/friends/ignore",
        Some(json!({"friend_request_id": from_c})),
        Some(&c.token),
    )
    .await;
    assert_eq!(r.status, 404);

    let r = call(
        &app,
        "POST",
        "/friends/ignore",
        Some(json!({"friend_request_id": from_c})),
        Some(&b.token),
    )
    .await;
    assert_eq!(r.status, 201);
    let r = call(&app, "GET", "/friends/request", None, Some(&b.token)).await;
    assert_eq!(ids(&r.body, "request_user_id"), vec![d.id]);
    // The requester is never told about the ignore.
    let r = call(&app, "GET", "/friends/request_sent", None, Some(&c.token)).await;
    assert_eq!(ids(&r.body, "requested_user_id"), vec![b.id]);

    let r = call(
        &app,
        "POST",
        "/friends/withdraw",
        Some(json!({"friend_request_id": from_d})),
        Some(&d.token),
    )
    .await;
    assert_eq!(r.status, 201);
    let r = call(&app, "GET", "/friends/request_sent", None, Some(&d.token)).await;
    assert_eq!(r.body, json!([]));
    let r = call(&app, "GET", "/friends/request", None, Some(&b.token)).await;
    assert_eq!(r.body, json!([]));
    let r = call(
        &app,
        "POST",
        "/friends/accept",
        Some(json!({"friend_request_id": from_d})),
        Some(&b.token),
    )
    .await;
    assert_eq!(r.status, 404);
    // An ignored request can still be accepted later.
    let r = call(
        &app,
        "POST",
        "/friends/accept",
        Some(json!({"friend_request_id": from_c})),
        Some(&b.token),
    )
    .await;
    assert_eq!(r.status, 201);
    let r = call(&app, "GET", "/friends", None, Some(&c.token)).await;
    assert_eq!(ids(&r.body, "friend_id"), vec![b.id]);
}

#[actix_web::test]
async fn blocks_keep_friends_dissolve_requests_and_stop_follows() {
    let (state, sms, _) = state();
    let u = users(&state, &sms, 4).await;
    let (a, b, c, d) = (&u[0], &u[1], &u[2], &u[3]);
    let app = app!(state);

    // a and b are friends; c asked a; a asked d; c follows a.
    let r = call(
        &app,
        "POST",
        "/friends/request",
        Some(json!({"requested_user_id": b.id})),
        Some(&a.token),
    )
    .await;
    let rid = r.body["friend_request_id"].as_i64().unwrap();
    call(
        &app,
        "POST",
        "/friends/accept",
        Some(json!({"friend_request_id": rid})),
        Some(&b.token),
    )
    .await;
    call(
        &app,
        "POST",
        "/friends/request",
        Some(json!({"requested_user_id": a.id})),
        Some(&c.token),
    )
    .await;
    call(
        &app,
        "POST",
        "/friends/request",
        Some(json!({"requested_user_id": d.id})),
        Some(&a.token),
    )
    .await;
    let r = call(
        &app,
        "POST",
        "/follows",
        Some(json!({"followee_id": a.id})),
        Some(&c.token),
    )
    .await;
    assert_eq!(r.status, 201);

    for other in [b, c, d] {
        let r = call(
            &app,
            "POST",
            "/blocks",
            Some(json!({"user_id": other.id})),
            Some(&a.token),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let r = call(&app, "GET", "/blocks", None, Some(&a.token)).await;
    assert_eq!(r.status, 200);
    let mut want = vec![b.id, c.id, d.id];
    want.sort();
    assert_eq!(ids(&r.body, "blocked_user_id"), want);
    assert!(r.body[0].get("blocked_user_nick_name").is_some());

    // The friendship survives, on both sides.
    let r = call(&app, "GET", "/friends", None, Some(&a.token)).await;
    assert_eq!(ids(&r.body, "friend_id"), vec![b.id]);
    let r = call(&app, "GET", "/friends", None, Some(&b.token)).await;
    assert_eq!(ids(&r.body, "friend_id"), vec![a.id]);
    // Requests in both directions are gone, and so is c's follow.
    let r = call(&app, "GET", "/friends/request", None, Some(&a.token)).await;
    assert_eq!(r.body, json!([]));
    let r = call(&app, "GET", "/friends/request_sent", None, Some(&c.token)).await;
    assert_eq!(r.body, json!([]));
    let r = call(&app, "GET", "/friends/request_sent", None, Some(&a.token)).await;
    assert_eq!(r.body, json!([]));
    let r = call(&app, "GET", "/friends/request", None, Some(&d.token)).await;
    assert_eq!(r.body, json!([]));
    let r = call(
        &app,
        "GET",
        &format!("/follows/{}/follower", a.id),
        None,
        Some(&a.token),
    )
    .await;
    assert_eq!(r.body, json!([]));

    // The blocked user can neither ask nor follow; a resend is no way round it.
    let r = call(
        &app,
        "POST",
        "/friends/request",
        Some(json!({"requested_user_id": a.id})),
        Some(&c.token),
    )
    .await;
    assert_eq!(
        (r.status, &r.body["error"]["code"]),
        (403, &json!("forbidden"))
    );
    let r = call(
        &app,
        "POST",
        "/friends/request",
        Some(json!({"requested_user_id": a.id, "resend": true})),
        Some(&c.token),
    )
    .await;
    assert_eq!(r.status, 403);
    let r = call(
        &app,
        "POST",
        "/follows",
        Some(json!({"followee_id": a.id})),
        Some(&c.token),
    )
    .await;
    assert_eq!(r.status, 403);
    let r = call(&app, "GET", "/friends/request", None, Some(&a.token)).await;
    assert_eq!(r.body, json!([]));
    // Nor can they read the blocker's lists.
    let r = call(
        &app,
        "GET",
        &format!("/follows/{}/followee", a.id),
        None,
        Some(&c.token),
    )
    .await;
    assert_eq!(r.status, 404);
    // The blocker must lift the block before following.
    let r = call(
        &app,
        "POST",
        "/follows",
        Some(json!({"followee_id": c.id})),
        Some(&a.token),
    )
    .await;
    assert_eq!(r.status, 409);

    let r = call(
        &app,
        "DELETE",
        &format!("/blocks/{}", c.id),
        None,
        Some(&a.token),
    )
    .await;
    assert_eq!((r.status, r.body), (204, Value::Null));
    let r = call(
        &app,
        "POST",
        "/follows",
        Some(json!({"followee_id": a.id})),
        Some(&c.token),
    )
    .await;
    assert_eq!(r.status, 201);
    let r = call(
        &app,
        "GET",
        &format!("/follows/{}/follower", a.id),
        None,
        Some(&c.token),
    )
    .await;
    assert_eq!(ids(&r.body, "follower_id"), vec![c.id]);
    let r = call(
        &app,
        "DELETE",
        &format!("/follows/{}", a.id),
        None,
        Some(&c.token),
    )
    .await;
    assert_eq!(r.status, 204);
    let r = call(
        &app,
        "GET",
        &format!("/follows/{}/followee", c.id),
        None,
        Some(&c.token),
    )
    .await;
    assert_eq!(r.body, json!([]));
}

#[actix_web::test]
async fn privacy_settings_null_the_hidden_fields() {
    let (state, sms, _) = state();
    let u = users(&state, &sms, 2).await;
    let (a, b) = (&u[0], &u[1]);
    let b_id = UserId::new(b.id).unwrap();
    let store = state.accounts.ports().store.clone();
    store
        .update_profile(
            b_id,
            ProfileChange::Details {
                user_name: Some(Some("bob".into())),
                gender: Some(Some("male".into())),
                birth_date: Some(Some("2000-01-01".into())),
                email: Some(Some("bob@example.com".into())),
            },
            0,
        )
        .await
        .unwrap();
    let app = app!(state.clone());
    call(
        &app,
        "POST",
        "/follows",
        Some(json!({"followee_id": b.id})),
        Some(&a.token),
    )
    .await;

    // The defaults show the user name and gender and hide the age.
    let r = call(
        &app,
        "GET",
        &format!("/follows/{}/followee", a.id),
        None,
        Some(&a.token),
    )
    .await;
    assert_eq!(
        r.body,
        json!([{
            "followee_id": b.id,
            "followee_user_name": "bob",
            "followee_user_nick_name": "user2",
            "followee_user_age": null,
            "followee_user_gender": "male",
        }])
    );

    let caller = state.accounts.authenticate(&b.token).await.unwrap();
    let privacy = Privacy {
        show_user_name: false,
        show_age: true,
        show_gender: false,
        ..state.accounts.get_user(b_id).await.unwrap().privacy
    };
    state.accounts.set_privacy(&caller, privacy).await.unwrap();
    let r = call(
        &app,
        "GET",
        &format!("/follows/{}/followee", a.id),
        None,
        Some(&a.token),
    )
    .await;
    assert_eq!(r.body[0]["followee_user_name"], Value::Null);
    assert_eq!(r.body[0]["followee_user_age"], 23);
    assert_eq!(r.body[0]["followee_user_gender"], Value::Null);

    // The same rules hold in request rows, which also carry the email.
    call(
        &app,
        "POST",
        "/friends/request",
        Some(json!({"requested_user_id": a.id})),
        Some(&b.token),
    )
    .await;
    let r = call(&app, "GET", "/friends/request", None, Some(&a.token)).await;
    assert_eq!(r.body[0]["request_user_name"], Value::Null);
    assert_eq!(r.body[0]["request_user_age"], 23);
    assert_eq!(r.body[0]["request_email"], "bob@example.com");
}

#[actix_web::test]
async fn long_lists_are_paged_with_a_link_header() {
    let (state, sms, _) = state();
    let u = users(&state, &sms, 6).await;
    let me = &u[0];
    let app = app!(state);
    for other in &u[1..] {
        let r = call(
            &app,
            "POST",
            "/follows",
            Some(json!({"followee_id": other.id})),
            Some(&me.token),
        )
        .await;
        assert_eq!(r.status, 201);
    }
    let mut want: Vec<i64> = u[1..].iter().map(|x| x.id).collect();
    want.sort();

    let r = call(
        &app,
        "GET",
        &format!("/follows/{}/followee", me.id),
        None,
        Some(&me.token),
    )
    .await;
    assert_eq!((ids(&r.body, "followee_id"), r.link), (want.clone(), None));

    let mut path = format!("/follows/{}/followee?limit=2", me.id);
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let r = call(&app, "GET", &path, None, Some(&me.token)).await;
        assert_eq!(r.status, 200);
        seen.extend(ids(&r.body, "followee_id"));
        pages += 1;
        let Some(link) = r.link else { break };
        let last = *seen.last().unwrap();
        assert_eq!(
            link,
            format!(
                "</follows/{}/followee?limit=2&cursor={last}>; rel=\"next\"",
                me.id
            )
        );
        path = link
            .strip_prefix('<')
            .and_then(|l| l.split_once('>'))
            .unwrap()
            .0
            .to_owned();
    }
    assert_eq!((seen, pages), (want, 3));

    for bad in [
        "limit=0",
        "limit=-1",
        "limit=abc",
        "limit=1001",
        "cursor=abc",
        "cursor=0",
    ] {
        let r = call(
            &app,
            "GET",
            &format!("/friends?{bad}"),
            None,
            Some(&me.token),
        )
        .await;
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.body["error"]["code"], "invalid", "{bad}");
    }
    let r = call(&app, "GET", "/blocks?limit=1", None, Some(&me.token)).await;
    assert_eq!((r.status, r.body, r.link), (200, json!([]), None));
}

#[actix_web::test]
async fn bad_input_and_missing_sessions_answer_in_the_envelope() {
    let (state, sms, _) = state();
    let u = users(&state, &sms, 1).await;
    let me = &u[0];
    let app = app!(state);

    for (path, body) in [
        ("/friends/request", json!({})),
        ("/friends/request", json!({"requested_user_id": "12"})),
        ("/friends/request", json!({"requested_user_id": 1.5})),
        ("/friends/request", json!({"requested_user_id": 0})),
        ("/friends/request", json!({"requested_user_id": me.id})),
        (
            "/friends/request",
            json!({"requested_user_id": 5, "resend": "yes"}),
        ),
        ("/friends/accept", json!({"friend_request_id": -3})),
        ("/friends/ignore", json!([])),
        ("/follows", json!({"followee_id": null})),
        ("/blocks", json!({"user_id": 9007199254740992i64})),
    ] {
        let r = call(&app, "POST", path, Some(body.clone()), Some(&me.token)).await;
        assert_eq!(r.status, 400, "{path} {body}");
        assert_eq!(r.body["error"]["code"], "invalid", "{path} {body}");
        assert!(r.body["error"]["message"].is_string());
    }
    let r = call(
        &app,
        "POST",
        "/friends/request",
        Some(json!({"requested_user_id": 12345})),
        Some(&me.token),
    )
    .await;
    assert_eq!(r.status, 404);
    let r = call(
        &app,
        "POST",
        "/blocks",
        Some(json!({"user_id": me.id})),
        Some(&me.token),
    )
    .await;
    assert_eq!(r.body["error"]["field"], "user_id");
    for path in ["/friends/abc", "/follows/1e3", "/blocks/-1"] {
        let r = call(&app, "DELETE", path, None, Some(&me.token)).await;
        assert_eq!(
            (r.status, &r.body["error"]["code"]),
            (400, &json!("invalid")),
            "{path}"
        );
    }
    let r = call(&app, "GET", "/follows/abc/follower", None, Some(&me.token)).await;
    assert_eq!(r.status, 400);
    let r = call(
        &app,
        "GET",
        "/follows/12345/follower",
        None,
        Some(&me.token),
    )
    .await;
    assert_eq!(r.status, 404);

    let req = test::TestRequest::post()
        .uri("/follows")
        .insert_header(("content-type", "application/json"))
        .insert_header(("Authorization", format!("Bearer {}", me.token)))
        .set_payload("{not json")
        .to_request();
    let res: Value = test::call_and_read_body_json(&app, req).await;
    assert_eq!(res["error"]["code"], "invalid");
    let req = test::TestRequest::post()
        .uri("/blocks")
        .insert_header(("content-type", "application/json"))
        .insert_header(("Authorization", format!("Bearer {}", me.token)))
        .set_payload(format!("{{\"pad\": \"{}\"}}", "x".repeat(2 << 20)))
        .to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(res.status(), 413);

    for (method, path, body) in [
        ("GET", "/friends", None),
        ("GET", "/friends/request", None),
        ("GET", "/friends/request_sent", None),
        ("GET", "/friends/sync", None),
        (
            "POST",
            "/friends/request",
            Some(json!({"requested_user_id": 5})),
        ),
        (
            "POST",
            "/friends/accept",
            Some(json!({"friend_request_id": 5})),
        ),
        (
            "POST",
            "/friends/ignore",
            Some(json!({"friend_request_id": 5})),
        ),
        (
            "POST",
            "/friends/withdraw",
            Some(json!({"friend_request_id": 5})),
        ),
        ("DELETE", "/friends/5", None),
        ("POST", "/follows", Some(json!({"followee_id": 5}))),
        ("GET", "/follows/5/follower", None),
        ("GET", "/follows/5/followee", None),
        ("DELETE", "/follows/5", None),
        ("POST", "/blocks", Some(json!({"user_id": 5}))),
        ("GET", "/blocks", None),
        ("DELETE", "/blocks/5", None),
    ] {
        let r = call(&app, method, path, body.clone(), None).await;
        assert_eq!(r.status, 401, "{method} {path}");
        assert_eq!(
            r.body["error"]["code"], "unauthenticated",
            "{method} {path}"
        );
        let r = call(&app, method, path, body, Some("not-a-session")).await;
        assert_eq!(r.status, 401, "{method} {path}");
    }

    // The session cookie works as well as the Bearer header.
    let req = test::TestRequest::get()
        .uri("/friends/sync")
        .cookie(actix_web::cookie::Cookie::new(
            "kith_session",
            me.token.clone(),
        ))
        .to_request();
    let res: Value = test::call_and_read_body_json(&app, req).await;
    assert_eq!(res, json!({"friend_request": 0}));

    let r = call(&app, "GET", "/friends/a/b", None, Some(&me.token)).await;
    assert_eq!(
        (r.status, &r.body["error"]["code"]),
        (404, &json!("not_found"))
    );
}
