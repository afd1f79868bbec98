//! The plain-JSON error envelope and list paging of the friends (001) and contacts v1 (000) APIs.

use actix_web::{
    error::{JsonPayloadError, PathError, QueryPayloadError},
    http::{header, Method, StatusCode},
    web, HttpRequest, HttpResponse, HttpResponseBuilder, Resource, ResponseError, Route,
};
use kith_domain::ids::UserId;
use kith_domain::DomainError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::common::{Face, MAX_BODY_BYTES};

/// The REST face, for [`crate::common::Authed`].
#[derive(Debug)]
pub struct Rest;

impl Face for Rest {
    fn error(err: DomainError) -> actix_web::Error {
        RestError(err).into()
    }
}

/// A domain error on its way to a REST client.
#[derive(Debug)]
pub struct RestError(pub DomainError);

impl From<DomainError> for RestError {
    fn from(e: DomainError) -> Self {
        Self(e)
    }
}

impl std::fmt::Display for RestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// What a REST handler returns.
pub type RestResult = Result<HttpResponse, RestError>;

/// The HTTP status of a domain error in the REST faces.
pub fn status_of(err: &DomainError) -> StatusCode {
    use DomainError as E;
    match err {
        E::Invalid { .. } | E::WrongCode | E::CodeExpired | E::WrongCaptcha => {
            StatusCode::BAD_REQUEST
        }
        // The client's sync position is gone; 410 says "start again" to a REST client.
        E::ResyncRequired { .. } => StatusCode::GONE,
        E::CaptchaRequired => StatusCode::FORBIDDEN,
        E::NotFound(_) => StatusCode::NOT_FOUND,
        E::Forbidden(_) => StatusCode::FORBIDDEN,
        E::Unauthenticated | E::WrongCredentials => StatusCode::UNAUTHORIZED,
        E::Conflict(_) | E::AlreadyFriends => StatusCode::CONFLICT,
        // A locked account is a "come back later", like a throttle, and carries the same wait.
        E::RateLimited { .. } | E::AccountLocked { .. } => StatusCode::TOO_MANY_REQUESTS,
        E::Unavailable(_) | E::NotConfigured(_) => StatusCode::SERVICE_UNAVAILABLE,
        E::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The `{"code", "message"[, "field"]}` object describing `err`; causes of 5xx stay in the logs.
pub fn error_object(err: &DomainError) -> Value {
    use DomainError as E;
    let code = match err {
        E::Invalid { .. } => "invalid",
        E::NotFound(_) => "not_found",
        E::Forbidden(_) => "forbidden",
        E::Unauthenticated => "unauthenticated",
        E::Conflict(_) => "conflict",
        E::AlreadyFriends => "already_friends",
        E::WrongCode => "wrong_code",
        E::CodeExpired => "code_expired",
        E::WrongCredentials => "wrong_credentials",
        E::AccountLocked { .. } => "account_locked",
        E::RateLimited { .. } => "rate_limited",
        E::ResyncRequired { .. } => "resync_required",
        E::CaptchaRequired => "captcha_required",
        E::WrongCaptcha => "wrong_captcha",
        E::Unavailable(_) => "unavailable",
        E::NotConfigured(_) => "not_configured",
        E::Internal(_) => "internal",
    };
    let message = match err {
        E::Unavailable(_) => "service unavailable, try again later".to_owned(),
        E::Internal(_) => "internal error".to_owned(),
        E::Unauthenticated => "not logged in: send the session cookie or a Bearer token".into(),
        other => other.to_string(),
    };
    match err {
        E::Invalid { field, .. } => json!({"code": code, "field": field, "message": message}),
        _ => json!({"code": code, "message": message}),
    }
}

impl ResponseError for RestError {
    fn status_code(&self) -> StatusCode {
        status_of(&self.0)
    }

    fn error_response(&self) -> HttpResponse {
        match &self.0 {
            DomainError::Internal(cause) => tracing::error!(%cause, "internal error"),
            DomainError::Unavailable(cause) => tracing::warn!(%cause, "dependency unavailable"),
            _ => {}
        }
        let mut res = HttpResponse::build(status_of(&self.0));
        match &self.0 {
            DomainError::AccountLocked { retry_after_secs }
            | DomainError::RateLimited { retry_after_secs } => {
                res.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            DomainError::Unauthenticated => {
                res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            _ => {}
        }
        res.json(json!({"error": error_object(&self.0)}))
    }
}

/// `{"error": {...}}`: the body of every REST error answer (documents 000, 001, 002).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorEnvelope {
    /// What went wrong.
    pub error: ErrorObject,
}

/// The error object of [`ErrorEnvelope`], as [`error_object`] writes it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorObject {
    /// For programs: which rule refused the call.
    pub code: ErrorCode,
    /// For people: what to change.
    pub message: String,
    /// The request field at fault, for `invalid` (`body`, `path` and `query` when the request
    /// could not be decoded at all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub field: Option<String>,
}

/// The `code` of an [`ErrorObject`], one per kind of refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: a field breaks its rules.
    Invalid,
    /// 404: no such user, request, contact or tag (or not one the caller may see).
    NotFound,
    /// 403: the relationship rules refuse it (for example, a block).
    Forbidden,
    /// 401: no session, or a dead one.
    Unauthenticated,
    /// 409: a conflicting state or a stale `_rev`.
    Conflict,
    /// 409: already friends.
    AlreadyFriends,
    /// 400: wrong SMS code.
    WrongCode,
    /// 400: expired SMS code.
    CodeExpired,
    /// 401: wrong credentials.
    WrongCredentials,
    /// 429: account locked for a while.
    AccountLocked,
    /// 429: over a frequency limit.
    RateLimited,
    /// 410: sync again from version 0.
    ResyncRequired,
    /// 403: an image captcha must be solved first.
    CaptchaRequired,
    /// 400: wrong image captcha.
    WrongCaptcha,
    /// 503: the database is unreachable; try again later.
    Unavailable,
    /// 500: a bug; the cause is in the server's log.
    Internal,
    /// 413: the body is over 1 MiB.
    PayloadTooLarge,
}

/// The faults every REST call behind a session can answer.
#[derive(Debug, utoipa::IntoResponses)]
pub enum SessionFaults {
    /// No session cookie or Bearer token, or a dead one (`unauthenticated`; the answer carries
    /// `WWW-Authenticate: Bearer`).
    #[response(
        status = 401,
        example = json!({"error": {"code": "unauthenticated",
            "message": "not logged in: send the session cookie or a Bearer token"}})
    )]
    Unauthenticated(ErrorEnvelope),
    /// The database is unreachable or the server is overloaded: try again later
    /// (`unavailable`).
    #[response(
        status = 503,
        example = json!({"error": {"code": "unavailable",
            "message": "service unavailable, try again later"}})
    )]
    Unavailable(ErrorEnvelope),
}

