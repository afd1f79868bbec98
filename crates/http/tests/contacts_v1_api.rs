//! The contacts v1 API (000)'s HTTP mapping, over the in-memory ports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use actix_web::{test, App};
use kith_http::{configure, AppState};
use serde_json::{json, Value};
use support::{call, sign_up, state};

macro_rules! app {
    ($state:expr) => {
        test::init_service(App::new().configure(configure($state))).await
    };
}

/// A signed-up user: decimal id and session token.
struct User {
    id: String,
    token: String,
}

async fn users(state: &AppState, sms: &kith_domain::memory::MemorySms, n: u32) -> Vec<User> {
    let mut out = Vec::new();
    for i in 1..=n {
        let (id, token) = sign_up(state, sms, i, &format!("user{i}")).await;
        out.push(User { id, token });
    }
    out
}

fn user_ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| c["user_id"].as_str().unwrap().to_owned())
        .collect()
}

const T0: i64 = 1_700_000_000_000;

#[actix_web::test]
async fn contact_actions_answer_the_contact() {
    let (state, sms, clock) = state();
    let u = users(&state, &sms, 2).await;
    let (a, b) = (&u[0], &u[1]);
    let app = app!(state);
    let base = format!("/api/v1/contact/{}", b.id);

    clock.advance(1000);
    let r = call(
        &app,
        "POST",
        &format!("{base}/follow"),
        None,
        Some(&a.token),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({
            "user_id": b.id,
            "nickname": "user2",
            "portrait_uri": "",
            "display_name": null,
            "phone": null,
            "is_friend": false,
            "is_following": true,
            "is_followed_by": false,
            "is_starred": false,
            "is_blocked": false,
            "conv_type": "normal",
            "updated_at": T0 + 1000,
        })
    );
    let r = call(
        &app,
        "GET",
        &format!("/api/v1/contact/{}", a.id),
        None,
        Some(&b.token),
    )
    .await;
    assert_eq!((r.status, &r.body["is_followed_by"]), (200, &json!(true)));
    assert_eq!(r.body["is_following"], false);

    for (action, key, value) in [
        ("star", "is_starred", true),
        ("unstar", "is_starred", false),
        ("unfollow", "is_following", false),
        ("follow", "is_following", true),
        ("block", "is_blocked", true),
        ("unblock", "is_blocked", false),
    ] {
        let r = call(
            &app,
            "POST",
            &format!("{base}/{action}"),
            None,
            Some(&a.token),
        )
        .await;
        assert_eq!((r.status, &r.body[key]), (200, &json!(value)), "{action}");
    }
    // The block dropped the follow.
    let r = call(&app, "GET", &base, None, Some(&a.token)).await;
    assert_eq!((r.status, &r.body["is_following"]), (200, &json!(false)));

    let r = call(
        &app,
        "POST",
        &base,
        Some(json!({"display_name": "Bobby"})),
        Some(&a.token),
    )
    .await;
    assert_eq!((r.status, &r.body["display_name"]), (200, &json!("Bobby")));
    let r = call(&app, "GET", &base, None, Some(&a.token)).await;
    assert_eq!(r.body["display_name"], "Bobby");
    let r = call(
        &app,
        "POST",
        &base,
        Some(json!({"display_name": ""})),
        Some(&a.token),
    )
    .await;
    assert_eq!(r.body["display_name"], Value::Null);
    for body in [
        json!({}),
        json!({"display_name": null}),
        json!({"display_name": 5}),
    ] {
        let r = call(&app, "POST", &base, Some(body.clone()), Some(&a.token)).await;
        assert_eq!(
            (r.status, &r.body["error"]["code"]),
            (400, &json!("invalid")),
            "{body}"
        );
    }
    let r = call(
        &app,
        "POST",
        &base,
        Some(json!({"display_name": "x".repeat(33)})),
        Some(&a.token),
    )
    .await;
    assert_eq!(
        (r.status, &r.body["error"]["field"]),
        (400, &json!("display_name"))
    );

    let r = call(&app, "GET", "/api/v1/contact/12345", None, Some(&a.token)).await;
    assert_eq!(
        (r.status, &r.body["error"]["code"]),
        (404, &json!("not_found"))
    );
    let r = call(
        &app,
        "POST",
        "/api/v1/contact/12345/star",
        None,
        Some(&a.token),
    )
    .await;
    assert_eq!(r.status, 404);
    let r = call(
        &app,
        "POST",
        "/api/v1/contact/abc/star",
        None,
        Some(&a.token),
    )
    .await;
    assert_eq!(
        (r.status, &r.body["error"]["field"]),
        (400, &json!("user_id"))
    );
    let r = call(
        &app,
        "POST",
        &format!("/api/v1/contact/{}/follow", a.id),
        None,
        Some(&a.token),
    )
    .await;
    assert_eq!(
        (r.status, &r.body["error"]["field"]),
        (400, &json!("user_id"))
    );
}

