//! Image captchas: ids, answers and their keyed hashes, and the service that issues, shows and checks them.
//!
//! A captcha is single use and short-lived. Only a keyed hash of its answer is stored, next to
//! the rendered image; checking one deletes it whatever the answer, so a wrong guess burns it.
//! [`crate::account::AccountService::send_code`] asks for a solved captcha once a client IP has
//! sent [`CaptchaPolicy::required_after`] codes within the hour.

use std::sync::Arc;

use crate::error::{DomainError, DomainResult};
use crate::ids::Millis;
use crate::ports::{CaptchaRecord, CaptchaRenderer, CaptchaStore, Clock, Random};
use crate::ratelimit::WindowLimiter;
use crate::secret::ServerKey;

const MINUTE: Millis = 60_000;
const HOUR: Millis = 60 * MINUTE;

/// The symbols of an answer: upper-case letters and digits without the look-alikes 0/O and
/// 1/I. 32 symbols, so each one is five random bits drawn without bias.
pub const ANSWER_ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// Symbols per answer: 32^5 ≈ 3.4 × 10^7 answers, against one guess per captcha.
pub const ANSWER_LEN: usize = 5;

/// The longest answer a client may send; anything longer is refused before any lookup.
const MAX_ANSWER_LEN: usize = 16;

/// The id of one captcha (SealTalk's `verifyId`): 128 random bits as 32 lower-case hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CaptchaId(String);

impl CaptchaId {
    /// Draws a fresh id.
    pub fn generate(random: &dyn Random) -> Self {
        let mut bytes = [0u8; 16];
        random.fill(&mut bytes);
        Self(hex::encode(bytes))
    }

    /// Parses an id as a client sends it. Anything but 32 hex digits is refused as
    /// [`DomainError::Invalid`] (`verifyId`).
    pub fn parse(raw: &str) -> DomainResult<Self> {
        let raw = raw.trim();
        if raw.len() == 32 && raw.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Self(raw.to_ascii_lowercase()))
        } else {
            Err(DomainError::invalid("verifyId", "must be 32 hex digits"))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CaptchaId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A client's claimed solution: the captcha's id and the text read from its image.
#[derive(Clone, PartialEq, Eq)]
pub struct CaptchaSolution {
    id: CaptchaId,
    answer: String,
}

impl std::fmt::Debug for CaptchaSolution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptchaSolution")
            .field("id", &self.id)
            .field("answer", &"***")
            .finish()
    }
}

impl CaptchaSolution {
    /// Checks the shapes: a valid id, and an answer of 1 to 16 ASCII letters or digits
    /// ([`DomainError::Invalid`] `verifyCode` otherwise). Case does not matter.
    pub fn new(verify_id: &str, answer: &str) -> DomainResult<Self> {
        let id = CaptchaId::parse(verify_id)?;
        let answer = answer.trim();
        if answer.is_empty()
            || answer.len() > MAX_ANSWER_LEN
            || !answer.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(DomainError::invalid(
                "verifyCode",
                "must be the letters and digits shown in the captcha image",
            ));
        }
        Ok(Self {
            id,
            answer: answer.to_ascii_uppercase(),
        })
    }

    /// The captcha it answers.
    pub fn id(&self) -> &CaptchaId {
        &self.id
    }
}

/// Draws an answer of [`ANSWER_LEN`] symbols from [`ANSWER_ALPHABET`].
pub fn draw_answer(random: &dyn Random) -> String {
    let mut bytes = [0u8; ANSWER_LEN];
    random.fill(&mut bytes);
    bytes
        .iter()
        .map(|b| char::from(ANSWER_ALPHABET[usize::from(b & 31)]))
        .collect()
}

/// The tunable limits of captchas. [`CaptchaPolicy::default`] holds the documented values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptchaPolicy {
    /// How long a captcha lives.
    pub ttl_ms: Millis,
    /// `send_code` calls one client IP may make per hour before each further one needs a solved
    /// captcha. `Some(0)`: every call needs one; `None`: never.
    pub required_after: Option<u32>,
    /// Captchas one client IP may fetch per hour (each is a stored image).
    pub issue_per_ip_hourly: u32,
    /// Captchas fetched per hour, all clients together: bounds the stored images.
    pub issue_global_hourly: u32,
}

impl Default for CaptchaPolicy {
    fn default() -> Self {
        Self {
            ttl_ms: 5 * MINUTE,
            required_after: Some(10),
            issue_per_ip_hourly: 60,
            issue_global_hourly: 20_000,
        }
    }
}

