#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use futures_executor::block_on;

use super::*;
use crate::memory::{ManualClock, MemoryAccountStore, MemorySms, PlainHasher, SeqRandom};

const T0: Millis = 1_700_000_000_000;
const PW: &str = "kith-Secret1";

struct Fixture {
    svc: AccountService,
    store: Arc<MemoryAccountStore>,
    sms: Arc<MemorySms>,
    clock: Arc<ManualClock>,
    hasher: Arc<PlainHasher>,
}

fn fixture_with(policy: AccountPolicy) -> Fixture {
    let store = Arc::new(MemoryAccountStore::default());
    let sms = Arc::new(MemorySms::default());
    let clock = Arc::new(ManualClock::new(T0));
    let hasher = Arc::new(PlainHasher::new(12));
    let ports = AccountPorts {
        store: store.clone(),
        sms: sms.clone(),
        hasher: hasher.clone(),
        clock: clock.clone(),
        random: Arc::new(SeqRandom::new(42)),
    };
    let svc = AccountService::new(ports, ServerKey::new(vec![9; 32]).unwrap(), policy);
    Fixture {
        svc,
        store,
        sms,
        clock,
        hasher,
    }
}

fn fixture() -> Fixture {
    fixture_with(AccountPolicy::default())
}

fn phone(n: u32) -> Phone {
    Phone::parse("86", &format!("139{n:08}")).unwrap()
}

impl Fixture {
    fn token_for(&self, p: &Phone) -> Token {
        block_on(self.svc.send_code(p, "10.0.0.1", None)).unwrap();
        let code = self.sms.last_code(p).unwrap();
        block_on(self.svc.verify_code(p, &code)).unwrap()
    }

    fn sign_up(&self, p: &Phone) -> LoggedIn {
        let token = self.token_for(p);
        block_on(self.svc.register(
            Nickname::new("Tom").unwrap(),
            Password::new_secret("password", PW).unwrap(),
            token.expose(),
        ))
        .unwrap()
    }
}

fn wrong(code: &str) -> String {
    let d = (code.as_bytes()[0] - b'0' + 1) % 10;
    format!("{d}{}", &code[1..])
}

#[test]
fn a_code_is_six_digits_sent_once_a_minute() {
    let f = fixture();
    let p = phone(1);
    block_on(f.svc.send_code(&p, "ip", None)).unwrap();
    let sent = f.sms.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].code.len(), 6);
    assert_eq!(sent[0].purpose, SmsPurpose::Register);
    f.clock.advance(59_000);
    assert!(matches!(
        block_on(f.svc.send_code(&p, "ip", None)),
        Err(DomainError::RateLimited { .. })
    ));
    assert_eq!(f.sms.sent().len(), 1, "a throttled send sends nothing");
    f.clock.advance(1_000);
    block_on(f.svc.send_code(&p, "ip", None)).unwrap();
    assert_eq!(f.sms.sent().len(), 2);
}

#[test]
fn a_new_code_kills_the_old_one() {
    let f = fixture();
    let p = phone(1);
    block_on(f.svc.send_code(&p, "ip", None)).unwrap();
    let old = f.sms.last_code(&p).unwrap();
    f.clock.advance(60_000);
    block_on(f.svc.send_code(&p, "ip", None)).unwrap();
    let new = f.sms.last_code(&p).unwrap();
    if old != new {
        assert_eq!(
            block_on(f.svc.verify_code(&p, &old)).unwrap_err(),
            DomainError::WrongCode
        );
    }
    assert!(block_on(f.svc.verify_code(&p, &new)).is_ok());
}

#[test]
fn per_ip_and_global_limits_hold() {
    let f = fixture_with(AccountPolicy {
        sms_per_ip_hourly: 2,
        sms_global_hourly: 3,
        ..AccountPolicy::default()
    });
    block_on(f.svc.send_code(&phone(1), "a", None)).unwrap();
    block_on(f.svc.send_code(&phone(2), "a", None)).unwrap();
    assert!(matches!(
        block_on(f.svc.send_code(&phone(3), "a", None)),
        Err(DomainError::RateLimited { .. })
    ));
    block_on(f.svc.send_code(&phone(4), "b", None)).unwrap();
    assert!(matches!(
        block_on(f.svc.send_code(&phone(5), "c", None)),
        Err(DomainError::RateLimited { .. })
    ));
    f.clock.advance(3_600_000);
    block_on(f.svc.send_code(&phone(5), "c", None)).unwrap();
}

