//! The SealTalk user API's HTTP mapping, over the in-memory ports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use actix_web::{test, App};
use kith_domain::phone::Phone;
use kith_http::configure;
use serde_json::{json, Value};
use support::state;

macro_rules! app {
    ($state:expr) => {
        test::init_service(App::new().configure(configure($state))).await
    };
}

async fn post(
    app: &impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
    >,
    path: &str,
    body: Value,
    bearer: Option<&str>,
) -> (u16, Value, Vec<String>) {
    let mut req = test::TestRequest::post().uri(path).set_json(body);
    if let Some(t) = bearer {
        req = req.insert_header(("Authorization", format!("Bearer {t}")));
    }
    let res = test::call_service(app, req.to_request()).await;
    let status = res.status().as_u16();
    let cookies = res
        .headers()
        .get_all("set-cookie")
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let body: Value = test::read_body_json(res).await;
    (status, body, cookies)
}

#[actix_web::test]
async fn sign_up_login_and_profile() {
    let (state, sms, _) = state();
    let app = app!(state);
    let phone = json!({"region": 86, "phone": 13912345678u64});
    let (s, b, _) = post(&app, "/user/send_code", phone.clone(), None).await;
    assert_eq!((s, b["code"].as_i64()), (200, Some(200)));
    // A throttled call answers HTTP 429 (with Retry-After) and keeps SealTalk's code 5000.
    let (s, b, _) = post(&app, "/user/send_code", phone.clone(), None).await;
    assert_eq!((s, b["code"].as_i64()), (429, Some(5000)));

    let p = Phone::parse("86", "13912345678").unwrap();
    let code = sms.last_code(&p).unwrap();
    let (_, b, _) = post(
        &app,
        "/user/verify_code",
        json!({"region": "86", "phone": "13912345678", "code": "000000x"}),
        None,
    )
    .await;
    assert_eq!(b["code"], 400);
    let (_, b, _) = post(
        &app,
        "/user/verify_code",
        json!({"region": "86", "phone": "13912345678", "code": code}),
        None,
    )
    .await;
    assert_eq!(b["code"], 200);
    let vt = b["result"]["verification_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let (s, b, cookies) = post(
        &app,
        "/user/register",
        json!({"nickname": "Tom", "password": "kith-Secret1", "verification_token": vt}),
        None,
    )
    .await;
    assert_eq!((s, b["code"].as_i64()), (200, Some(200)), "{b}");
    let id = b["result"]["id"].as_str().unwrap().to_owned();
    assert!(id.parse::<i64>().unwrap() > 0);
    assert!(cookies[0].contains("HttpOnly") && cookies[0].contains("SameSite=Lax"));

    let (_, b, _) = post(
        &app,
        "/user/login",
        json!({"region": 86, "phone": 13912345678u64, "password": "wrong-one"}),
        None,
    )
    .await;
    assert_eq!(b["code"], 1000);
    let (_, b, cookies) = post(
        &app,
        "/user/login",
        json!({"region": 86, "phone": 13912345678u64, "password": "kith-Secret1"}),
        None,
    )
    .await;
    assert_eq!(b["result"]["id"], id.as_str());
    let token = b["result"]["token"].as_str().unwrap().to_owned();
    assert!(cookies[0].starts_with(&format!("kith_session={token}")));

    let (s, b, _) = post(&app, &format!("/user/{id}"), json!({}), None).await;
    assert_eq!((s, b["code"].as_i64()), (401, Some(401)));
    let (s, b, _) = post(
        &app,
        "/user/set_nickname",
        json!({"nickname": "Jerry"}),
        Some(&token),
    )
    .await;
    assert_eq!((s, b["code"].as_i64()), (200, Some(200)));
    let req = test::TestRequest::get()
        .uri(&format!("/user/{id}"))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .to_request();
    let b: Value = test::call_and_read_body_json(&app, req).await;
    assert_eq!(
        b,
        json!({"code": 200, "result": {"id": id, "nickname": "Jerry", "portraitUri": ""}})
    );
    let (s, _, _) = post(&app, "/user/123", json!({}), Some(&token)).await;
    assert_eq!(s, 404);
    let (s, _, _) = post(&app, "/user/find/86/13912345679", json!({}), Some(&token)).await;
    assert_eq!(s, 404);
    let (s, b, _) = post(&app, "/user/find/86/13912345678", json!({}), Some(&token)).await;
    assert_eq!((s, b["result"]["id"].as_str()), (200, Some(id.as_str())));

    let (s, _, _) = post(&app, "/user/logout", json!({}), Some(&token)).await;
    assert_eq!(s, 200);
    let (s, _, _) = post(
        &app,
        "/user/set_nickname",
        json!({"nickname": "X"}),
        Some(&token),
    )
    .await;
    assert_eq!(s, 401);
}

