//! The SealTalk token and captcha calls' HTTP mapping, over the in-memory ports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use actix_web::{test, App};
use kith_domain::account::{AccountPolicy, AccountService};
use kith_domain::captcha::{CaptchaPolicy, CaptchaPorts, CaptchaService};
use kith_domain::memory::{
    ManualClock, MemoryCaptchaRenderer, MemoryCaptchaStore, MemoryImTokens, MemorySms,
    MemoryUploadTokens, SeqRandom,
};
use kith_domain::ports::UploadTokenIssuer;
use kith_domain::secret::ServerKey;
use kith_domain::tokens::{TokenPorts, TokenService};
use kith_http::{configure, AppState};
use serde_json::{json, Value};
use support::{call, sign_up};

struct Fixture {
    state: AppState,
    sms: Arc<MemorySms>,
    clock: Arc<ManualClock>,
    renderer: Arc<MemoryCaptchaRenderer>,
    im: Arc<MemoryImTokens>,
}

/// The shared test state with a captcha (free `send_code` calls per IP: `required_after`) and
/// token issuers (an upload issuer only when `upload`).
fn fixture(required_after: Option<u32>, upload: bool) -> Fixture {
    let (mut state, sms, clock) = support::state();
    let ports = state.accounts.ports().clone();
    let renderer = Arc::new(MemoryCaptchaRenderer::default());
    let captcha = CaptchaService::new(
        CaptchaPorts {
            store: Arc::new(MemoryCaptchaStore::default()),
            renderer: renderer.clone(),
            clock: clock.clone(),
            random: Arc::new(SeqRandom::new(21)),
        },
        ServerKey::new(vec![5; 32]).unwrap(),
        CaptchaPolicy {
            required_after,
            ..CaptchaPolicy::default()
        },
    );
    let im = Arc::new(MemoryImTokens::default());
    let upload: Option<Arc<dyn UploadTokenIssuer>> = if upload {
        Some(Arc::new(MemoryUploadTokens))
    } else {
        None
    };
    state.tokens = Arc::new(TokenService::new(TokenPorts {
        accounts: ports.store.clone(),
        im: im.clone(),
        upload,
        clock: clock.clone(),
    }));
    state.accounts = Arc::new(
        AccountService::new(
            ports,
            ServerKey::new(vec![3; 32]).unwrap(),
            AccountPolicy::default(),
        )
        .with_captcha(Arc::new(captcha)),
    );
    Fixture {
        state,
        sms,
        clock,
        renderer,
        im,
    }
}

macro_rules! app {
    ($state:expr) => {
        test::init_service(App::new().configure(configure($state))).await
    };
}

fn phone(n: u32) -> Value {
    json!({"region": 86, "phone": format!("1391234{n:04}")})
}

fn with(mut body: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

#[actix_web::test]
async fn get_token_answers_the_im_token_of_the_caller() {
    let f = fixture(None, false);
    let (id, token) = sign_up(&f.state, &f.sms, 1, "Ann").await;
    let app = app!(f.state.clone());
    let a = call(&app, "POST", "/user/get_token", None, None).await;
    assert_eq!((a.status, a.body["code"].as_i64()), (401, Some(401)));
    let a = call(&app, "POST", "/user/get_token", None, Some(&token)).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.body,
        json!({"code": 200, "result": {"userId": id, "token": format!("im-token-{id}-1")}})
    );
    assert_eq!(f.im.requests()[0].name, "Ann");

    // A failing provider is a clear 503 in the envelope, never a 500 or its cause.
    f.im.set_failing(true);
    let a = call(&app, "POST", "/user/get_token", None, Some(&token)).await;
    assert_eq!((a.status, a.body["code"].as_i64()), (503, Some(503)));
    assert!(
        !a.body.to_string().contains("im provider down"),
        "{}",
        a.body
    );
}

#[actix_web::test]
async fn get_image_token_says_when_storage_is_not_configured() {
    let f = fixture(None, false);
    let (_, token) = sign_up(&f.state, &f.sms, 1, "Ann").await;
    let app = app!(f.state.clone());
    let a = call(&app, "POST", "/user/get_image_token", None, Some(&token)).await;
    assert_eq!((a.status, a.body["code"].as_i64()), (503, Some(503)));
    assert!(
        a.body["message"]
            .as_str()
            .unwrap()
            .contains("not configured"),
        "{}",
        a.body
    );

    let f = fixture(None, true);
    let (_, token) = sign_up(&f.state, &f.sms, 1, "Ann").await;
    let app = app!(f.state.clone());
    let a = call(&app, "POST", "/user/get_image_token", None, None).await;
    assert_eq!(a.status, 401);
    let a = call(&app, "POST", "/user/get_image_token", None, Some(&token)).await;
    assert_eq!(
        a.body,
        json!({"code": 200, "result": {"target": "memory", "domain": "files.example",
            "token": "upload-1700000000000"}})
    );
}