#[test]
fn a_failing_gateway_is_unavailable() {
    let f = fixture();
    f.sms.set_failing(true);
    assert!(matches!(
        block_on(f.svc.send_code(&phone(1), "ip", None)),
        Err(DomainError::Unavailable(_))
    ));
}

#[test]
fn wrong_expired_and_dead_codes() {
    let f = fixture();
    let p = phone(1);
    block_on(f.svc.send_code(&p, "ip", None)).unwrap();
    let code = f.sms.last_code(&p).unwrap();
    assert_eq!(
        block_on(f.svc.verify_code(&p, &wrong(&code))).unwrap_err(),
        DomainError::WrongCode
    );
    assert!(matches!(
        block_on(f.svc.verify_code(&p, "12a456")),
        Err(DomainError::Invalid { field: "code", .. })
    ));
    assert_eq!(
        block_on(f.svc.verify_code(&phone(2), &code)).unwrap_err(),
        DomainError::WrongCode,
        "a phone without a code"
    );
    f.clock.advance(10 * 60_000);
    assert_eq!(
        block_on(f.svc.verify_code(&p, &code)).unwrap_err(),
        DomainError::CodeExpired
    );

    f.clock.advance(60_000);
    block_on(f.svc.send_code(&p, "ip", None)).unwrap();
    let code = f.sms.last_code(&p).unwrap();
    for _ in 0..5 {
        assert_eq!(
            block_on(f.svc.verify_code(&p, &wrong(&code))).unwrap_err(),
            DomainError::WrongCode
        );
    }
    assert_eq!(
        block_on(f.svc.verify_code(&p, &code)).unwrap_err(),
        DomainError::CodeExpired,
        "five wrong tries kill the code"
    );
}

#[test]
fn a_code_verifies_once() {
    let f = fixture();
    let p = phone(1);
    block_on(f.svc.send_code(&p, "ip", None)).unwrap();
    let code = f.sms.last_code(&p).unwrap();
    let token = block_on(f.svc.verify_code(&p, &code)).unwrap();
    assert_eq!(token.expose().len(), 64);
    assert_eq!(
        block_on(f.svc.verify_code(&p, &code)).unwrap_err(),
        DomainError::WrongCode
    );
}

#[test]
fn register_logs_in_and_the_token_is_single_use() {
    let f = fixture();
    let p = phone(1);
    let token = f.token_for(&p);
    assert!(block_on(f.svc.check_phone_available(&p)).unwrap());
    let pw = || Password::new_secret("password", PW).unwrap();
    let nick = || Nickname::new("Tom").unwrap();
    let li = block_on(f.svc.register(nick(), pw(), token.expose())).unwrap();
    assert!(li.user_id.get() > 0 && li.user_id.get() < (1 << 53));
    let caller = block_on(f.svc.authenticate(li.token.expose())).unwrap();
    assert_eq!(caller.user_id, li.user_id);
    assert!(!block_on(f.svc.check_phone_available(&p)).unwrap());
    assert_eq!(
        block_on(f.svc.register(nick(), pw(), token.expose())).unwrap_err(),
        DomainError::NotFound("verification_token")
    );
    assert_eq!(
        block_on(f.svc.register(nick(), pw(), "not-a-token")).unwrap_err(),
        DomainError::NotFound("verification_token")
    );
    let user = block_on(f.svc.get_user(li.user_id)).unwrap();
    assert_eq!(user.nickname, "Tom");
}

#[test]
fn an_expired_token_is_refused() {
    let f = fixture();
    let p = phone(1);
    let token = f.token_for(&p);
    f.clock.advance(10 * 60_000);
    assert_eq!(
        block_on(f.svc.register(
            Nickname::new("Tom").unwrap(),
            Password::new_secret("password", PW).unwrap(),
            token.expose()
        ))
        .unwrap_err(),
        DomainError::NotFound("verification_token")
    );
}

