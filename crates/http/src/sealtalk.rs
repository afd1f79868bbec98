//! The SealTalk envelope shared by the user (003) and friendship (004) APIs:
//! `{"code": N, "result": ...}`, with rule outcomes as codes in a 200 and faults as HTTP statuses.

use actix_web::{
    error::{JsonPayloadError, PathError, QueryPayloadError},
    http::{header, StatusCode},
    web, HttpRequest, HttpResponse, ResponseError,
};
use kith_domain::DomainError;
use serde::Serialize;
use serde_json::json;

use crate::common::{Face, MAX_BODY_BYTES};

/// Code for a wrong SMS code, and for a wrong phone or password.
pub const CODE_WRONG: i32 = 1000;
/// Code for an expired SMS code.
pub const CODE_EXPIRED: i32 = 2000;
/// Code for an account locked after repeated failed logins (Kith's addition; distinct from 1000).
pub const CODE_LOCKED: i32 = 3000;
/// Code for a throttled call (the document's "over the frequency limit").
pub const CODE_RATE_LIMITED: i32 = 5000;
/// Code for a sync from a version older than the compaction horizon: sync again from 0
/// (Kith's addition, documented in docs/sync.md).
pub const CODE_RESYNC: i32 = 4000;
/// Code for a `send_code` that needs a solved image captcha first (Kith's addition).
pub const CODE_CAPTCHA_REQUIRED: i32 = 6000;
/// Code for a wrong, used or expired image captcha answer (Kith's addition).
pub const CODE_WRONG_CAPTCHA: i32 = 6001;

/// The SealTalk face, for [`crate::common::Authed`].
#[derive(Debug)]
pub struct SealTalk;

impl Face for SealTalk {
    fn error(err: DomainError) -> actix_web::Error {
        SealError(err).into()
    }
}

/// A domain error on its way to a SealTalk client.
#[derive(Debug)]
pub struct SealError(pub DomainError);

impl From<DomainError> for SealError {
    fn from(e: DomainError) -> Self {
        Self(e)
    }
}

impl std::fmt::Display for SealError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// What a handler returns.
pub type SealResult = Result<HttpResponse, SealError>;

impl SealError {
    fn parts(&self) -> (StatusCode, i32, String) {
        use DomainError as E;
        let http = |s: StatusCode| (s, i32::from(s.as_u16()));
        let (status, code) = match &self.0 {
            E::Invalid { .. } | E::Conflict(_) | E::AlreadyFriends => http(StatusCode::BAD_REQUEST),
            E::NotFound(_) => http(StatusCode::NOT_FOUND),
            E::Forbidden(_) => http(StatusCode::FORBIDDEN),
            E::Unauthenticated => http(StatusCode::UNAUTHORIZED),
            E::WrongCode | E::WrongCredentials => (StatusCode::OK, CODE_WRONG),
            E::CodeExpired => (StatusCode::OK, CODE_EXPIRED),
            E::AccountLocked { .. } => (StatusCode::OK, CODE_LOCKED),
            E::RateLimited { .. } => (StatusCode::OK, CODE_RATE_LIMITED),
            E::ResyncRequired { .. } => (StatusCode::OK, CODE_RESYNC),
            E::CaptchaRequired => (StatusCode::OK, CODE_CAPTCHA_REQUIRED),
            E::WrongCaptcha => (StatusCode::OK, CODE_WRONG_CAPTCHA),
            E::Unavailable(_) => http(StatusCode::SERVICE_UNAVAILABLE),
            E::Internal(_) => http(StatusCode::INTERNAL_SERVER_ERROR),
        };
        let message = match &self.0 {
            E::Unavailable(_) => "service unavailable, try again later".to_owned(),
            E::Internal(_) => "internal error".to_owned(),
            E::Unauthenticated => "not logged in: send the session cookie or a Bearer token".into(),
            other => other.to_string(),
        };
        (status, code, message)
    }
}

impl ResponseError for SealError {
    fn status_code(&self) -> StatusCode {
        self.parts().0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, code, message) = self.parts();
        match &self.0 {
            DomainError::Internal(cause) => tracing::error!(%cause, "internal error"),
            DomainError::Unavailable(cause) => tracing::warn!(%cause, "dependency unavailable"),
            _ => {}
        }
        let mut res = HttpResponse::build(status);
        let retry = match &self.0 {
            DomainError::AccountLocked { retry_after_secs }
            | DomainError::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        };
        match retry {
            Some(secs) => {
                res.insert_header((header::RETRY_AFTER, secs.to_string()));
                res.json(json!({"code": code, "message": message, "result": {"retryAfter": secs}}))
            }
            None => res.json(json!({"code": code, "message": message})),
        }
    }
}

/// `{"code": 200}`.
pub fn ok() -> HttpResponse {
    HttpResponse::Ok().json(json!({"code": 200}))
}

/// `{"code": 200, "result": result}`.
pub fn ok_result<T: Serialize>(result: T) -> HttpResponse {
    HttpResponse::Ok().json(json!({"code": 200, "result": result}))
}

/// JSON body decoding for SealTalk routes: 400 in the envelope for a bad body, 413 for a huge one.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(MAX_BODY_BYTES)
        .content_type_required(false)
        .error_handler(|err, _req: &HttpRequest| {
            let too_large = matches!(
                err,
                JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. }
            );
            if too_large {
                return actix_web::error::InternalError::from_response(
                    "too large",
                    HttpResponse::PayloadTooLarge()
                        .json(json!({"code": 413, "message": "request body over 1 MiB"})),
                )
                .into();
            }
            SealError(DomainError::invalid("body", body_reason(&err))).into()
        })
}

fn body_reason(err: &JsonPayloadError) -> String {
    match err {
        JsonPayloadError::Deserialize(e) => format!("malformed JSON: {e}"),
        JsonPayloadError::ContentType => "expected a JSON body".into(),
        _ => "could not read the body".into(),
    }
}

/// Path parameter decoding for SealTalk routes.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err: PathError, _| {
        SealError(DomainError::invalid("path", err.to_string())).into()
    })
}

/// Query decoding for SealTalk routes.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err: QueryPayloadError, _| {
        SealError(DomainError::invalid("query", err.to_string())).into()
    })
}