#[actix_web::test]
async fn a_captcha_is_issued_served_and_expires() {
    let f = fixture(Some(0), false);
    let app = app!(f.state.clone());
    let a = call(&app, "POST", "/user/get_sms_img_code", None, None).await;
    assert_eq!(a.body["code"], 200, "{}", a.body);
    let verify_id = a.body["result"]["verifyId"].as_str().unwrap().to_owned();
    assert_eq!(verify_id.len(), 32);
    let url = a.body["result"]["url"].as_str().unwrap();
    // Test requests carry Host localhost:8080.
    assert_eq!(
        url,
        format!("http://localhost:8080/user/sms_img_code/{verify_id}.png")
    );

    let path = format!("/user/sms_img_code/{verify_id}.png");
    let res = test::call_service(&app, test::TestRequest::get().uri(&path).to_request()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers().get("content-type").unwrap(), "image/png");
    assert_eq!(res.headers().get("cache-control").unwrap(), "no-store");
    let body = test::read_body(res).await;
    assert!(body.starts_with(b"\x89PNG\r\n\x1a\n"));

    let a = call(
        &app,
        "GET",
        &format!("/user/sms_img_code/{}.png", "0".repeat(32)),
        None,
        None,
    )
    .await;
    assert_eq!((a.status, a.body["code"].as_i64()), (404, Some(404)));
    let a = call(&app, "GET", "/user/sms_img_code/nope.png", None, None).await;
    assert_eq!((a.status, a.body["code"].as_i64()), (400, Some(400)));

    f.clock.advance(5 * 60_000);
    let a = call(&app, "GET", &path, None, None).await;
    assert_eq!(a.status, 404, "expired after five minutes");
}

#[actix_web::test]
async fn the_captcha_url_uses_the_public_url_when_configured() {
    let mut f = fixture(Some(0), false);
    f.state.public_url = Some("https://kith.example".into());
    let app = app!(f.state.clone());
    let a = call(&app, "POST", "/user/get_sms_img_code", None, None).await;
    let id = a.body["result"]["verifyId"].as_str().unwrap();
    assert_eq!(
        a.body["result"]["url"],
        format!("https://kith.example/user/sms_img_code/{id}.png")
    );
}

#[actix_web::test]
async fn send_code_needs_a_solved_captcha_after_the_free_calls() {
    let f = fixture(Some(1), false);
    let app = app!(f.state.clone());
    let a = call(&app, "POST", "/user/send_code", Some(phone(1)), None).await;
    assert_eq!(a.body["code"], 200, "{}", a.body);
    let a = call(&app, "POST", "/user/send_code", Some(phone(2)), None).await;
    assert_eq!((a.status, a.body["code"].as_i64()), (200, Some(6000)));
    assert_eq!(f.sms.sent().len(), 1);

    let issue = || async {
        let a = call(&app, "POST", "/user/get_sms_img_code", None, None).await;
        (
            a.body["result"]["verifyId"].as_str().unwrap().to_owned(),
            f.renderer.last_answer().unwrap(),
        )
    };
    let (id, answer) = issue().await;
    let wrong = if answer == "AAAAA" { "BBBBB" } else { "AAAAA" };
    let a = call(
        &app,
        "POST",
        "/user/send_code",
        Some(with(phone(2), json!({"verifyId": id, "verifyCode": wrong}))),
        None,
    )
    .await;
    assert_eq!((a.status, a.body["code"].as_i64()), (200, Some(6001)));
    // The wrong answer burned it.
    let a = call(
        &app,
        "POST",
        "/user/send_code",
        Some(with(
            phone(2),
            json!({"verifyId": id, "verifyCode": answer}),
        )),
        None,
    )
    .await;
    assert_eq!(a.body["code"], 6001);

    let (id, answer) = issue().await;
    let solved = with(
        phone(2),
        json!({"verifyId": id, "verifyCode": answer.to_lowercase()}),
    );
    let a = call(&app, "POST", "/user/send_code", Some(solved.clone()), None).await;
    assert_eq!(a.body["code"], 200, "{}", a.body);
    assert_eq!(f.sms.sent().len(), 2);
    let reused = with(phone(3), json!({"verifyId": id, "verifyCode": answer}));
    let a = call(&app, "POST", "/user/send_code", Some(reused), None).await;
    assert_eq!(a.body["code"], 6001, "single use");

    // Half a solution, or a malformed one, is a 400.
    for extra in [
        json!({"verifyId": id}),
        json!({"verifyCode": "ABCDE"}),
        json!({"verifyId": "xyz", "verifyCode": "ABCDE"}),
        json!({"verifyId": id, "verifyCode": "AB CD"}),
    ] {
        let a = call(
            &app,
            "POST",
            "/user/send_code",
            Some(with(phone(3), extra.clone())),
            None,
        )
        .await;
        assert_eq!(
            (a.status, a.body["code"].as_i64()),
            (400, Some(400)),
            "{extra}"
        );
    }
    // Blank captcha fields count as none.
    let a = call(
        &app,
        "POST",
        "/user/send_code",
        Some(with(phone(3), json!({"verifyId": "", "verifyCode": ""}))),
        None,
    )
    .await;
    assert_eq!(a.body["code"], 6000);
}

#[actix_web::test]
async fn the_token_routes_are_not_taken_for_user_ids() {
    let f = fixture(None, false);
    let (_, token) = sign_up(&f.state, &f.sms, 1, "Ann").await;
    let app = app!(f.state.clone());
    // Registered after `/{id}`, these would answer 400 "invalid user id" instead.
    let a = call(&app, "POST", "/user/get_sms_img_code", None, Some(&token)).await;
    assert_eq!(a.body["code"], 200);
    let a = call(&app, "POST", "/user/get_token", None, Some(&token)).await;
    assert_eq!(a.body["code"], 200);
}
