//! The SealTalk envelope shared by the user (003) and friendship (004) APIs:
//! `{"code": N, "result": ...}`, with rule outcomes as codes in a 200 and faults as HTTP statuses.

use actix_web::{
    error::{JsonPayloadError, PathError, QueryPayloadError},
    http::{header, Method, StatusCode},
    web, FromRequest, Handler, HttpRequest, HttpResponse, Responder, ResponseError,
};
use kith_domain::ids::UserId;
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
            // Issue 7: a throttle answers HTTP 429 with Retry-After; the body keeps 003's code.
            E::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, CODE_RATE_LIMITED),
            E::ResyncRequired { .. } => (StatusCode::OK, CODE_RESYNC),
            E::CaptchaRequired => (StatusCode::OK, CODE_CAPTCHA_REQUIRED),
            E::WrongCaptcha => (StatusCode::OK, CODE_WRONG_CAPTCHA),
            E::Unavailable(_) | E::NotConfigured(_) => http(StatusCode::SERVICE_UNAVAILABLE),
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

/// `{"code": 200, "result": result}`, serialised straight from `result`: going through
/// `json!` built (and dropped) a `serde_json::Value` tree first, a fifth of a 50-friend list's
/// instructions.
#[derive(Serialize)]
struct Envelope<T> {
    code: u16,
    result: T,
}

/// `{"code": 200, "result": result}`.
pub fn ok_result<T: Serialize>(result: T) -> HttpResponse {
    HttpResponse::Ok().json(Envelope { code: 200, result })
}

/// The body of [`ok_result`], written out to be kept ([`crate::rendered`]).
pub fn ok_result_body<T: Serialize>(result: T) -> Result<web::Bytes, SealError> {
    serde_json::to_vec(&Envelope { code: 200, result })
        .map(web::Bytes::from)
        .map_err(|e| SealError(DomainError::Internal(format!("writing an answer: {e}"))))
}

/// A 200 with a body from [`ok_result_body`].
pub fn ok_body(body: web::Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(header::ContentType::json())
        .body(body)
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

fn method_not_allowed(allow: &str) -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .insert_header((header::ALLOW, allow.to_owned()))
        .json(json!({"code": 405, "message": format!("method not allowed here; use {allow}")}))
}

/// A route of `path` answering `methods` with `handler`, and any other method with 405 and
/// `Allow` (rather than falling through to the 404 of unknown paths).
pub fn resource<F, Args>(path: &str, methods: &[Method], handler: F) -> actix_web::Resource
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    crate::common::resource_with_405(
        path,
        methods
            .iter()
            .map(|m| (m.clone(), web::to(handler.clone()))),
        method_not_allowed,
    )
}

/// [`resource`] for POST.
pub fn post<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    resource(path, &[Method::POST], handler)
}

/// [`resource`] for GET.
pub fn get<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    resource(path, &[Method::GET], handler)
}

/// [`resource`] for GET and POST (calls the document gives as POST that read better as GET).
pub fn get_post<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    resource(path, &[Method::GET, Method::POST], handler)
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

// The OpenAPI view of this envelope. These types only describe what the functions above write.

/// All rule-outcome codes a SealTalk call can answer at HTTP 200 besides 200.
pub const REFUSAL_CODES: [i32; 7] = [
    CODE_WRONG,
    CODE_EXPIRED,
    CODE_LOCKED,
    CODE_RESYNC,
    CODE_RATE_LIMITED,
    CODE_CAPTCHA_REQUIRED,
    CODE_WRONG_CAPTCHA,
];

/// `{"code": 200}`: success without a result.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SealOk {
    /// Always 200.
    #[schema(minimum = 200, maximum = 200, example = 200)]
    pub code: i32,
}

/// `{"code": 200, "result": ...}`: success with a result.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SealData<T> {
    /// Always 200.
    #[schema(minimum = 200, maximum = 200, example = 200)]
    pub code: i32,
    /// The call's result.
    pub result: T,
}

/// `result` of a throttled or locked answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RetryAfter {
    /// Seconds to wait before trying again (also sent as the `Retry-After` header).
    #[serde(rename = "retryAfter")]
    #[schema(minimum = 0)]
    pub retry_after: u64,
}

fn refusal_code() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Integer)
        .enum_values(Some(REFUSAL_CODES))
        .description(Some(
            "1000 wrong code or credentials, 2000 expired code, 3000 account locked, \
             4000 sync again from version 0, 5000 over the frequency limit, \
             6000 image captcha required, 6001 wrong image captcha",
        ))
        .build()
}