/// The ports the captcha service drives.
#[derive(Debug, Clone)]
pub struct CaptchaPorts {
    /// Where captchas live until used or expired.
    pub store: Arc<dyn CaptchaStore>,
    /// Draws the image of an answer.
    pub renderer: Arc<dyn CaptchaRenderer>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Randomness for ids, answers and the image's noise.
    pub random: Arc<dyn Random>,
}

/// A freshly issued captcha: the id to hand out (its image is served by [`CaptchaService::image`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCaptcha {
    /// The `verifyId`.
    pub id: CaptchaId,
    /// When it dies.
    pub expires_at: Millis,
}

/// Issues, shows and checks image captchas.
#[derive(Debug)]
pub struct CaptchaService {
    ports: CaptchaPorts,
    key: ServerKey,
    policy: CaptchaPolicy,
    per_ip: WindowLimiter,
    global: WindowLimiter,
}

impl CaptchaService {
    /// Builds the service. `key` keys the hashes of answers.
    pub fn new(ports: CaptchaPorts, key: ServerKey, policy: CaptchaPolicy) -> Self {
        let per_ip = WindowLimiter::new(policy.issue_per_ip_hourly, HOUR, 100_000);
        let global = WindowLimiter::new(policy.issue_global_hourly, HOUR, 1);
        Self {
            ports,
            key,
            policy,
            per_ip,
            global,
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &CaptchaPolicy {
        &self.policy
    }

    fn answer_hash(&self, id: &CaptchaId, normalised_answer: &str) -> String {
        // Bound to the id so that one solved image says nothing about another's hash.
        self.key
            .keyed_hash("captcha", &format!("{}:{normalised_answer}", id.as_str()))
    }

    /// Draws a new captcha for `client_ip`, renders and stores it.
    ///
    /// Refused with [`DomainError::RateLimited`] when the IP, or everyone together, fetched too
    /// many this hour.
    pub async fn issue(&self, client_ip: &str) -> DomainResult<IssuedCaptcha> {
        let now = self.ports.clock.now();
        self.per_ip.hit(client_ip, now)?;
        self.global.hit("*", now)?;
        let random = self.ports.random.as_ref();
        let id = CaptchaId::generate(random);
        let answer = draw_answer(random);
        let png = self.ports.renderer.render(&answer, random)?;
        let expires_at = now + self.policy.ttl_ms;
        self.ports
            .store
            .put_captcha(
                CaptchaRecord {
                    answer_hash: self.answer_hash(&id, &answer),
                    id: id.clone(),
                    png,
                    expires_at,
                },
                now,
            )
            .await?;
        Ok(IssuedCaptcha { id, expires_at })
    }

    /// The PNG of a live captcha; [`DomainError::NotFound`] (`"captcha"`) once it is used or
    /// expired, or for an id never issued.
    pub async fn image(&self, id: &CaptchaId) -> DomainResult<Vec<u8>> {
        let now = self.ports.clock.now();
        self.ports
            .store
            .captcha_png(id, now)
            .await?
            .ok_or(DomainError::NotFound("captcha"))
    }

    /// Checks a solution and uses the captcha up, right or wrong.
    ///
    /// Errors: [`DomainError::WrongCaptcha`] for a wrong answer, and for an unknown, used or
    /// expired captcha.
    pub async fn check(&self, solution: &CaptchaSolution) -> DomainResult<()> {
        let now = self.ports.clock.now();
        let Some(stored) = self.ports.store.take_captcha(&solution.id, now).await? else {
            return Err(DomainError::WrongCaptcha);
        };
        let given = self.answer_hash(&solution.id, &solution.answer);
        if crate::account::constant_time_eq(given.as_bytes(), stored.as_bytes()) {
            Ok(())
        } else {
            Err(DomainError::WrongCaptcha)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use futures_executor::block_on;

    use super::*;
    use crate::memory::{ManualClock, MemoryCaptchaRenderer, MemoryCaptchaStore, SeqRandom};

    const T0: Millis = 1_700_000_000_000;

    struct Fixture {
        svc: CaptchaService,
        renderer: Arc<MemoryCaptchaRenderer>,
        clock: Arc<ManualClock>,
    }

    fn fixture(policy: CaptchaPolicy) -> Fixture {
        let renderer = Arc::new(MemoryCaptchaRenderer::default());
        let clock = Arc::new(ManualClock::new(T0));
        let ports = CaptchaPorts {
            store: Arc::new(MemoryCaptchaStore::default()),
            renderer: renderer.clone(),
            clock: clock.clone(),
            random: Arc::new(SeqRandom::new(11)),
        };
        let svc = CaptchaService::new(ports, ServerKey::new(vec![4; 32]).unwrap(), policy);
        Fixture {
            svc,
            renderer,
            clock,
        }
    }

    fn solve(f: &Fixture, issued: &IssuedCaptcha, answer: &str) -> DomainResult<()> {
        block_on(
            f.svc
                .check(&CaptchaSolution::new(issued.id.as_str(), answer).unwrap()),
        )
    }

    #[test]
    fn answers_and_ids_have_their_shapes() {
        let r = SeqRandom::new(3);
        for _ in 0..100 {
            let a = draw_answer(&r);
            assert_eq!(a.len(), ANSWER_LEN);
            assert!(a.bytes().all(|b| ANSWER_ALPHABET.contains(&b)), "{a}");
        }
        let id = CaptchaId::generate(&r);
        assert_eq!(id.as_str().len(), 32);
        assert_eq!(CaptchaId::parse(&id.as_str().to_uppercase()).unwrap(), id);
        for bad in ["", "abc", &"g".repeat(32), &"a".repeat(33)] {
            assert!(CaptchaId::parse(bad).is_err(), "{bad}");
        }
        for bad in ["", "ab cd", &"A".repeat(17), "ÄBC"] {
            assert!(
                matches!(
                    CaptchaSolution::new(id.as_str(), bad),
                    Err(DomainError::Invalid {
                        field: "verifyCode",
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
        let s = CaptchaSolution::new(id.as_str(), "AbC12").unwrap();
        assert!(!format!("{s:?}").contains("ABC12"));
    }

    #[test]
    fn the_right_answer_passes_once_in_any_case() {
        let f = fixture(CaptchaPolicy::default());
        let c = block_on(f.svc.issue("ip")).unwrap();
        assert_eq!(c.expires_at, T0 + 5 * MINUTE);
        let answer = f.renderer.last_answer().unwrap();
        let png = block_on(f.svc.image(&c.id)).unwrap();
        assert!(png.starts_with(b"\x89PNG"));
        assert_eq!(solve(&f, &c, &answer.to_lowercase()), Ok(()));
        assert_eq!(solve(&f, &c, &answer), Err(DomainError::WrongCaptcha));
        assert_eq!(
            block_on(f.svc.image(&c.id)),
            Err(DomainError::NotFound("captcha"))
        );
    }

    #[test]
    fn a_wrong_answer_burns_the_captcha() {
        let f = fixture(CaptchaPolicy::default());
        let c = block_on(f.svc.issue("ip")).unwrap();
        let answer = f.renderer.last_answer().unwrap();
        let wrong = if answer == "AAAAA" { "BBBBB" } else { "AAAAA" };
        assert_eq!(solve(&f, &c, wrong), Err(DomainError::WrongCaptcha));
        assert_eq!(solve(&f, &c, &answer), Err(DomainError::WrongCaptcha));
    }

    #[test]
    fn a_captcha_expires_after_five_minutes() {
        let f = fixture(CaptchaPolicy::default());
        let c = block_on(f.svc.issue("ip")).unwrap();
        let answer = f.renderer.last_answer().unwrap();
        f.clock.advance(5 * MINUTE - 1);
        assert!(block_on(f.svc.image(&c.id)).is_ok());
        f.clock.advance(1);
        assert_eq!(
            block_on(f.svc.image(&c.id)),
            Err(DomainError::NotFound("captcha"))
        );
        assert_eq!(solve(&f, &c, &answer), Err(DomainError::WrongCaptcha));
    }

    #[test]
    fn an_answer_only_fits_its_own_captcha() {
        let f = fixture(CaptchaPolicy::default());
        let a = block_on(f.svc.issue("ip")).unwrap();
        let answer_a = f.renderer.last_answer().unwrap();
        let b = block_on(f.svc.issue("ip")).unwrap();
        let answer_b = f.renderer.last_answer().unwrap();
        if answer_a != answer_b {
            assert_eq!(solve(&f, &b, &answer_a), Err(DomainError::WrongCaptcha));
        }
        assert_eq!(solve(&f, &a, &answer_a), Ok(()));
        let unknown = CaptchaSolution::new(&"0".repeat(32), "ABCDE").unwrap();
        assert_eq!(
            block_on(f.svc.check(&unknown)),
            Err(DomainError::WrongCaptcha)
        );
    }

    #[test]
    fn issuing_is_rate_limited_per_ip() {
        let f = fixture(CaptchaPolicy {
            issue_per_ip_hourly: 2,
            ..CaptchaPolicy::default()
        });
        block_on(f.svc.issue("a")).unwrap();
        block_on(f.svc.issue("a")).unwrap();
        assert!(matches!(
            block_on(f.svc.issue("a")),
            Err(DomainError::RateLimited { .. })
        ));
        block_on(f.svc.issue("b")).unwrap();
        f.clock.advance(HOUR);
        block_on(f.svc.issue("a")).unwrap();
    }
}
