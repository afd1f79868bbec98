//! Account rules: SMS codes, sign-up, login with soft locks, sessions and profile changes.

use std::sync::Arc;

use crate::captcha::{CaptchaId, CaptchaService, CaptchaSolution, IssuedCaptcha};
use crate::error::{DomainError, DomainResult};
use crate::ids::{Millis, UserId};
use crate::phone::Phone;
use crate::ports::{
    AccountStore, Clock, CodeRecord, LoginRecord, LoginThrottle, NewAccount, NewVerificationToken,
    PasswordHasher, Privacy, ProfileChange, Random, SessionRecord, SmsGateway, SmsMessage,
    SmsPurpose, UserProfile,
};
use crate::ratelimit::WindowLimiter;
use crate::secret::{sms_code, ServerKey, Token};
use crate::values::{ImageUri, Nickname, Password};

mod read_cache;
mod session_cache;
use read_cache::ReadCache;
use session_cache::SessionCache;

const MINUTE: Millis = 60_000;
const HOUR: Millis = 60 * MINUTE;
const DAY: Millis = 24 * HOUR;

/// The tunable limits of the account rules. [`AccountPolicy::default`] holds the documented values.
#[derive(Debug, Clone)]
pub struct AccountPolicy {
    /// How long an SMS code lives.
    pub code_ttl_ms: Millis,
    /// The minimum gap between two codes to one phone.
    pub code_resend_ms: Millis,
    /// Wrong tries that kill a code.
    pub code_max_attempts: i32,
    /// How long a verification token lives.
    pub token_ttl_ms: Millis,
    /// SMS sends per client IP per hour.
    pub sms_per_ip_hourly: u32,
    /// SMS sends per hour, all clients together.
    pub sms_global_hourly: u32,
    /// A session unused for this long is dead.
    pub session_idle_ms: Millis,
    /// A session older than this is dead, however busy.
    pub session_max_ms: Millis,
    /// How long a session read from the store is trusted without reading it again; 0 reads it
    /// on every request. A revocation made through this service takes effect at once; one made
    /// by another process sharing the store, within this interval.
    pub session_cache_ms: Millis,
    /// The most sessions kept in that cache.
    pub session_cache_entries: usize,
    /// How long a user read from the store for [`AccountService::profile`] is shown without
    /// reading it again; 0 reads it every time. A profile change made through this service
    /// shows at once; one made by another process sharing the store, within this interval.
    pub profile_cache_ms: Millis,
    /// The most users kept in that cache.
    pub profile_cache_entries: usize,
    /// Failed logins within [`AccountPolicy::lock_window_ms`] that lock the account.
    pub lock_threshold: i32,
    /// The window in which failures are counted.
    pub lock_window_ms: Millis,
    /// The first lock's length; each further lock doubles it.
    pub lock_base_ms: Millis,
    /// The longest lock.
    pub lock_max_ms: Millis,
}

impl Default for AccountPolicy {
    fn default() -> Self {
        Self {
            code_ttl_ms: 10 * MINUTE,
            code_resend_ms: MINUTE,
            code_max_attempts: 5,
            token_ttl_ms: 10 * MINUTE,
            sms_per_ip_hourly: 20,
            sms_global_hourly: 1000,
            session_idle_ms: 30 * DAY,
            session_max_ms: 90 * DAY,
            session_cache_ms: 5_000,
            session_cache_entries: 50_000,
            profile_cache_ms: 5_000,
            profile_cache_entries: 50_000,
            lock_threshold: 10,
            lock_window_ms: 15 * MINUTE,
            lock_base_ms: 5 * MINUTE,
            lock_max_ms: DAY,
        }
    }
}

/// The ports the account service drives.
#[derive(Debug, Clone)]
pub struct AccountPorts {
    /// Where accounts, codes and sessions live.
    pub store: Arc<dyn AccountStore>,
    /// Where codes go out.
    pub sms: Arc<dyn SmsGateway>,
    /// Password hashing.
    pub hasher: Arc<dyn PasswordHasher>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Randomness for codes, tokens and ids.
    pub random: Arc<dyn Random>,
}

