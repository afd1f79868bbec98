//! Rate limits (issue 7): a throttled SealTalk call answers HTTP 429 with `Retry-After` and keeps
//! document 003's code 5000 ("over the frequency limit") in its body.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kith_e2e::{both_backends, Answer, Kith, TestDb};
use serde_json::json;

const PER_IP_HOURLY: u32 = 5;

/// The `Retry-After` of a 429, checked to be whole seconds in `1..=max`.
fn retry_after(a: &Answer, max: u64) -> u64 {
    assert_eq!(a.status, 429, "{}", a.text);
    let secs: u64 = a
        .header("retry-after")
        .unwrap_or_else(|| panic!("429 without Retry-After: {}", a.text))
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=max).contains(&secs), "Retry-After {secs}");
    secs
}

/// The SealTalk 429: code 5000 and the wait in `result.retryAfter`, equal to the header.
fn sealtalk_throttled(a: &Answer, max: u64) {
    let secs = retry_after(a, max);
    assert_eq!(a.code(), 5000, "{}", a.text);
    assert_eq!(a.body["result"]["retryAfter"], secs, "{}", a.text);
}

both_backends!(send_code_hammering_answers_429, |db: TestDb| {
    let kith = Kith::start(
        &db,
        &[
            ("KITH_SMS_PER_IP_HOURLY", &PER_IP_HOURLY.to_string()),
            ("KITH_CAPTCHA_AFTER", "off"),
        ],
    );
    let send = |phone: &str| {
        kith.post(
            "/user/send_code",
            json!({"region": 86, "phone": phone}),
            None,
        )
    };

    // The same phone again within the minute: the per-phone throttle.
    let a = send("13900000801");
    assert_eq!((a.status, a.code()), (200, 200), "{}", a.text);
    let a = send("13900000801");
    sealtalk_throttled(&a, 60);

    // Distinct phones from one IP: the hourly per-IP quota (the refused call above did not
    // count), then every further call is refused, none sends a code.
    for i in 2..=PER_IP_HOURLY {
        let a = send(&format!("139000008{i:02}"));
        assert_eq!((a.status, a.code()), (200, 200), "call {i}: {}", a.text);
    }
    for i in 0..20 {
        let phone = format!("139000009{i:02}");
        let a = send(&phone);
        sealtalk_throttled(&a, 3600);
        assert_eq!(kith.last_code(&format!("+86{phone}")), None, "no SMS sent");
    }
});