#[test]
fn a_placeholder_is_available_and_taken_over() {
    let f = fixture();
    let p = phone(1);
    let placeholder = UserId::new(777).unwrap();
    f.store.add_placeholder(placeholder, &p, T0).unwrap();
    assert!(block_on(f.svc.check_phone_available(&p)).unwrap());
    assert_eq!(
        block_on(f.svc.get_user(placeholder)).unwrap_err(),
        DomainError::NotFound("user")
    );
    let li = f.sign_up(&p);
    assert_eq!(li.user_id, placeholder);
    assert!(block_on(f.svc.get_user(placeholder)).is_ok());
}

#[test]
fn login_failures_are_identical_for_unknown_and_wrong() {
    let f = fixture();
    let p = phone(1);
    f.sign_up(&p);
    let before = f.hasher.verifications();
    let unknown = block_on(f.svc.login(&phone(2), PW)).unwrap_err();
    assert_eq!(
        f.hasher.verifications(),
        before + 1,
        "the dummy hash is checked"
    );
    let wrong = block_on(f.svc.login(&p, "wrong-pass")).unwrap_err();
    assert_eq!(unknown, DomainError::WrongCredentials);
    assert_eq!(wrong, DomainError::WrongCredentials);
    let li = block_on(f.svc.login(&p, PW)).unwrap();
    assert!(block_on(f.svc.authenticate(li.token.expose())).is_ok());
}

#[test]
fn repeated_failures_lock_the_account_for_longer_each_time() {
    let f = fixture();
    let p = phone(1);
    f.sign_up(&p);
    for _ in 0..9 {
        assert_eq!(
            block_on(f.svc.login(&p, "wrong-pass")).unwrap_err(),
            DomainError::WrongCredentials
        );
    }
    assert_eq!(
        block_on(f.svc.login(&p, "wrong-pass")).unwrap_err(),
        DomainError::AccountLocked {
            retry_after_secs: 300
        }
    );
    assert!(matches!(
        block_on(f.svc.login(&p, PW)),
        Err(DomainError::AccountLocked { .. })
    ));
    f.clock.advance(5 * 60_000);
    for _ in 0..10 {
        let _ = block_on(f.svc.login(&p, "wrong-pass"));
    }
    assert_eq!(
        block_on(f.svc.login(&p, PW)).unwrap_err(),
        DomainError::AccountLocked {
            retry_after_secs: 600
        },
        "the second lock lasts twice as long"
    );
    f.clock.advance(10 * 60_000);
    assert!(block_on(f.svc.login(&p, PW)).is_ok());
    let record = block_on(f.store.find_login(&p)).unwrap().unwrap();
    assert_eq!(record.throttle, LoginThrottle::default(), "success resets");
}

#[test]
fn failures_outside_the_window_do_not_lock() {
    let f = fixture();
    let p = phone(1);
    f.sign_up(&p);
    for _ in 0..20 {
        assert_eq!(
            block_on(f.svc.login(&p, "wrong-pass")).unwrap_err(),
            DomainError::WrongCredentials
        );
        f.clock.advance(2 * 60_000);
    }
}

#[test]
fn a_weak_hash_is_upgraded_at_login() {
    let f = fixture();
    let p = phone(1);
    let li = f.sign_up(&p);
    block_on(
        f.store
            .set_password_hash(li.user_id, &format!("plain$10${PW}"), None),
    )
    .unwrap();
    block_on(f.svc.login(&p, PW)).unwrap();
    let record = block_on(f.store.login_by_id(li.user_id)).unwrap().unwrap();
    assert!(record.password_hash.starts_with("plain$12$"));
}

#[test]
fn sessions_expire_when_idle_or_old() {
    let f = fixture_with(AccountPolicy {
        session_idle_ms: 10 * 60_000,
        session_max_ms: 25 * 60_000,
        ..AccountPolicy::default()
    });
    let li = f.sign_up(&phone(1));
    let t = li.token.expose().to_owned();
    for _ in 0..2 {
        f.clock.advance(9 * 60_000);
        assert!(
            block_on(f.svc.authenticate(&t)).is_ok(),
            "use keeps it alive"
        );
    }
    f.clock.advance(7 * 60_000);
    assert_eq!(
        block_on(f.svc.authenticate(&t)).unwrap_err(),
        DomainError::Unauthenticated,
        "absolute lifetime"
    );

    let li = block_on(f.svc.login(&phone(1), PW)).unwrap();
    f.clock.advance(10 * 60_000);
    assert_eq!(
        block_on(f.svc.authenticate(li.token.expose())).unwrap_err(),
        DomainError::Unauthenticated,
        "idle timeout"
    );
    assert_eq!(
        block_on(f.svc.authenticate("garbage")).unwrap_err(),
        DomainError::Unauthenticated
    );
}

