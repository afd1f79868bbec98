//! End to end: the SealTalk account API through the real binary, on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Barrier};

use kith_e2e::{both_backends, Kith, TestDb};
use serde_json::json;

const PW: &str = "kith-Secret1";

both_backends!(sign_up_login_profile_and_sessions, |db: TestDb| {
    let kith = Kith::start(&db, &[]);
    let a = kith.post(
        "/user/check_phone_available",
        json!({"region": "86", "phone": "13900000001"}),
        None,
    );
    assert_eq!(a.body, json!({"code": 200, "result": true}));

    let vt = kith.verification_token("13900000001");
    let a = kith.post(
        "/user/register",
        json!({"nickname": "Tom", "password": PW, "verification_token": vt}),
        None,
    );
    assert_eq!(a.code(), 200, "{}", a.text);
    let id = a.body["result"]["id"].as_str().unwrap().to_owned();
    let n: i64 = id.parse().unwrap();
    assert!(n > 0 && n < 1 << 53);
    let cookie = a
        .cookies
        .iter()
        .find(|c| c.starts_with("kith_session="))
        .unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let registered_session = cookie["kith_session=".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_owned();

    // The token is single use.
    let a = kith.post(
        "/user/register",
        json!({"nickname": "Tom", "password": PW, "verification_token": vt}),
        None,
    );
    assert_eq!((a.status, a.code()), (404, 404));
    let a = kith.post(
        "/user/check_phone_available",
        json!({"region": 86, "phone": 13900000001u64}),
        None,
    );
    assert_eq!(a.body["result"], false);

    // Login: wrong password and unknown phone answer the same.
    let wrong = kith.post(
        "/user/login",
        json!({"region": 86, "phone": "13900000001", "password": "nope-nope"}),
        None,
    );
    let unknown = kith.post(
        "/user/login",
        json!({"region": 86, "phone": "13900000009", "password": "nope-nope"}),
        None,
    );
    assert_eq!(wrong.code(), 1000);
    assert_eq!(wrong.text, unknown.text);
    let a = kith.post(
        "/user/login",
        json!({"region": 86, "phone": "13900000001", "password": PW}),
        None,
    );
    assert_eq!(a.body["result"]["id"], id.as_str());
    let token = a.body["result"]["token"].as_str().unwrap().to_owned();

    // Profile through the Bearer token and through the cookie. Read first, so that the
    // answers below show the changes through the profile cache, not around it.
    let before = kith.get(&format!("/user/{id}"), Some(&token));
    assert_eq!(before.status, 200);
    assert_ne!(before.body["result"]["nickname"], "Jerry 🐭");
    let a = kith.post(
        "/user/set_nickname",
        json!({"nickname": "Jerry 🐭"}),
        Some(&token),
    );
    assert_eq!(a.code(), 200);
    let a = kith.post(
        "/user/set_portrait_uri",
        json!({"portraitUri": "ftp://x/y.png"}),
        Some(&token),
    );
    assert_eq!((a.status, a.code()), (400, 400));
    let a = kith.post(
        "/user/set_portrait_uri",
        json!({"portraitUri": "https://img.example/a.png"}),
        Some(&token),
    );
    assert_eq!(a.code(), 200);
    let expected = json!({"code": 200, "result": {"id": id, "nickname": "Jerry 🐭", "portraitUri": "https://img.example/a.png"}});
    assert_eq!(
        kith.get(&format!("/user/{id}"), Some(&token)).body,
        expected
    );
    let a = kith.raw(
        "POST",
        &format!("/user/{id}"),
        &[("Cookie", &format!("kith_session={registered_session}"))],
        String::new(),
    );
    assert_eq!(a.body, expected, "the register cookie is a session too");
    assert_eq!(
        kith.get("/user/find/86/13900000001", Some(&token)).body,
        expected
    );
    assert_eq!(
        kith.get("/user/find/86/13900000002", Some(&token)).status,
        404
    );
    assert_eq!(kith.get("/user/4242", Some(&token)).status, 404);
    assert_eq!(kith.get("/user/abc", Some(&token)).status, 400);
    let a = kith.get(&format!("/user/{id}"), None);
    assert_eq!((a.status, a.code()), (401, 401));

    // change_password keeps this session and revokes the others.
    let a = kith.post(
        "/user/change_password",
        json!({"oldPassword": "wrong-old", "newPassword": "kith-Secret2"}),
        Some(&token),
    );
    assert_eq!(a.code(), 1000);
    let a = kith.post(
        "/user/change_password",
        json!({"oldPassword": PW, "newPassword": "kith-Secret2"}),
        Some(&token),
    );
    assert_eq!(a.code(), 200, "{}", a.text);
    assert_eq!(kith.get(&format!("/user/{id}"), Some(&token)).status, 200);
    assert_eq!(
        kith.get(&format!("/user/{id}"), Some(&registered_session))
            .status,
        401
    );

    // reset_password revokes all.
    std::thread::sleep(std::time::Duration::from_millis(10));
    let outbox_before = kith.last_code("+8613900000001");
    let a = kith.post(
        "/user/send_code",
        json!({"region": 86, "phone": "13900000001"}),
        None,
    );
    assert_eq!(a.code(), 5000, "a second code within the minute is refused");
    assert_eq!(
        kith.last_code("+8613900000001"),
        outbox_before,
        "and nothing is sent"
    );

    // logout
    let a = kith.post("/user/logout", json!({}), Some(&token));
    assert_eq!(a.code(), 200);
    assert_eq!(kith.get(&format!("/user/{id}"), Some(&token)).status, 401);
});

both_backends!(reset_password_revokes_every_session, |db: TestDb| {
    let kith = Kith::start(&db, &[]);
    let (id, token) = kith.sign_up("13900000011", "Ann", PW);
    // The sign-up code was sent moments ago: a new code needs a minute, so reuse the flow on a
    // second phone to prove the token is bound to its phone, then wait out the throttle.
    let (_, other) = kith.sign_up("13900000012", "Bob", PW);
    assert_eq!(kith.get(&format!("/user/{id}"), Some(&other)).status, 200);
    let a = kith.post(
        "/user/reset_password",
        json!({"password": "kith-Secret3", "verification_token": "0".repeat(64)}),
        None,
    );
    assert_eq!((a.status, a.code()), (404, 404));
    let a = kith.post(
        "/user/reset_password",
        json!({"password": "kith-Secret3", "verification_token": "bad"}),
        None,
    );
    assert_eq!(a.status, 404);
    assert_eq!(kith.get(&format!("/user/{id}"), Some(&token)).status, 200);
});

both_backends!(concurrent_correct_codes_verify_once, |db: TestDb| {
    let kith = Arc::new(Kith::start(&db, &[]));
    let a = kith.post(
        "/user/send_code",
        json!({"region": 86, "phone": "13900000021"}),
        None,
    );
    assert_eq!(a.code(), 200);
    let code = kith.last_code("+8613900000021").unwrap();
    let barrier = Arc::new(Barrier::new(6));
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let (kith, barrier, code) = (kith.clone(), barrier.clone(), code.clone());
            std::thread::spawn(move || {
                barrier.wait();
                kith.post(
                    "/user/verify_code",
                    json!({"region": 86, "phone": "13900000021", "code": code}),
                    None,
                )
                .code()
            })
        })
        .collect();
    let codes: Vec<i64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 1, "{codes:?}");
    assert!(codes.iter().all(|c| *c == 200 || *c == 1000), "{codes:?}");
});