#[actix_web::test]
async fn blocked_users_cannot_follow_and_blockers_vanish() {
    let (state, sms, _) = state();
    let u = users(&state, &sms, 2).await;
    let (a, b) = (&u[0], &u[1]);
    let app = app!(state);
    call(
        &app,
        "POST",
        &format!("/api/v1/contact/{}/block", b.id),
        None,
        Some(&a.token),
    )
    .await;
    let r = call(
        &app,
        "POST",
        &format!("/api/v1/contact/{}/follow", a.id),
        None,
        Some(&b.token),
    )
    .await;
    assert_eq!(
        (r.status, &r.body["error"]["code"]),
        (403, &json!("forbidden"))
    );
    let r = call(
        &app,
        "GET",
        &format!("/api/v1/contact/{}", a.id),
        None,
        Some(&b.token),
    )
    .await;
    assert_eq!(r.status, 404);
    let r = call(
        &app,
        "POST",
        &format!("/api/v1/contact/{}/follow", b.id),
        None,
        Some(&a.token),
    )
    .await;
    assert_eq!(
        (r.status, &r.body["error"]["code"]),
        (409, &json!("conflict"))
    );
}

#[actix_web::test]
async fn the_contact_list_is_everyone_with_a_relationship_paged() {
    let (state, sms, _) = state();
    let u = users(&state, &sms, 5).await;
    let me = &u[0];
    let app = app!(state);
    let r = call(&app, "GET", "/api/v1/contact", None, Some(&me.token)).await;
    assert_eq!((r.status, r.body, r.link), (200, json!([]), None));

    // A follow, a star, a remark, and someone who follows me.
    call(
        &app,
        "POST",
        &format!("/api/v1/contact/{}/follow", u[1].id),
        None,
        Some(&me.token),
    )
    .await;
    call(
        &app,
        "POST",
        &format!("/api/v1/contact/{}/star", u[2].id),
        None,
        Some(&me.token),
    )
    .await;
    call(
        &app,
        "POST",
        &format!("/api/v1/contact/{}", u[3].id),
        Some(json!({"display_name": "D"})),
        Some(&me.token),
    )
    .await;
    call(
        &app,
        "POST",
        &format!("/api/v1/contact/{}/follow", me.id),
        None,
        Some(&u[4].token),
    )
    .await;

    let mut want: Vec<String> = u[1..4].iter().map(|x| x.id.clone()).collect();
    want.sort_by_key(|id| id.parse::<i64>().unwrap());
    let r = call(&app, "GET", "/api/v1/contact", None, Some(&me.token)).await;
    assert_eq!(user_ids(&r.body), want);
    assert_eq!(r.body[0].as_object().unwrap().len(), 12);

    let r = call(
        &app,
        "GET",
        "/api/v1/contact?limit=2",
        None,
        Some(&me.token),
    )
    .await;
    assert_eq!(user_ids(&r.body), want[..2]);
    assert_eq!(
        r.link.as_deref(),
        Some(format!("</api/v1/contact?limit=2&cursor={}>; rel=\"next\"", want[1]).as_str())
    );
    let r = call(
        &app,
        "GET",
        &format!("/api/v1/contact?limit=2&cursor={}", want[1]),
        None,
        Some(&me.token),
    )
    .await;
    assert_eq!((user_ids(&r.body), r.link), (want[2..].to_vec(), None));
    let r = call(
        &app,
        "GET",
        "/api/v1/contact?cursor=x",
        None,
        Some(&me.token),
    )
    .await;
    assert_eq!(
        (r.status, &r.body["error"]["field"]),
        (400, &json!("cursor"))
    );
    let r = call(
        &app,
        "GET",
        "/api/v1/contact?limit=0",
        None,
        Some(&me.token),
    )
    .await;
    assert_eq!(
        (r.status, &r.body["error"]["field"]),
        (400, &json!("limit"))
    );
}