/// A new session: the user and the secret to hand to the client once.
#[derive(Debug, Clone)]
pub struct LoggedIn {
    /// The user.
    pub user_id: UserId,
    /// The session secret (cookie value and Bearer token).
    pub token: Token,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Who is calling.
    pub user_id: UserId,
    /// The hash of the session used, so that the session itself can be kept or revoked.
    pub session_hash: String,
}

/// Sign-up, login, sessions and profile: every account rule, over the ports.
#[derive(Debug)]
pub struct AccountService {
    ports: AccountPorts,
    key: ServerKey,
    policy: AccountPolicy,
    per_ip: WindowLimiter,
    global: WindowLimiter,
    captcha: Option<Arc<CaptchaService>>,
    /// `send_code` calls per IP and hour that need no captcha; `None` when none ever does.
    captcha_free: Option<WindowLimiter>,
    sessions: SessionCache,
    profiles: ReadCache<UserId, Arc<UserProfile>>,
}

impl AccountService {
    /// Builds the service. `key` keys the hashes of SMS codes.
    pub fn new(ports: AccountPorts, key: ServerKey, policy: AccountPolicy) -> Self {
        let per_ip = WindowLimiter::new(policy.sms_per_ip_hourly, HOUR, 100_000);
        let global = WindowLimiter::new(policy.sms_global_hourly, HOUR, 1);
        let sessions = SessionCache::new(policy.session_cache_ms, policy.session_cache_entries);
        let profiles = ReadCache::new(policy.profile_cache_ms, policy.profile_cache_entries);
        Self {
            ports,
            key,
            policy,
            per_ip,
            global,
            captcha: None,
            captcha_free: None,
            sessions,
            profiles,
        }
    }

    /// Attaches the image captcha: from then on [`AccountService::send_code`] asks for a solved
    /// one as its policy says ([`crate::captcha::CaptchaPolicy::required_after`]), and
    /// [`AccountService::issue_captcha`] hands them out. Without it no captcha is ever asked
    /// for, and captcha fields sent to `send_code` are ignored.
    pub fn with_captcha(mut self, captcha: Arc<CaptchaService>) -> Self {
        self.captcha_free = captcha
            .policy()
            .required_after
            .map(|free| WindowLimiter::new(free, HOUR, 100_000));
        self.captcha = Some(captcha);
        self
    }

    fn captcha(&self) -> DomainResult<&CaptchaService> {
        self.captcha
            .as_deref()
            .ok_or_else(|| DomainError::Unavailable("image captchas are not configured".into()))
    }

    /// A new image captcha for `client_ip` (see [`CaptchaService::issue`]).
    pub async fn issue_captcha(&self, client_ip: &str) -> DomainResult<IssuedCaptcha> {
        self.captcha()?.issue(client_ip).await
    }

    /// The PNG of a live captcha (see [`CaptchaService::image`]).
    pub async fn captcha_image(&self, id: &CaptchaId) -> DomainResult<Vec<u8>> {
        self.captcha()?.image(id).await
    }

    /// The policy in force.
    pub fn policy(&self) -> &AccountPolicy {
        &self.policy
    }

    /// The ports, for services that share them.
    pub fn ports(&self) -> &AccountPorts {
        &self.ports
    }

    fn now(&self) -> Millis {
        self.ports.clock.now()
    }

    fn code_hash(&self, phone: &Phone, code: &str) -> String {
        self.key
            .keyed_hash("sms-code", &format!("{}:{code}", phone.e164()))
    }

