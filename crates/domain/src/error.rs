//! The domain's one error type: every rule violation a caller can see, and the few failures it cannot.

use thiserror::Error;

/// Result alias used by every fallible domain call.
pub type DomainResult<T> = Result<T, DomainError>;

/// Everything that can go wrong in a domain call. Adapters map each variant to their own envelope.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DomainError {
    /// A field failed validation. `field` names it as the API documents spell it.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The offending field.
        field: &'static str,
        /// Why it was refused, safe to show to the client.
        reason: String,
    },
    /// The thing asked for does not exist (or is not visible to the caller).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The caller may not do this to that thing.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// No valid session.
    #[error("not authenticated")]
    Unauthenticated,
    /// The request contradicts current state (for example a stale revision).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The SMS code is wrong, or was already used.
    #[error("wrong verification code")]
    WrongCode,
    /// The SMS code has expired or was killed by too many wrong tries.
    #[error("verification code expired")]
    CodeExpired,
    /// Phone and password do not match an account.
    #[error("wrong phone or password")]
    WrongCredentials,
    /// Too many failed logins: the account refuses logins until the lock ends.
    #[error("account temporarily locked")]
    AccountLocked {
        /// Seconds until a login may be tried again.
        retry_after_secs: u64,
    },
    /// A throttle refused the call.
    #[error("rate limited")]
    RateLimited {
        /// Seconds until the call may succeed.
        retry_after_secs: u64,
    },
    /// The two users are already friends.
    #[error("already friends")]
    AlreadyFriends,
    /// An incremental sync asked from a version whose change entries were compacted away: the
    /// client must sync again from version 0.
    #[error("sync version {asked} is older than the compaction floor {floor}: sync again from 0")]
    ResyncRequired {
        /// The version the client sent.
        asked: u64,
        /// The highest compacted version; syncs from above it still work.
        floor: u64,
    },
    /// The call needs a solved image captcha (`verifyId` and its answer) first.
    #[error("an image captcha is required: get one from /user/get_sms_img_code")]
    CaptchaRequired,
    /// The captcha answer is wrong, or the captcha expired or was already used.
    #[error("wrong or expired captcha")]
    WrongCaptcha,
    /// The deployment has not set up what the call needs (for example upload storage): not a
    /// passing outage, so clients are not told to try again.
    #[error("{0} is not configured on this server")]
    NotConfigured(&'static str),
    /// A dependency (database, SMS provider) is unreachable; the call may be retried.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected adapter failure. The text is for logs only, never for clients.
    #[error("internal error: {0}")]
    Internal(String),
}

impl DomainError {
    /// Shorthand for [`DomainError::Invalid`].
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
    }
}