#[actix_web::test]
async fn conversations_are_grouped_by_type() {
    let (state, sms, _) = state();
    let u = users(&state, &sms, 4).await;
    let me = &u[0];
    let app = app!(state);
    for (other, kind) in [(&u[1], "sticky"), (&u[2], "archive"), (&u[3], "normal")] {
        let path = format!("/api/v1/contact/{}/conversation/{kind}", other.id);
        let r = call(&app, "POST", &path, None, Some(&me.token)).await;
        assert_eq!(
            (r.status, &r.body["conv_type"]),
            (200, &json!(kind)),
            "{}",
            r.body
        );
    }
    // u[3] was already normal: give them a row by following.
    call(
        &app,
        "POST",
        &format!("/api/v1/contact/{}/follow", u[3].id),
        None,
        Some(&me.token),
    )
    .await;

    let r = call(
        &app,
        "GET",
        "/api/v1/contact/conversation",
        None,
        Some(&me.token),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.as_object().unwrap().len(), 3);
    assert_eq!(user_ids(&r.body["sticky"]), vec![u[1].id.clone()]);
    assert_eq!(user_ids(&r.body["archive"]), vec![u[2].id.clone()]);
    assert_eq!(user_ids(&r.body["normal"]), vec![u[3].id.clone()]);
    assert_eq!(r.body["sticky"][0]["conv_type"], "sticky");

    for bad in ["pinned", "Normal", ""] {
        let path = format!("/api/v1/contact/{}/conversation/{bad}", u[1].id);
        let r = call(&app, "POST", &path, None, Some(&me.token)).await;
        assert!(matches!(r.status, 400 | 404), "{bad}: {}", r.status);
        if !bad.is_empty() {
            assert_eq!(
                (r.status, &r.body["error"]["field"]),
                (400, &json!("conv_type"))
            );
        }
    }
    let r = call(
        &app,
        "GET",
        "/api/v1/contact/conversation?limit=1",
        None,
        Some(&me.token),
    )
    .await;
    let total: usize = ["normal", "sticky", "archive"]
        .iter()
        .map(|k| r.body[k].as_array().unwrap().len())
        .sum();
    assert_eq!(total, 1);
    assert!(r
        .link
        .unwrap()
        .starts_with("</api/v1/contact/conversation?limit=1&cursor="));
}