#[test]
fn a_session_revoked_elsewhere_is_trusted_for_the_cache_interval_only() {
    for cache_ms in [5_000, 0] {
        let f = fixture_with(AccountPolicy {
            session_cache_ms: cache_ms,
            ..AccountPolicy::default()
        });
        let li = f.sign_up(&phone(1));
        let t = li.token.expose();
        let caller = block_on(f.svc.authenticate(t)).unwrap();
        // Another process sharing the store revokes it.
        block_on(f.store.delete_session(&caller.session_hash)).unwrap();
        f.clock.advance(cache_ms - 1);
        assert_eq!(
            block_on(f.svc.authenticate(t)).is_ok(),
            cache_ms > 0,
            "within the interval ({cache_ms} ms)"
        );
        f.clock.advance(1);
        assert_eq!(
            block_on(f.svc.authenticate(t)).unwrap_err(),
            DomainError::Unauthenticated,
            "after it ({cache_ms} ms)"
        );
    }
}

#[test]
fn a_profile_changed_elsewhere_shows_after_the_cache_interval() {
    for cache_ms in [5_000, 0] {
        let f = fixture_with(AccountPolicy {
            profile_cache_ms: cache_ms,
            ..AccountPolicy::default()
        });
        let me = f.sign_up(&phone(1)).user_id;
        assert_eq!(block_on(f.svc.profile(me)).unwrap().nickname, "Tom");
        // Another process sharing the store renames the user.
        block_on(f.store.update_profile(
            me,
            ProfileChange::Nickname("Jerry".into()),
            f.clock.now(),
        ))
        .unwrap();
        f.clock.advance(cache_ms - 1);
        let shown = block_on(f.svc.profile(me)).unwrap().nickname.clone();
        let expected = if cache_ms > 0 { "Tom" } else { "Jerry" };
        assert_eq!(shown, expected, "within the interval ({cache_ms} ms)");
        f.clock.advance(1);
        assert_eq!(
            block_on(f.svc.profile(me)).unwrap().nickname,
            "Jerry",
            "after it ({cache_ms} ms)"
        );
    }
}

#[test]
fn every_profile_change_through_the_service_shows_at_once() {
    let f = fixture_with(AccountPolicy {
        profile_cache_ms: 60 * 60_000,
        ..AccountPolicy::default()
    });
    let li = f.sign_up(&phone(1));
    let caller = block_on(f.svc.authenticate(li.token.expose())).unwrap();
    let me = caller.user_id;
    let shown = |f: &Fixture| block_on(f.svc.profile(me)).unwrap();
    shown(&f);
    block_on(f.svc.set_nickname(&caller, Nickname::new("Jerry").unwrap())).unwrap();
    assert_eq!(shown(&f).nickname, "Jerry");
    let uri = ImageUri::new("portraitUri", "https://example.com/p.png").unwrap();
    block_on(f.svc.set_portrait_uri(&caller, uri)).unwrap();
    assert_eq!(shown(&f).portrait_uri, "https://example.com/p.png");
    let privacy = Privacy {
        findable_by_phone: false,
        ..Privacy::default()
    };
    block_on(f.svc.set_privacy(&caller, privacy)).unwrap();
    assert!(!shown(&f).privacy.findable_by_phone);
    block_on(
        f.svc
            .set_details(&caller, Some(Some("tom".into())), None, None, None),
    )
    .unwrap();
    assert_eq!(shown(&f).user_name.as_deref(), Some("tom"));
    // Unknown ids and placeholders are never kept: they are not users yet.
    let nobody = UserId::new(987_654_321).unwrap();
    assert_eq!(
        block_on(f.svc.profile(nobody)).unwrap_err(),
        DomainError::NotFound("user")
    );
}