#[actix_web::test]
async fn bad_bodies_answer_400_or_413_in_the_envelope() {
    let (state, _, _) = state();
    let app = app!(state);
    for body in [
        json!({}),
        json!({"region": 86}),
        json!({"region": 86, "phone": "1391234567a"}),
        json!({"region": 86, "phone": "1".repeat(40)}),
        json!({"region": [1], "phone": 13912345678u64}),
    ] {
        let (s, b, _) = post(&app, "/user/send_code", body.clone(), None).await;
        assert_eq!((s, b["code"].as_i64()), (400, Some(400)), "{body}");
        assert!(b["message"].is_string());
    }
    let req = test::TestRequest::post()
        .uri("/user/login")
        .insert_header(("content-type", "application/json"))
        .set_payload("{not json")
        .to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(res.status(), 400);
    let big = "x".repeat(2 << 20);
    let req = test::TestRequest::post()
        .uri("/user/login")
        .insert_header(("content-type", "application/json"))
        .set_payload(format!("{{\"password\": \"{big}\"}}"))
        .to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(res.status(), 413);
    let (s, b, _) = post(
        &app,
        "/user/register",
        json!({"nickname": "", "password": "kith-Secret1", "verification_token": "x"}),
        None,
    )
    .await;
    assert_eq!((s, b["code"].as_i64()), (400, Some(400)));
    let (s, _, _) = post(
        &app,
        "/user/register",
        json!({"nickname": "Tom", "password": "kith-Secret1", "verification_token": "x"}),
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (s, b, _) = post(
        &app,
        "/user/register",
        json!({"nickname": "Tom", "password": "password", "verification_token": "x"}),
        None,
    )
    .await;
    assert_eq!(s, 400, "common password: {b}");
}

#[actix_web::test]
async fn privacy_and_profile_details() {
    let (state, sms, _) = state();
    let (_, token) = support::sign_up(&state, &sms, 1, "Tom").await;
    let app = app!(state);
    let (s, b, _) = post(
        &app,
        "/user/set_privacy",
        json!({"show_age": true, "findable_by_phone": false}),
        Some(&token),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["result"]["show_age"], true);
    assert_eq!(b["result"]["findable_by_phone"], false);
    assert_eq!(b["result"]["friend_verification"], true, "untouched");
    let (s, _, _) = post(
        &app,
        "/user/set_privacy",
        json!({"show_age": "yes"}),
        Some(&token),
    )
    .await;
    assert_eq!(s, 400);
    let (s, _, _) = post(&app, "/user/find/86/13900000001", json!({}), Some(&token)).await;
    assert_eq!(s, 404, "no longer findable by phone");
    let (s, b, _) = post(
        &app,
        "/user/set_profile",
        json!({"birth_date": "1990-13-01"}),
        Some(&token),
    )
    .await;
    assert_eq!((s, b["code"].as_i64()), (400, Some(400)));
    let (s, _, _) = post(
        &app,
        "/user/set_profile",
        json!({"user_name": "tom", "email": "t@example.com", "gender": null}),
        Some(&token),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _, _) = post(&app, "/user/set_privacy", json!({}), None).await;
    assert_eq!(s, 401);
}