both_backends!(repeated_failures_lock_across_a_restart, |db: TestDb| {
    let kith = Kith::start(&db, &[]);
    kith.sign_up("13900000031", "Cat", PW);
    let fail = || json!({"region": 86, "phone": "13900000031", "password": "wrong-pass"});
    for _ in 0..9 {
        assert_eq!(kith.post("/user/login", fail(), None).code(), 1000);
    }
    let a = kith.post("/user/login", fail(), None);
    assert_eq!(a.code(), 3000, "{}", a.text);
    assert!(a.header("retry-after").is_some());
    drop(kith);
    let kith = Kith::start(&db, &[]);
    let a = kith.post(
        "/user/login",
        json!({"region": 86, "phone": "13900000031", "password": PW}),
        None,
    );
    assert_eq!(a.code(), 3000, "the lock lives in the database: {}", a.text);
});

both_backends!(bad_input_is_a_clear_4xx, |db: TestDb| {
    let kith = Kith::start(&db, &[]);
    let json_ct = [("Content-Type", "application/json")];
    for body in [
        "{",
        "[]",
        "{\"region\": 86}",
        "{\"region\": {}, \"phone\": 1}",
        "null",
    ] {
        let a = kith.raw("POST", "/user/send_code", &json_ct, body.to_owned());
        assert_eq!((a.status, a.code()), (400, 400), "{body}: {}", a.text);
    }
    let a = kith.post(
        "/user/send_code",
        json!({"region": 86, "phone": "139000000ab"}),
        None,
    );
    assert_eq!(a.status, 400);
    let a = kith.post(
        "/user/send_code",
        json!({"region": 86, "phone": "1".repeat(33)}),
        None,
    );
    assert_eq!(a.status, 400);
    let a = kith.post(
        "/user/send_code",
        json!({"region": 86, "phone": "12345"}),
        None,
    );
    assert_eq!(a.status, 400, "not a mobile number");
    let big = format!("{{\"nickname\": \"{}\"}}", "x".repeat(1_100_000));
    let a = kith.raw("POST", "/user/register", &json_ct, big);
    assert_eq!(a.status, 413);
    let a = kith.get("/no/such/path", None);
    assert_eq!(a.status, 404);
    let a = kith.post(
        "/user/register",
        json!({"nickname": "x".repeat(33), "password": PW, "verification_token": "t"}),
        None,
    );
    assert_eq!((a.status, a.code()), (400, 400));
    let a = kith.post(
        "/user/register",
        json!({"nickname": "ok", "password": "has space1", "verification_token": "t"}),
        None,
    );
    assert_eq!(a.status, 400);
    let a = kith.post(
        "/user/register",
        json!({"nickname": "ok", "password": "12345678", "verification_token": "t"}),
        None,
    );
    assert_eq!(a.status, 400, "a common password");
    let a = kith.post(
        "/user/set_nickname",
        json!({"nickname": "x"}),
        Some("not-a-session"),
    );
    assert_eq!((a.status, a.code()), (401, 401));
});