/// A rule outcome, answered with HTTP 200: `{"code": N, "message": ..., "result"?: {"retryAfter"}}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SealRefusal {
    /// The outcome's code; which ones a call can give is listed with the call.
    #[schema(schema_with = refusal_code)]
    pub code: i32,
    /// What went wrong, for people.
    pub message: String,
    /// Present for 3000 and 5000.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub result: Option<RetryAfter>,
}

/// A fault, answered with an HTTP error status: `{"code": <status>, "message": ...}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SealFault {
    /// The HTTP status again (400, 401, 403, 404, 413, 500, 503).
    #[schema(minimum = 400, maximum = 599, example = 400)]
    pub code: i32,
    /// What went wrong, for people.
    pub message: String,
}

/// What a call that answers `{"code": 200}` sends with HTTP 200: that, or a rule outcome.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum SealDone {
    /// Success.
    Ok(SealOk),
    /// A rule outcome.
    Refused(SealRefusal),
}

/// What a call with a result sends with HTTP 200: the result, or a rule outcome.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum SealAnswer<T> {
    /// Success.
    Ok(SealData<T>),
    /// A rule outcome.
    Refused(SealRefusal),
}

/// A scalar that clients send as a JSON string or number (`"region": 86` or `"86"`).
#[derive(Debug)]
pub struct StringOrNumber;

impl utoipa::PartialSchema for StringOrNumber {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::String, Type::Number]))
            .into()
    }
}

impl utoipa::ToSchema for StringOrNumber {}

/// A user id sent as a string or a number, refused as `field` when it is not one.
pub fn user_id(field: &'static str, raw: &crate::common::Loose) -> Result<UserId, DomainError> {
    UserId::parse(&id_text(raw)).map_err(|_| DomainError::invalid(field, "is not a user id"))
}

/// The text of an id sent as a string or a number; an integral float (`263741.0`) is read as
/// the integer it is, as JSON Schema's `integer` allows.
pub fn id_text(raw: &crate::common::Loose) -> String {
    match raw {
        crate::common::Loose::Number(n) if n.as_i64().is_none() && n.as_u64().is_none() => {
            match n.as_f64() {
                // Below 2^53 a float holds the integer exactly; above it no id exists anyway.
                Some(f) if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => {
                    format!("{f:.0}")
                }
                _ => n.to_string(),
            }
        }
        other => other.text(),
    }
}

/// The decimal pattern of a user or group id (positive, below 2^53) sent as a string.
pub const ID_PATTERN: &str = "^[1-9][0-9]{0,15}$";

/// A user or group id: its decimal string (`"4503599627370497"`) or the number.
#[derive(Debug)]
pub struct Id;

impl utoipa::PartialSchema for Id {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::String, Type::Integer]))
            .pattern(Some(ID_PATTERN))
            .minimum(Some(1))
            .maximum(Some(9_007_199_254_740_991_i64))
            .examples(["4503599627370498"])
            .into()
    }
}

impl utoipa::ToSchema for Id {}

/// The envelope schemas every SealTalk module's document refers to.
pub fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(components(schemas(
        SealOk,
        SealRefusal,
        SealFault,
        RetryAfter,
        SealDone,
        StringOrNumber,
        Id
    )))]
    struct Api;
    <Api as utoipa::OpenApi>::openapi()
}

/// The faults of a call open to anyone.
#[derive(Debug, utoipa::IntoResponses)]
pub enum OpenFaults {
    /// A malformed body, or a field that breaks its rules (`{"code": 400}`).
    #[response(status = 400)]
    BadRequest(SealFault),
    /// A body over 1 MiB.
    #[response(status = 413)]
    TooLarge(SealFault),
    /// Over a frequency limit: `{"code": 5000, "result": {"retryAfter": N}}`.
    #[response(
        status = 429,
        headers(("Retry-After" = u64, description = "Seconds to wait"))
    )]
    RateLimited(SealRefusal),
    /// The database is unreachable, or the server is shedding load: try again later.
    #[response(status = 503)]
    Unavailable(SealFault),
}