/// The faults of a call that reads a JSON body: a body over 1 MiB.
#[derive(Debug, utoipa::IntoResponses)]
pub enum BodyFaults {
    /// The body is over 1 MiB (`payload_too_large`).
    #[response(
        status = 413,
        example = json!({"error": {"code": "payload_too_large",
            "message": "request body over 1 MiB"}})
    )]
    TooLarge(ErrorEnvelope),
}

/// Renames the field of an `Invalid` error, so that the client reads the name its API uses.
pub fn rename(err: DomainError, from: &str, to: &'static str) -> DomainError {
    match err {
        DomainError::Invalid { field, reason } if field == from => {
            DomainError::Invalid { field: to, reason }
        }
        other => other,
    }
}

/// A user id sent as a JSON number, checked and named as the API names it.
pub fn user_id(field: &'static str, raw: i64) -> Result<UserId, DomainError> {
    UserId::new(raw).map_err(|e| rename(e, "user_id", field))
}

/// A user id sent in the path, checked and named as the API names it.
pub fn path_user_id(field: &'static str, raw: &str) -> Result<UserId, DomainError> {
    UserId::parse(raw).map_err(|e| rename(e, "user_id", field))
}

/// JSON body decoding for REST routes: 400 in the envelope for a bad body, 413 for a huge one.
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
                    HttpResponse::PayloadTooLarge().json(json!({"error": {
                        "code": "payload_too_large",
                        "message": "request body over 1 MiB",
                    }})),
                )
                .into();
            }
            let reason = match &err {
                JsonPayloadError::Deserialize(e) => format!("malformed JSON: {e}"),
                JsonPayloadError::ContentType => "expected a JSON body".into(),
                _ => "could not read the body".into(),
            };
            RestError(DomainError::invalid("body", reason)).into()
        })
}

/// Path parameter decoding for REST routes.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err: PathError, _| {
        RestError(DomainError::invalid("path", err.to_string())).into()
    })
}

/// Query decoding for REST routes.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err: QueryPayloadError, _| {
        RestError(DomainError::invalid("query", err.to_string())).into()
    })
}

/// The answer for a path under a REST mount that no route serves.
pub async fn no_route() -> HttpResponse {
    HttpResponse::NotFound()
        .json(json!({"error": {"code": "not_found", "message": "no such path"}}))
}

