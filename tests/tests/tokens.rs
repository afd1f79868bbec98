//! End to end: IM and upload tokens and the image captcha on send_code, through the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use kith_e2e::{both_backends, Kith, TestDb};
use serde_json::{json, Value};

const PW: &str = "kith-Secret1";

/// Decodes unpadded or padded URL-safe base64 (the e2e crate carries no base64 library).
fn base64url(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'-' => 62,
            b'_' => 63,
            other => panic!("not base64url: {:?}", other as char),
        }
    };
    let digits: Vec<u32> = text.bytes().filter(|b| *b != b'=').map(value).collect();
    let mut out = Vec::new();
    for chunk in digits.chunks(4) {
        let mut n = 0u32;
        for (i, d) in chunk.iter().enumerate() {
            n |= d << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The last answer the captcha test outbox holds.
fn last_answer(path: &Path) -> String {
    let file = std::fs::File::open(path).unwrap();
    let line = BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .last()
        .unwrap();
    serde_json::from_str::<Value>(&line).unwrap()["answer"]
        .as_str()
        .unwrap()
        .to_owned()
}

both_backends!(get_token_signs_a_local_im_token, |db: TestDb| {
    let kith = Kith::start(
        &db,
        &[
            ("KITH_IM_TOKEN_SECRET", "an-im-gateway-shared-secret"),
            ("KITH_IM_TOKEN_TTL_SECS", "600"),
        ],
    );
    let (id, session) = kith.sign_up("13900000601", "Ann", PW);
    let a = kith.post("/user/get_token", json!({}), None);
    assert_eq!((a.status, a.code()), (401, 401));
    let before = now_secs();
    let a = kith.post("/user/get_token", json!({}), Some(&session));
    assert_eq!(a.code(), 200, "{}", a.text);
    assert_eq!(a.body["result"]["userId"], id.as_str());
    let token = a.body["result"]["token"].as_str().unwrap();
    let (payload, mac) = token.split_once('.').unwrap();
    assert_eq!(base64url(mac).len(), 32, "an HMAC-SHA256");
    let claims: Value = serde_json::from_slice(&base64url(payload)).unwrap();
    assert_eq!(claims["sub"], id.as_str());
    let iat = claims["iat"].as_i64().unwrap();
    assert!((before - 5..=now_secs() + 5).contains(&iat), "{claims}");
    assert_eq!(claims["exp"].as_i64().unwrap(), iat + 600);
    assert!(!a.text.contains("an-im-gateway-shared-secret"));
});

both_backends!(get_image_token_computes_a_qiniu_token, |db: TestDb| {
    let kith = Kith::start(&db, &[]);
    let (_, session) = kith.sign_up("13900000611", "Ann", PW);
    let a = kith.post("/user/get_image_token", json!({}), Some(&session));
    assert_eq!((a.status, a.code()), (503, 503), "{}", a.text);
    assert!(a.text.contains("not configured"), "{}", a.text);
    drop(kith);

    let kith = Kith::start(
        &db,
        &[
            ("KITH_QINIU_ACCESS_KEY", "e2e-access-key"),
            ("KITH_QINIU_SECRET_KEY", "e2e-secret-key"),
            ("KITH_QINIU_BUCKET", "kith-images"),
            ("KITH_QINIU_DOMAIN", "img.kith.example"),
            ("KITH_QINIU_TTL_SECS", "900"),
        ],
    );
    let a = kith.post("/user/get_image_token", json!({}), Some(&session));
    assert_eq!(a.code(), 200, "{}", a.text);
    let result = &a.body["result"];
    assert_eq!(result["target"], "qiniu");
    assert_eq!(result["domain"], "img.kith.example");
    let token = result["token"].as_str().unwrap();
    let parts: Vec<&str> = token.split(':').collect();
    assert_eq!(parts.len(), 3, "{token}");
    assert_eq!(parts[0], "e2e-access-key");
    assert_eq!(base64url(parts[1]).len(), 20, "an HMAC-SHA1");
    let policy: Value = serde_json::from_slice(&base64url(parts[2])).unwrap();
    assert_eq!(policy["scope"], "kith-images");
    let deadline = policy["deadline"].as_i64().unwrap();
    assert!(
        (now_secs() + 900 - 10..=now_secs() + 900 + 1).contains(&deadline),
        "{policy}"
    );
    assert!(!a.text.contains("e2e-secret-key"));
});

both_backends!(
    send_code_asks_for_a_captcha_after_the_free_calls,
    |db: TestDb| {
        let answers = db.dir.path().join("captcha-answers.jsonl");
        let kith = Kith::start(
            &db,
            &[
                ("KITH_CAPTCHA_AFTER", "2"),
                ("KITH_CAPTCHA_TEST_OUTBOX", answers.to_str().unwrap()),
            ],
        );
        let phone = |n: u32| json!({"region": 86, "phone": format!("139000007{n:02}")});
        for n in 1..=2 {
            let a = kith.post("/user/send_code", phone(n), None);
            assert_eq!(a.code(), 200, "{}", a.text);
        }
        let a = kith.post("/user/send_code", phone(3), None);
        assert_eq!((a.status, a.code()), (200, 6000), "{}", a.text);
        assert_eq!(kith.last_code("+8613900000703"), None, "nothing sent");

        let captcha = || {
            let a = kith.post("/user/get_sms_img_code", json!({}), None);
            assert_eq!(a.code(), 200, "{}", a.text);
            let id = a.body["result"]["verifyId"].as_str().unwrap().to_owned();
            let url = a.body["result"]["url"].as_str().unwrap().to_owned();
            (id, url, last_answer(&answers))
        };
        let (id, url, answer) = captcha();
        assert_eq!(
            url,
            format!("{}/user/sms_img_code/{id}.png", kith.base),
            "an absolute URL served by Kith itself"
        );
        let res = ureq::get(&url).call().unwrap();
        assert_eq!(res.status().as_u16(), 200);
        assert_eq!(
            res.headers().get("content-type").unwrap().to_str().unwrap(),
            "image/png"
        );
        let png = res.into_body().read_to_vec().unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{:?}", &png[..8]);
        assert!(png.len() > 500, "a real image, {} bytes", png.len());

        let wrong = if answer == "AAAAA" { "BBBBB" } else { "AAAAA" };
        let mut body = phone(3);
        body["verifyId"] = json!(id);
        body["verifyCode"] = json!(wrong);
        let a = kith.post("/user/send_code", body.clone(), None);
        assert_eq!(a.code(), 6001, "{}", a.text);
        body["verifyCode"] = json!(answer);
        let a = kith.post("/user/send_code", body, None);
        assert_eq!(
            a.code(),
            6001,
            "a wrong answer burns the captcha: {}",
            a.text
        );
        assert_eq!(
            ureq::get(&url).call().unwrap_err().to_string(),
            "http status: 404"
        );

        let (id, url, answer) = captcha();
        let mut body = phone(3);
        body["verifyId"] = json!(id);
        body["verifyCode"] = json!(answer.to_lowercase());
        let a = kith.post("/user/send_code", body.clone(), None);
        assert_eq!(a.code(), 200, "{}", a.text);
        let code = kith.last_code("+8613900000703").unwrap();
        assert_eq!(code.len(), 6);

        // Used: the image is gone and the answer no longer works (on another phone, so the
        // per-phone minute does not answer first).
        assert_eq!(
            ureq::get(&url).call().unwrap_err().to_string(),
            "http status: 404"
        );
        body["phone"] = json!("13900000704");
        let a = kith.post("/user/send_code", body, None);
        assert_eq!(a.code(), 6001, "{}", a.text);

        // The code sent after the captcha verifies like any other.
        let a = kith.post(
            "/user/verify_code",
            json!({"region": 86, "phone": "13900000703", "code": code}),
            None,
        );
        assert_eq!(a.code(), 200, "{}", a.text);
    }
);