    /// Sends a fresh code to `phone`, killing the previous one.
    ///
    /// Refused with [`DomainError::RateLimited`] within a minute of the last code to the same
    /// phone, or when the client's IP or everyone together sent too many this hour. Once the
    /// client's IP has sent the captcha policy's free allowance this hour, each further call
    /// needs a solved captcha: [`DomainError::CaptchaRequired`] without one. A captcha that is
    /// sent is always checked and used up, needed or not: [`DomainError::WrongCaptcha`] when
    /// its answer is wrong or it is unknown, used or expired.
    pub async fn send_code(
        &self,
        phone: &Phone,
        client_ip: &str,
        captcha: Option<&CaptchaSolution>,
    ) -> DomainResult<()> {
        let now = self.now();
        // The per-phone throttle is checked before the IP and global counters so that a client
        // retrying too fast does not use up its hourly allowance.
        if let Some(existing) = self.ports.store.get_code(phone).await? {
            let wait = existing.sent_at + self.policy.code_resend_ms - now;
            if wait > 0 {
                return Err(rate_limited(wait));
            }
        }
        self.require_captcha(client_ip, captcha, now).await?;
        self.per_ip.hit(client_ip, now)?;
        self.global.hit("*", now)?;
        let code = sms_code(self.ports.random.as_ref());
        let record = CodeRecord {
            code_hash: self.code_hash(phone, &code),
            sent_at: now,
            expires_at: now + self.policy.code_ttl_ms,
            attempts: 0,
        };
        let stored = self
            .ports
            .store
            .put_code(phone, record, now - self.policy.code_resend_ms)
            .await?;
        if !stored {
            // A concurrent send won the minute.
            return Err(rate_limited(self.policy.code_resend_ms));
        }
        let purpose = if self.ports.store.phone_registered(phone).await? {
            SmsPurpose::ResetPassword
        } else {
            SmsPurpose::Register
        };
        self.ports
            .sms
            .send(&SmsMessage {
                phone: phone.clone(),
                code,
                purpose,
                sent_at: now,
            })
            .await
    }

    async fn require_captcha(
        &self,
        client_ip: &str,
        solution: Option<&CaptchaSolution>,
        now: Millis,
    ) -> DomainResult<()> {
        let Some(captcha) = &self.captcha else {
            return Ok(());
        };
        if let Some(solution) = solution {
            return captcha.check(solution).await;
        }
        match &self.captcha_free {
            // Refused once the free allowance is used up (or the tracker is full of live IPs,
            // when asking everyone for a captcha is the safe answer).
            Some(free) => free
                .hit(client_ip, now)
                .map_err(|_| DomainError::CaptchaRequired),
            None => Ok(()),
        }
    }