both_backends!(health_and_metrics, |db: TestDb| {
    let kith = Kith::start(&db, &[]);
    assert_eq!(kith.get("/health", None).status, 200);
    kith.get("/user/1", None);
    let a = kith.get("/metrics", None);
    assert_eq!(a.status, 200);
    assert!(
        a.text
            .contains("kith_http_requests_duration_seconds_bucket"),
        "{}",
        a.text
    );
    assert!(
        a.text.contains("endpoint=\"/user/{id}\""),
        "routes are labelled by pattern"
    );
    assert!(a.text.contains("status=\"401\""));
    assert!(a.text.contains("kith_db_pool_connections"));
});

both_backends!(sigterm_lets_requests_in_flight_finish, |db: TestDb| {
    // Cost 14 makes a login take long enough to be in flight when the signal lands.
    let kith = Arc::new(Kith::start(&db, &[("KITH_BCRYPT_COST", "14")]));
    kith.sign_up("13900000041", "Dan", PW);
    let k = kith.clone();
    let login = std::thread::spawn(move || {
        k.post(
            "/user/login",
            json!({"region": 86, "phone": "13900000041", "password": PW}),
            None,
        )
        .code()
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    let pid = kith.pid().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    assert_eq!(login.join().unwrap(), 200, "the request in flight finished");
    let kith = Arc::try_unwrap(kith).unwrap();
    let status = kith.terminate();
    assert!(status.success(), "clean exit after SIGTERM: {status}");
});