#[actix_web::test]
async fn batch_upload_reports_bad_entries_in_place() {
    let (state, sms, _) = state();
    let u = users(&state, &sms, 2).await;
    let (me, b) = (&u[0], &u[1]);
    let app = app!(state);
    let body = json!([
        {"tel": "18012345678", "display_name": "edwin wang"},
        {"tel": "not a phone"},
        {"display_name": "no number"},
        {"tel": "13900000002"},
        {"tel": 18012345670u64, "display_name": 7},
        {"tel": "+44 7911 123456"},
    ]);
    let r = call(
        &app,
        "POST",
        "/api/v1/contact/batch_upload",
        Some(body),
        Some(&me.token),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let rows = r.body.as_array().unwrap();
    assert_eq!(rows.len(), 6);
    assert_eq!(rows[0]["tel"], "18012345678");
    assert_eq!(rows[0]["phone"], "+8618012345678");
    let placeholder = rows[0]["user_id"].as_str().unwrap().to_owned();
    assert_eq!(rows[1]["error"]["code"], "invalid");
    assert_eq!(rows[1]["error"]["field"], "tel");
    assert_eq!(rows[2]["error"]["field"], "tel");
    assert_eq!(rows[3]["user_id"], b.id.as_str());
    assert_eq!(rows[4]["error"]["field"], "display_name");
    assert_eq!(rows[5]["phone"], "+447911123456", "{}", rows[5]);

    // Uploaded numbers are followed contacts with my name for them and their phone visible.
    let r = call(&app, "GET", "/api/v1/contact", None, Some(&me.token)).await;
    let list = r.body.as_array().unwrap();
    assert_eq!(list.len(), 3);
    let edwin = list
        .iter()
        .find(|c| c["user_id"] == placeholder.as_str())
        .unwrap();
    assert_eq!(edwin["display_name"], "edwin wang");
    assert_eq!(edwin["phone"], "+8618012345678");
    assert_eq!(edwin["is_following"], true);
    let r = call(
        &app,
        "GET",
        &format!("/api/v1/contact/{}", b.id),
        None,
        Some(&me.token),
    )
    .await;
    assert_eq!(r.body["phone"], "+8613900000002");
    assert_eq!(r.body["is_following"], true);
    // The phone stays hidden the other way round.
    let r = call(
        &app,
        "GET",
        &format!("/api/v1/contact/{}", me.id),
        None,
        Some(&b.token),
    )
    .await;
    assert_eq!(
        (r.body["phone"].clone(), r.body["is_followed_by"].clone()),
        (Value::Null, json!(true))
    );

    let too_many: Vec<Value> = (0..1001)
        .map(|i| json!({"tel": format!("1801234{i:04}")}))
        .collect();
    let r = call(
        &app,
        "POST",
        "/api/v1/contact/batch_upload",
        Some(json!(too_many)),
        Some(&me.token),
    )
    .await;
    assert_eq!(
        (r.status, &r.body["error"]["code"]),
        (400, &json!("invalid"))
    );
    for bad in [json!({"tel": "1"}), json!("x"), json!(null)] {
        let r = call(
            &app,
            "POST",
            "/api/v1/contact/batch_upload",
            Some(bad.clone()),
            Some(&me.token),
        )
        .await;
        assert_eq!(r.status, 400, "{bad}");
    }
    let r = call(
        &app,
        "POST",
        "/api/v1/contact/batch_upload",
        Some(json!([])),
        Some(&me.token),
    )
    .await;
    assert_eq!((r.status, r.body), (200, json!([])));
}

#[actix_web::test]
async fn the_faces_share_one_relationship_core() {
    let (state, sms, _) = state();
    let u = users(&state, &sms, 2).await;
    let (a, b) = (&u[0], &u[1]);
    let app = app!(state);
    let a_num: i64 = a.id.parse().unwrap();
    let b_num: i64 = b.id.parse().unwrap();

    let r = call(
        &app,
        "POST",
        "/friends/request",
        Some(json!({"requested_user_id": b_num})),
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
    let r = call(
        &app,
        "POST",
        "/blocks",
        Some(json!({"user_id": b_num})),
        Some(&a.token),
    )
    .await;
    assert_eq!(r.status, 201);

    let r = call(
        &app,
        "GET",
        &format!("/api/v1/contact/{}", b.id),
        None,
        Some(&a.token),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        (&r.body["is_blocked"], &r.body["is_friend"]),
        (&json!(true), &json!(true))
    );

    // And back: an unblock through v1 empties 001's block list.
    call(
        &app,
        "POST",
        &format!("/api/v1/contact/{}/unblock", b.id),
        None,
        Some(&a.token),
    )
    .await;
    let r = call(&app, "GET", "/blocks", None, Some(&a.token)).await;
    assert_eq!(r.body, json!([]));
    let r = call(
        &app,
        "POST",
        &format!("/api/v1/contact/{}/follow", a.id),
        None,
        Some(&b.token),
    )
    .await;
    assert_eq!(r.status, 200);
    let r = call(
        &app,
        "GET",
        &format!("/follows/{a_num}/follower"),
        None,
        Some(&a.token),
    )
    .await;
    assert_eq!(r.body[0]["follower_id"], b_num);
}

#[actix_web::test]
async fn bad_input_and_missing_sessions_answer_in_the_envelope() {
    let (state, sms, _) = state();
    let u = users(&state, &sms, 2).await;
    let (me, b) = (&u[0], &u[1]);
    let app = app!(state);

    let req = test::TestRequest::post()
        .uri(&format!("/api/v1/contact/{}", b.id))
        .insert_header(("content-type", "application/json"))
        .insert_header(("Authorization", format!("Bearer {}", me.token)))
        .set_payload("{\"display_name\": ")
        .to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(res.status(), 400);
    let body: Value = test::read_body_json(res).await;
    assert_eq!(body["error"]["code"], "invalid");

    let req = test::TestRequest::post()
        .uri("/api/v1/contact/batch_upload")
        .insert_header(("content-type", "application/json"))
        .insert_header(("Authorization", format!("Bearer {}", me.token)))
        .set_payload(format!("[{{\"tel\": \"{}\"}}]", "1".repeat(2 << 20)))
        .to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(res.status(), 413);

    let id = &b.id;
    for (path, body) in [
        ("/api/v1/contact".to_owned(), None),
        ("/api/v1/contact/conversation".to_owned(), None),
        (format!("/api/v1/contact/{id}"), None),
    ] {
        let r = call(&app, "GET", &path, body, None).await;
        assert_eq!(
            (r.status, &r.body["error"]["code"]),
            (401, &json!("unauthenticated")),
            "{path}"
        );
    }
    for (path, body) in [
        ("/api/v1/contact/batch_upload".to_owned(), Some(json!([]))),
        (
            format!("/api/v1/contact/{id}"),
            Some(json!({"display_name": "x"})),
        ),
        (format!("/api/v1/contact/{id}/follow"), None),
        (format!("/api/v1/contact/{id}/unfollow"), None),
        (format!("/api/v1/contact/{id}/star"), None),
        (format!("/api/v1/contact/{id}/unstar"), None),
        (format!("/api/v1/contact/{id}/block"), None),
        (format!("/api/v1/contact/{id}/unblock"), None),
        (format!("/api/v1/contact/{id}/conversation/sticky"), None),
    ] {
        let r = call(&app, "POST", &path, body, Some("expired")).await;
        assert_eq!(
            (r.status, &r.body["error"]["code"]),
            (401, &json!("unauthenticated")),
            "{path}"
        );
    }
    let r = call(&app, "GET", "/api/v1/contact/1/2/3", None, Some(&me.token)).await;
    assert_eq!(
        (r.status, &r.body["error"]["code"]),
        (404, &json!("not_found"))
    );
}