    /// Checks a code. Success consumes it and returns a single-use verification token bound to
    /// the phone.
    ///
    /// Errors: [`DomainError::WrongCode`] for a wrong, unknown or already used code;
    /// [`DomainError::CodeExpired`] for an expired code or one killed by too many wrong tries.
    pub async fn verify_code(&self, phone: &Phone, code: &str) -> DomainResult<Token> {
        if code.is_empty() || code.len() > 16 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DomainError::invalid(
                "code",
                "must be the digits sent by SMS",
            ));
        }
        let now = self.now();
        let Some(record) = self.ports.store.get_code(phone).await? else {
            return Err(DomainError::WrongCode);
        };
        if record.expires_at <= now || record.attempts >= self.policy.code_max_attempts {
            return Err(DomainError::CodeExpired);
        }
        let hash = self.code_hash(phone, code);
        if !constant_time_eq(hash.as_bytes(), record.code_hash.as_bytes()) {
            self.ports.store.add_code_attempt(phone).await?;
            return Err(DomainError::WrongCode);
        }
        let token = Token::generate(self.ports.random.as_ref());
        let consumed = self
            .ports
            .store
            .consume_code(
                phone,
                &hash,
                now,
                self.policy.code_max_attempts,
                NewVerificationToken {
                    token_hash: token.hash(),
                    phone: phone.clone(),
                    expires_at: now + self.policy.token_ttl_ms,
                },
            )
            .await?;
        if consumed {
            Ok(token)
        } else {
            Err(DomainError::WrongCode)
        }
    }

    /// Whether `phone` may register: true unless a registered account holds it. A placeholder
    /// made by someone's phone-book upload does not count.
    pub async fn check_phone_available(&self, phone: &Phone) -> DomainResult<bool> {
        Ok(!self.ports.store.phone_registered(phone).await?)
    }

    /// Creates the account of the phone proven by `verification_token` and logs it in.
    ///
    /// Errors: [`DomainError::NotFound`] (`"verification_token"`) for an unknown, used or
    /// expired token; [`DomainError::Conflict`] if the phone registered meanwhile.
    pub async fn register(
        &self,
        nickname: Nickname,
        password: Password,
        verification_token: &str,
    ) -> DomainResult<LoggedIn> {
        let token =
            Token::parse(verification_token).ok_or(DomainError::NotFound("verification_token"))?;
        let password_hash = self.ports.hasher.hash(password.expose()).await?;
        let now = self.now();
        let candidate_id = UserId::from_random(self.ports.random.next_u64());
        let user_id = self
            .ports
            .store
            .register(
                &token.hash(),
                NewAccount {
                    candidate_id,
                    nickname: nickname.into_inner(),
                    password_hash,
                    now,
                },
            )
            .await?;
        self.open_session(user_id, now).await
    }

    /// Logs in with phone and password.
    ///
    /// An unknown phone and a wrong password both answer [`DomainError::WrongCredentials`], after
    /// the same bcrypt work. Repeated failures lock the account for a growing time; while it is
    /// locked even the right password answers [`DomainError::AccountLocked`].
    pub async fn login(&self, phone: &Phone, password: &str) -> DomainResult<LoggedIn> {
        let Some(record) = self.ports.store.find_login(phone).await? else {
            // Same cost as a real check, so timing does not tell whether the phone exists.
            let dummy = self.ports.hasher.dummy_hash().to_owned();
            let _ = self.ports.hasher.verify(password, &dummy).await?;
            return Err(DomainError::WrongCredentials);
        };
        let now = self.now();
        if record.throttle.locked_until > now {
            return Err(locked(record.throttle.locked_until - now));
        }
        if !self
            .ports
            .hasher
            .verify(password, &record.password_hash)
            .await?
        {
            return Err(self.record_failure(&record, now).await);
        }
        if record.throttle != LoginThrottle::default() {
            self.ports
                .store
                .set_throttle(record.user_id, LoginThrottle::default())
                .await?;
        }
        if self.ports.hasher.needs_upgrade(&record.password_hash) {
            let hash = self.ports.hasher.hash(password).await?;
            self.ports
                .store
                .set_password_hash(record.user_id, &hash, None)
                .await?;
        }
        self.open_session(record.user_id, now).await
    }

    async fn record_failure(&self, record: &LoginRecord, now: Millis) -> DomainError {
        let next = next_throttle(&self.policy, record.throttle, now);
        if let Err(e) = self.ports.store.set_throttle(record.user_id, next).await {
            return e;
        }
        if next.locked_until > now {
            locked(next.locked_until - now)
        } else {
            DomainError::WrongCredentials
        }
    }

    async fn open_session(&self, user_id: UserId, now: Millis) -> DomainResult<LoggedIn> {
        let token = Token::generate(self.ports.random.as_ref());
        self.ports
            .store
            .create_session(SessionRecord {
                token_hash: token.hash(),
                user_id,
                created_at: now,
                last_seen_at: now,
            })
            .await?;
        Ok(LoggedIn { user_id, token })
    }

    /// Resolves a session secret (cookie or Bearer value) to its caller.
    ///
    /// A malformed, unknown, revoked, idle or too old session answers
    /// [`DomainError::Unauthenticated`]; dead sessions are deleted on sight.
    pub async fn authenticate(&self, raw_token: &str) -> DomainResult<Caller> {
        let token = Token::parse(raw_token).ok_or(DomainError::Unauthenticated)?;
        let hash = token.hash();
        let now = self.now();
        let session = match self.sessions.get(&hash, now) {
            Some(session) => session,
            None => {
                let ticket = self.sessions.ticket();
                let Some(session) = self.ports.store.get_session(&hash).await? else {
                    return Err(DomainError::Unauthenticated);
                };
                self.sessions.put(&session, now, ticket);
                session
            }
        };
        if now - session.last_seen_at >= self.policy.session_idle_ms
            || now - session.created_at >= self.policy.session_max_ms
        {
            let deleted = self.ports.store.delete_session(&hash).await;
            self.sessions.forget(&hash);
            deleted?;
            return Err(DomainError::Unauthenticated);
        }
        // Touching at most once a minute keeps reads from turning into writes.
        if now - session.last_seen_at >= MINUTE {
            self.ports.store.touch_session(&hash, now).await?;
            self.sessions.touched(&hash, now);
        }
        Ok(Caller {
            user_id: session.user_id,
            session_hash: hash,
        })
    }

    /// Revokes the caller's session.
    pub async fn logout(&self, caller: &Caller) -> DomainResult<()> {
        let deleted = self.ports.store.delete_session(&caller.session_hash).await;
        // Even after an error: the delete may have committed, and forgetting costs one read.
        self.sessions.forget(&caller.session_hash);
        deleted
    }

    /// Changes the password after checking the old one, and revokes every other session.
    ///
    /// A wrong old password answers [`DomainError::WrongCredentials`].
    pub async fn change_password(
        &self,
        caller: &Caller,
        old_password: &str,
        new_password: Password,
    ) -> DomainResult<()> {
        let record = self
            .ports
            .store
            .login_by_id(caller.user_id)
            .await?
            .ok_or(DomainError::Unauthenticated)?;
        if !self
            .ports
            .hasher
            .verify(old_password, &record.password_hash)
            .await?
        {
            return Err(DomainError::WrongCredentials);
        }
        let hash = self.ports.hasher.hash(new_password.expose()).await?;
        let revoked = self
            .ports
            .store
            .set_password_hash(
                caller.user_id,
                &hash,
                Some(Some(caller.session_hash.clone())),
            )
            .await;
        self.sessions
            .forget_user(caller.user_id, Some(&caller.session_hash));
        revoked
    }

    /// Sets a new password for the phone proven by `verification_token`, and revokes every
    /// session of the account. Errors: [`DomainError::NotFound`] (`"verification_token"`).
    pub async fn reset_password(
        &self,
        password: Password,
        verification_token: &str,
    ) -> DomainResult<UserId> {
        let token =
            Token::parse(verification_token).ok_or(DomainError::NotFound("verification_token"))?;
        let hash = self.ports.hasher.hash(password.expose()).await?;
        let user = self
            .ports
            .store
            .reset_password(&token.hash(), self.now(), &hash)
            .await?;
        self.sessions.forget_user(user, None);
        Ok(user)
    }

    /// Sets the caller's nickname.
    pub async fn set_nickname(&self, caller: &Caller, nickname: Nickname) -> DomainResult<()> {
        self.change_profile(caller, ProfileChange::Nickname(nickname.into_inner()))
            .await
    }

    /// Sets the caller's portrait URL.
    pub async fn set_portrait_uri(&self, caller: &Caller, uri: ImageUri) -> DomainResult<()> {
        self.change_profile(caller, ProfileChange::PortraitUri(uri.into_inner()))
            .await
    }

    /// Replaces the caller's privacy settings.
    pub async fn set_privacy(&self, caller: &Caller, privacy: Privacy) -> DomainResult<()> {
        self.change_profile(caller, ProfileChange::Privacy(privacy))
            .await
    }

    /// Changes the caller's optional profile details (`None` leaves a field, `Some(None)` clears
    /// it). A user name is at most 32 characters, a gender at most 16, a birth date is a real
    /// `YYYY-MM-DD` day, and an email has one `@` with text on both sides (at most 254 bytes).
    pub async fn set_details(
        &self,
        caller: &Caller,
        user_name: Option<Option<String>>,
        gender: Option<Option<String>>,
        birth_date: Option<Option<String>>,
        email: Option<Option<String>>,
    ) -> DomainResult<()> {
        if let Some(Some(v)) = &user_name {
            check_text("user_name", v, 32)?;
        }
        if let Some(Some(v)) = &gender {
            check_text("gender", v, 16)?;
        }
        if let Some(Some(v)) = &birth_date {
            check_date(v)?;
        }
        if let Some(Some(v)) = &email {
            check_email(v)?;
        }
        self.change_profile(
            caller,
            ProfileChange::Details {
                user_name,
                gender,
                birth_date,
                email,
            },
        )
        .await
    }

    async fn change_profile(&self, caller: &Caller, change: ProfileChange) -> DomainResult<()> {
        let changed = self
            .ports
            .store
            .update_profile(caller.user_id, change, self.now())
            .await;
        // Even after an error: the change may have committed, and forgetting costs one read.
        self.profiles.forget(&caller.user_id);
        changed
    }

    /// A registered user by id, read from the store. Placeholders and unknown ids answer
    /// [`DomainError::NotFound`]. Use it to read-modify-write the user's own record.
    pub async fn get_user(&self, id: UserId) -> DomainResult<UserProfile> {
        match self.ports.store.get_user(id).await? {
            Some(user) if user.registered => Ok(user),
            _ => Err(DomainError::NotFound("user")),
        }
    }

    /// A registered user by id, for showing to others: [`AccountService::get_user`], served
    /// again for [`AccountPolicy::profile_cache_ms`] after each read. A change made through
    /// this service shows at once; one made by another process, within that interval.
    pub async fn profile(&self, id: UserId) -> DomainResult<Arc<UserProfile>> {
        let now = self.now();
        if let Some(user) = self.profiles.get(&id, now) {
            return Ok(user);
        }
        let ticket = self.profiles.ticket();
        let user = Arc::new(self.get_user(id).await?);
        self.profiles.put(id, Arc::clone(&user), now, ticket);
        Ok(user)
    }

    /// A registered user who may be found by phone. Anyone else answers
    /// [`DomainError::NotFound`], so the answer does not tell a hidden account from none.
    pub async fn find_user(&self, phone: &Phone) -> DomainResult<UserProfile> {
        match self.ports.store.find_by_phone(phone).await? {
            Some(user) if user.registered && user.privacy.findable_by_phone => Ok(user),
            _ => Err(DomainError::NotFound("user")),
        }
    }

    /// Whether the database answers.
    pub async fn health(&self) -> DomainResult<()> {
        self.ports.store.ping().await
    }
}