/// A route of `path` answering each `(method, route)` pair, and any other method with 405, an
/// `Allow` header and the REST envelope, rather than falling through to [`no_route`]'s 404
/// (a route added with `Scope::route` carries its method guard on a resource of its own).
pub fn resource<const N: usize>(path: &str, routes: [(Method, Route); N]) -> Resource {
    crate::common::resource_with_405(path, routes, method_not_allowed)
}

fn method_not_allowed(allow: &str) -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .insert_header((header::ALLOW, allow.to_owned()))
        .json(json!({"error": {
            "code": "method_not_allowed",
            "message": format!("method not allowed here; use {allow}"),
        }}))
}

/// The `limit` and `cursor` query parameters of a list, as sent.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Rows per page, from 1 to the server's cap (the cap when absent). A cut list carries
    /// `Link: <...>; rel="next"`.
    #[param(value_type = Option<u32>, minimum = 1)]
    limit: Option<String>,
    /// The `cursor` from the previous page's `Link` header.
    #[param(pattern = r"^([1-9][0-9]{0,15})?$")]
    cursor: Option<String>,
}

/// The value of an optional parameter, trimmed; blank counts as absent, since clients fill
/// every field of a form, used or not.
pub(crate) fn present(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// A checked page request: how many rows, and after which user id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// Rows per page, within the service's cap.
    pub limit: u32,
    /// The last user id of the previous page.
    pub after: Option<UserId>,
}

impl PageQuery {
    /// Checks the parameters: `limit` in `1..=cap` (the cap when absent), `cursor` a user id.
    /// Empty values count as absent, so clients may always send both keys.
    pub fn check(&self, cap: u32) -> Result<Paging, DomainError> {
        let limit = match present(&self.limit) {
            None => cap,
            Some(raw) => raw
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=cap).contains(n))
                .ok_or_else(|| {
                    DomainError::invalid("limit", format!("must be an integer from 1 to {cap}"))
                })?,
        };
        let after = present(&self.cursor)
            .map(|raw| {
                UserId::parse(raw).map_err(|_| {
                    DomainError::invalid("cursor", "must be a user id from a Link header")
                })
            })
            .transpose()?;
        Ok(Paging { limit, after })
    }
}

/// Adds `Link: <path?limit=N&cursor=ID>; rel="next"` when the list was cut at `next`.
pub fn link_next(
    res: &mut HttpResponseBuilder,
    req: &HttpRequest,
    paging: Paging,
    next: Option<UserId>,
) {
    if let Some(next) = next {
        let link = format!(
            "<{}?limit={}&cursor={}>; rel=\"next\"",
            req.path(),
            paging.limit,
            next
        );
        res.insert_header((header::LINK, link));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// The documented schema must describe what the handlers really send: every error the
    /// domain can raise decodes strictly into [`ErrorObject`], with a code of the right status.
    #[test]
    fn error_objects_match_the_documented_schema() {
        use DomainError as E;
        let all = [
            E::invalid("limit", "bad"),
            E::NotFound("user"),
            E::Forbidden("blocked"),
            E::Unauthenticated,
            E::Conflict("rev"),
            E::AlreadyFriends,
            E::WrongCode,
            E::CodeExpired,
            E::WrongCredentials,
            E::AccountLocked {
                retry_after_secs: 3,
            },
            E::RateLimited {
                retry_after_secs: 3,
            },
            E::ResyncRequired { asked: 1, floor: 2 },
            E::CaptchaRequired,
            E::WrongCaptcha,
            E::Unavailable("db".into()),
            E::Internal("bug".into()),
        ];
        for err in all {
            let obj: ErrorObject = serde_json::from_value(error_object(&err)).unwrap();
            let status = status_of(&err).as_u16();
            let doc = serde_json::to_value(obj.code).unwrap();
            assert_eq!(
                obj.field.is_some(),
                matches!(err, E::Invalid { .. }),
                "{err:?}"
            );
            // The status each code's rustdoc (and so the document) names.
            let expected = match obj.code {
                ErrorCode::Invalid
                | ErrorCode::WrongCode
                | ErrorCode::CodeExpired
                | ErrorCode::WrongCaptcha => 400,
                ErrorCode::Unauthenticated | ErrorCode::WrongCredentials => 401,
                ErrorCode::Forbidden | ErrorCode::CaptchaRequired => 403,
                ErrorCode::NotFound => 404,
                ErrorCode::Conflict | ErrorCode::AlreadyFriends => 409,
                ErrorCode::ResyncRequired => 410,
                ErrorCode::PayloadTooLarge => 413,
                ErrorCode::AccountLocked | ErrorCode::RateLimited => 429,
                ErrorCode::Internal => 500,
                ErrorCode::Unavailable => 503,
            };
            assert_eq!(status, expected, "{doc} for {err:?}");
        }
    }
}