/// The faults of a call that needs a session.
#[derive(Debug, utoipa::IntoResponses)]
pub enum SessionFaults {
    /// A malformed body, or a field that breaks its rules (`{"code": 400}`).
    #[response(status = 400)]
    BadRequest(SealFault),
    /// No session cookie or Bearer token, or a dead one.
    #[response(status = 401)]
    Unauthenticated(SealFault),
    /// A body over 1 MiB.
    #[response(status = 413)]
    TooLarge(SealFault),
    /// Over a frequency limit: `{"code": 5000, "result": {"retryAfter": N}}`.
    #[response(
        status = 429,
        headers(("Retry-After" = u64, description = "Seconds to wait"))
    )]
    RateLimited(SealRefusal),
    /// The database is unreachable, or the server is shedding load: try again later.
    #[response(status = 503)]
    Unavailable(SealFault),
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeSet;

    /// The SealTalk faces' documents, merged as `/openapi.json` merges them.
    fn sealtalk_doc() -> utoipa::openapi::OpenApi {
        let mut doc = crate::user::openapi();
        doc.merge(crate::friendship::openapi());
        doc.merge(crate::group::openapi());
        doc.merge(crate::sync::openapi());
        doc.merge(crate::user_tokens::openapi());
        doc
    }

    #[test]
    fn every_sealtalk_route_is_documented() {
        let doc = sealtalk_doc();
        let documented: BTreeSet<&str> = doc.paths.paths.keys().map(String::as_str).collect();
        // Every route the SealTalk modules mount (see their `routes` functions).
        let routes: BTreeSet<&str> = [
            "/user/send_code",
            "/user/verify_code",
            "/user/check_phone_available",
            "/user/register",
            "/user/login",
            "/user/logout",
            "/user/reset_password",
            "/user/change_password",
            "/user/set_nickname",
            "/user/set_portrait_uri",
            "/user/set_privacy",
            "/user/privacy",
            "/user/set_profile",
            "/user/find/{region}/{phone}",
            "/user/{id}",
            "/user/blacklist",
            "/user/add_to_blacklist",
            "/user/remove_from_blacklist",
            "/user/get_token",
            "/user/get_image_token",
            "/user/get_sms_img_code",
            "/user/sms_img_code/{verify_id}.png",
            "/user/groups",
            "/user/sync/{version}",
            "/friendship/invite",
            "/friendship/agree",
            "/friendship/ignore",
            "/friendship/delete",
            "/friendship/batch_delete",
            "/friendship/set_display_name",
            "/friendship/set_friend_description",
            "/friendship/get_friend_description",
            "/friendship/get_contacts_info",
            "/friendship/all",
            "/friendship/{friendId}/profile",
            "/group/create",
            "/group/add",
            "/group/kick",
            "/group/quit",
            "/group/dismiss",
            "/group/transfer",
            "/group/rename",
            "/group/set_display_name",
            "/group/set_portrait_uri",
            "/group/set_bulletin",
            "/group/get_bulletin",
            "/group/set_manager",
            "/group/remove_manager",
            "/group/{id}/members",
            "/group/{id}",
        ]
        .into_iter()
        .collect();
        assert_eq!(documented, routes);
    }

    #[test]
    fn every_sealtalk_call_has_an_example_and_its_faults() {
        let doc = serde_json::to_value(sealtalk_doc()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        for (path, item) in paths {
            for (method, op) in item.as_object().unwrap() {
                let responses = op["responses"].as_object().unwrap();
                let ok = &responses["200"]["content"];
                assert!(
                    ok.as_object()
                        .unwrap()
                        .values()
                        .any(|c| !c["example"].is_null())
                        || path.ends_with(".png"),
                    "{method} {path}: no example"
                );
                assert!(responses.contains_key("400"), "{method} {path}: no 400");
                assert!(responses.contains_key("503"), "{method} {path}: no 503");
                let authed = op.get("security").is_some();
                assert_eq!(
                    authed,
                    responses.contains_key("401"),
                    "{method} {path}: 401 and security disagree"
                );
                if let Some(body) = op.get("requestBody") {
                    let json = &body["content"]["application/json"];
                    assert!(
                        !json["example"].is_null(),
                        "{method} {path}: no body example"
                    );
                }
            }
        }
    }

    #[test]
    fn ids_sent_as_integral_floats_read_as_integers() {
        use crate::common::Loose;
        let num = |v: serde_json::Value| match v {
            serde_json::Value::Number(n) => Loose::Number(n),
            _ => unreachable!(),
        };
        assert_eq!(super::id_text(&num(serde_json::json!(263741.0))), "263741");
        assert_eq!(super::id_text(&num(serde_json::json!(263741))), "263741");
        assert_eq!(super::id_text(&num(serde_json::json!(2.5))), "2.5");
        assert_eq!(super::id_text(&num(serde_json::json!(1e300))), "1e+300");
        assert_eq!(super::id_text(&Loose::Text("42".into())), "42");
    }

    /// `KITH_SEALTALK_OPENAPI_OUT=file cargo nextest run -p kith-http sealtalk` writes the
    /// SealTalk part of the document, for reading it without a running server.
    #[test]
    fn dump_when_asked() {
        if let Ok(out) = std::env::var("KITH_SEALTALK_OPENAPI_OUT") {
            std::fs::write(out, sealtalk_doc().to_pretty_json().unwrap()).unwrap();
        }
    }
}