#[test]
fn a_cached_session_still_expires_and_is_touched_once_a_minute() {
    let f = fixture_with(AccountPolicy {
        session_idle_ms: 10 * 60_000,
        session_cache_ms: 60 * 60_000,
        ..AccountPolicy::default()
    });
    let li = f.sign_up(&phone(1));
    let t = li.token.expose();
    let caller = block_on(f.svc.authenticate(t)).unwrap();
    f.clock.advance(2 * 60_000);
    block_on(f.svc.authenticate(t)).unwrap();
    let stored = block_on(f.store.get_session(&caller.session_hash))
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.last_seen_at,
        f.clock.now(),
        "the touch reached the store"
    );
    f.clock.advance(10 * 60_000);
    assert_eq!(
        block_on(f.svc.authenticate(t)).unwrap_err(),
        DomainError::Unauthenticated,
        "idle, though cached"
    );
}

#[test]
fn logout_change_and_reset_revoke_sessions() {
    let f = fixture();
    let p = phone(1);
    let a = f.sign_up(&p);
    let b = block_on(f.svc.login(&p, PW)).unwrap();
    let c = block_on(f.svc.login(&p, PW)).unwrap();
    let caller_a = block_on(f.svc.authenticate(a.token.expose())).unwrap();
    block_on(f.svc.logout(&caller_a)).unwrap();
    assert!(block_on(f.svc.authenticate(a.token.expose())).is_err());

    let caller_b = block_on(f.svc.authenticate(b.token.expose())).unwrap();
    let new_pw = || Password::new_secret("newPassword", "kith-Secret2").unwrap();
    assert_eq!(
        block_on(f.svc.change_password(&caller_b, "wrong-old", new_pw())).unwrap_err(),
        DomainError::WrongCredentials
    );
    block_on(f.svc.change_password(&caller_b, PW, new_pw())).unwrap();
    assert!(
        block_on(f.svc.authenticate(b.token.expose())).is_ok(),
        "keeps its own"
    );
    assert!(
        block_on(f.svc.authenticate(c.token.expose())).is_err(),
        "revokes others"
    );
    assert!(block_on(f.svc.login(&p, PW)).is_err());
    assert!(block_on(f.svc.login(&p, "kith-Secret2")).is_ok());

    f.clock.advance(60_000);
    let token = f.token_for(&p);
    block_on(f.svc.reset_password(
        Password::new_secret("password", "kith-Secret3").unwrap(),
        token.expose(),
    ))
    .unwrap();
    assert_eq!(f.store.session_count(a.user_id), 0, "reset revokes all");
    assert!(
        block_on(f.svc.authenticate(b.token.expose())).is_err(),
        "and at once, though the session was just read"
    );
    assert!(block_on(f.svc.login(&p, "kith-Secret3")).is_ok());
    assert_eq!(
        block_on(f.svc.reset_password(
            Password::new_secret("password", "kith-Secret4").unwrap(),
            token.expose()
        ))
        .unwrap_err(),
        DomainError::NotFound("verification_token")
    );
}

#[test]
fn profile_changes_bump_the_version() {
    let f = fixture();
    let li = f.sign_up(&phone(1));
    let caller = block_on(f.svc.authenticate(li.token.expose())).unwrap();
    let v0 = f.store.version(li.user_id);
    block_on(f.svc.set_nickname(&caller, Nickname::new("Jerry").unwrap())).unwrap();
    block_on(f.svc.set_portrait_uri(
        &caller,
        ImageUri::new("portraitUri", "https://example.com/a.png").unwrap(),
    ))
    .unwrap();
    assert_eq!(f.store.version(li.user_id), v0 + 2);
    let user = block_on(f.svc.get_user(li.user_id)).unwrap();
    assert_eq!(user.nickname, "Jerry");
    assert_eq!(user.portrait_uri, "https://example.com/a.png");
}

#[test]
fn find_by_phone_respects_privacy() {
    let f = fixture();
    let p = phone(1);
    let li = f.sign_up(&p);
    assert_eq!(block_on(f.svc.find_user(&p)).unwrap().id, li.user_id);
    assert_eq!(
        block_on(f.svc.find_user(&phone(2))).unwrap_err(),
        DomainError::NotFound("user")
    );
    let caller = block_on(f.svc.authenticate(li.token.expose())).unwrap();
    block_on(f.svc.set_privacy(
        &caller,
        Privacy {
            findable_by_phone: false,
            ..Privacy::default()
        },
    ))
    .unwrap();
    assert_eq!(
        block_on(f.svc.find_user(&p)).unwrap_err(),
        DomainError::NotFound("user")
    );
}