/// The counters after one more failed login at `now`: failures are counted in a window, and
/// reaching the threshold locks the account for `base × 2^(level)`, capped.
pub fn next_throttle(policy: &AccountPolicy, current: LoginThrottle, now: Millis) -> LoginThrottle {
    let mut t = current;
    if now - t.window_start >= policy.lock_window_ms {
        t.failures = 0;
        t.window_start = now;
    }
    t.failures += 1;
    if t.failures >= policy.lock_threshold {
        let shift = u32::try_from(t.lock_level.clamp(0, 20)).unwrap_or(0);
        let length = policy
            .lock_base_ms
            .saturating_mul(1_i64 << shift)
            .min(policy.lock_max_ms);
        t.locked_until = now + length;
        t.lock_level = t.lock_level.saturating_add(1);
        t.failures = 0;
        t.window_start = now;
    }
    t
}

fn check_text(field: &'static str, v: &str, max_chars: usize) -> DomainResult<()> {
    if v.trim().is_empty() || v.chars().count() > max_chars || v.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            field,
            format!("must be 1 to {max_chars} printable characters"),
        ));
    }
    Ok(())
}

fn check_date(v: &str) -> DomainResult<()> {
    match crate::dates::parse_date(v) {
        Some((year, _, _)) if year >= 1900 => Ok(()),
        _ => Err(DomainError::invalid(
            "birth_date",
            "must be a date YYYY-MM-DD",
        )),
    }
}

fn check_email(v: &str) -> DomainResult<()> {
    let ok = v.len() <= 254
        && !v.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(v.split_once('@'), Some((local, domain))
            if !local.is_empty() && domain.contains('.') && !domain.contains('@')
                && !domain.starts_with('.') && !domain.ends_with('.'));
    if ok {
        Ok(())
    } else {
        Err(DomainError::invalid("email", "is not an email address"))
    }
}

fn secs_ceil(ms: Millis) -> u64 {
    u64::try_from(ms.max(1000)).unwrap_or(1000).div_ceil(1000)
}

fn rate_limited(ms: Millis) -> DomainError {
    DomainError::RateLimited {
        retry_after_secs: secs_ceil(ms),
    }
}

fn locked(ms: Millis) -> DomainError {
    DomainError::AccountLocked {
        retry_after_secs: secs_ceil(ms),
    }
}

/// Compares two secrets' hashes in time independent of where they differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests;