#[test]
fn the_throttle_arithmetic() {
    let p = AccountPolicy::default();
    let mut t = LoginThrottle::default();
    for i in 1..10 {
        t = next_throttle(&p, t, T0);
        assert_eq!(t.failures, i);
        assert_eq!(t.locked_until, 0);
    }
    t = next_throttle(&p, t, T0);
    assert_eq!(t.locked_until, T0 + p.lock_base_ms);
    assert_eq!(t.lock_level, 1);
    let mut t = LoginThrottle {
        lock_level: 40,
        ..LoginThrottle::default()
    };
    t.failures = 9;
    t.window_start = T0;
    let t = next_throttle(&p, t, T0);
    assert_eq!(t.locked_until, T0 + p.lock_max_ms, "capped");
}

#[test]
fn profile_details_are_validated() {
    let f = fixture();
    let li = f.sign_up(&phone(1));
    let caller = block_on(f.svc.authenticate(li.token.expose())).unwrap();
    let set = |u, g, b, e| block_on(f.svc.set_details(&caller, u, g, b, e));
    set(
        Some(Some("tom_1".into())),
        Some(Some("male".into())),
        Some(Some("2000-02-29".into())),
        Some(Some("tom@example.com".into())),
    )
    .unwrap();
    let user = block_on(f.svc.get_user(li.user_id)).unwrap();
    assert_eq!(user.birth_date.as_deref(), Some("2000-02-29"));
    assert_eq!(user.email.as_deref(), Some("tom@example.com"));
    for (field, bad) in [
        (
            "birth_date",
            set(None, None, Some(Some("2001-02-29".into())), None),
        ),
        (
            "birth_date",
            set(None, None, Some(Some("20-01-01".into())), None),
        ),
        (
            "email",
            set(None, None, None, Some(Some("no-at-sign".into()))),
        ),
        ("email", set(None, None, None, Some(Some("a@b".into())))),
        (
            "user_name",
            set(Some(Some("x".repeat(33))), None, None, None),
        ),
        ("gender", set(None, Some(Some(" ".into())), None, None)),
    ] {
        assert!(
            matches!(bad, Err(DomainError::Invalid { field: f, .. }) if f == field),
            "{field}"
        );
    }
    set(None, None, None, Some(None)).unwrap();
    let user = block_on(f.svc.get_user(li.user_id)).unwrap();
    assert_eq!(user.email, None);
    assert_eq!(user.user_name.as_deref(), Some("tom_1"), "untouched");
}

// ---------------------------------------------------------------- image captcha on send_code

mod captcha {
    use super::*;
    use crate::captcha::{CaptchaPolicy, CaptchaPorts, CaptchaService, CaptchaSolution};
    use crate::memory::{MemoryCaptchaRenderer, MemoryCaptchaStore};

    struct WithCaptcha {
        f: Fixture,
        renderer: Arc<MemoryCaptchaRenderer>,
    }

    fn with_captcha(required_after: Option<u32>) -> WithCaptcha {
        let mut f = fixture();
        let renderer = Arc::new(MemoryCaptchaRenderer::default());
        let captcha = CaptchaService::new(
            CaptchaPorts {
                store: Arc::new(MemoryCaptchaStore::default()),
                renderer: renderer.clone(),
                clock: f.clock.clone(),
                random: Arc::new(SeqRandom::new(99)),
            },
            ServerKey::new(vec![8; 32]).unwrap(),
            CaptchaPolicy {
                required_after,
                ..CaptchaPolicy::default()
            },
        );
        let ports = f.svc.ports().clone();
        f.svc = AccountService::new(
            ports,
            ServerKey::new(vec![9; 32]).unwrap(),
            AccountPolicy::default(),
        )
        .with_captcha(Arc::new(captcha));
        WithCaptcha { f, renderer }
    }

    impl WithCaptcha {
        /// Fetches a captcha and returns its id with the right answer.
        fn captcha(&self, ip: &str) -> (String, String) {
            let issued = block_on(self.f.svc.issue_captcha(ip)).unwrap();
            (
                issued.id.as_str().to_owned(),
                self.renderer.last_answer().unwrap(),
            )
        }

        fn send(&self, n: u32, ip: &str, solution: Option<(&str, &str)>) -> DomainResult<()> {
            let solution = solution.map(|(id, a)| CaptchaSolution::new(id, a).unwrap());
            block_on(self.f.svc.send_code(&phone(n), ip, solution.as_ref()))
        }
    }

    fn wrong_answer(answer: &str) -> String {
        if answer == "AAAAA" {
            "BBBBB".into()
        } else {
            "AAAAA".into()
        }
    }

    #[test]
    fn after_the_free_sends_a_captcha_is_required() {
        let w = with_captcha(Some(2));
        w.send(1, "a", None).unwrap();
        w.send(2, "a", None).unwrap();
        assert_eq!(w.send(3, "a", None), Err(DomainError::CaptchaRequired));
        assert_eq!(w.f.sms.sent().len(), 2, "a refused send sends nothing");
        // Another IP still has its free sends.
        w.send(4, "b", None).unwrap();

        let (id, answer) = w.captcha("a");
        let wrong = wrong_answer(&answer);
        assert_eq!(
            w.send(3, "a", Some((&id, &wrong))),
            Err(DomainError::WrongCaptcha)
        );
        assert_eq!(
            w.send(3, "a", Some((&id, &answer))),
            Err(DomainError::WrongCaptcha),
            "a wrong answer burns the captcha"
        );
        assert_eq!(w.f.sms.sent().len(), 3);

        let (id, answer) = w.captcha("a");
        w.send(3, "a", Some((&id, &answer.to_lowercase()))).unwrap();
        assert!(w.f.sms.last_code(&phone(3)).is_some());
        assert_eq!(
            w.send(5, "a", Some((&id, &answer))),
            Err(DomainError::WrongCaptcha),
            "a captcha is single use"
        );
        assert_eq!(w.send(5, "a", None), Err(DomainError::CaptchaRequired));

        // The free allowance comes back with the next hour.
        w.f.clock.advance(HOUR);
        w.send(5, "a", None).unwrap();
    }

    #[test]
    fn an_expired_captcha_is_wrong() {
        let w = with_captcha(Some(0));
        let (id, answer) = w.captcha("a");
        w.f.clock.advance(5 * MINUTE);
        assert_eq!(
            w.send(1, "a", Some((&id, &answer))),
            Err(DomainError::WrongCaptcha)
        );
        let (id, answer) = w.captcha("a");
        w.f.clock.advance(5 * MINUTE - 1);
        w.send(1, "a", Some((&id, &answer))).unwrap();
    }

    #[test]
    fn zero_free_sends_means_always_and_none_means_never() {
        let w = with_captcha(Some(0));
        assert_eq!(w.send(1, "a", None), Err(DomainError::CaptchaRequired));
        let w = with_captcha(None);
        for n in 1..=5 {
            w.send(n, "a", None).unwrap();
        }
        // A captcha that is sent is checked even when none is needed.
        let (id, answer) = w.captcha("a");
        assert_eq!(
            w.send(6, "a", Some((&id, &wrong_answer(&answer)))),
            Err(DomainError::WrongCaptcha)
        );
    }

    #[test]
    fn a_too_early_resend_keeps_the_captcha() {
        let w = with_captcha(Some(0));
        let (id, answer) = w.captcha("a");
        w.send(1, "a", Some((&id, &answer))).unwrap();
        let (id, answer) = w.captcha("a");
        assert!(matches!(
            w.send(1, "a", Some((&id, &answer))),
            Err(DomainError::RateLimited { .. })
        ));
        // The per-phone throttle refused first: the captcha is still good for another phone.
        w.send(2, "a", Some((&id, &answer))).unwrap();
    }

    #[test]
    fn without_a_captcha_service_none_is_asked_for() {
        let f = fixture();
        for n in 1..=12 {
            block_on(f.svc.send_code(&phone(n), "a", None)).unwrap();
        }
        assert!(matches!(
            block_on(f.svc.issue_captcha("a")),
            Err(DomainError::Unavailable(_))
        ));
    }
}
