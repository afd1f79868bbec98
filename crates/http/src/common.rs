//! What every API face shares: session extraction, body limits, loose scalar fields, health.

use std::marker::PhantomData;

use actix_web::{
    dev::Payload,
    http::{header, Method},
    web, FromRequest, HttpRequest, HttpResponse, Resource, Route,
};
use kith_domain::account::Caller;
use kith_domain::DomainError;
use serde::Deserialize;

use crate::AppState;

/// The largest request body any API accepts (1 MiB). Larger bodies answer 413.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// How the session cookie is written.
#[derive(Debug, Clone)]
pub struct CookieSettings {
    /// The cookie's name.
    pub name: String,
    /// Whether to mark it `Secure` (on behind TLS).
    pub secure: bool,
    /// An optional `Domain` attribute.
    pub domain: Option<String>,
    /// `Max-Age`, in seconds: the session's absolute lifetime.
    pub max_age_secs: i64,
}

impl Default for CookieSettings {
    fn default() -> Self {
        Self {
            name: "kith_session".into(),
            secure: false,
            domain: None,
            max_age_secs: 90 * 24 * 3600,
        }
    }
}

impl CookieSettings {
    /// The `Set-Cookie` value carrying a new session.
    pub fn session_cookie(&self, value: &str) -> actix_web::cookie::Cookie<'static> {
        let mut c = actix_web::cookie::Cookie::build(self.name.clone(), value.to_owned())
            .path("/")
            .http_only(true)
            .secure(self.secure)
            .same_site(actix_web::cookie::SameSite::Lax)
            .max_age(actix_web::cookie::time::Duration::seconds(
                self.max_age_secs,
            ))
            .finish();
        if let Some(d) = &self.domain {
            c.set_domain(d.clone());
        }
        c
    }

    /// The `Set-Cookie` value that clears the session cookie.
    pub fn clear_cookie(&self) -> actix_web::cookie::Cookie<'static> {
        let mut c = self.session_cookie("");
        c.make_removal();
        c
    }
}

/// One API document's way of answering an error. Each face implements it for its envelope.
pub trait Face: 'static {
    /// Turns a domain error into this face's HTTP answer.
    fn error(err: DomainError) -> actix_web::Error;
}

/// The session secret sent by the client: the cookie, or `Authorization: Bearer`.
pub fn session_secret(req: &HttpRequest, cookie_name: &str) -> Option<String> {
    if let Some(value) = req.headers().get(header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned());
    }
    req.cookie(cookie_name).map(|c| c.value().to_owned())
}

/// An authenticated caller, refused in face `F`'s envelope when the session is missing or dead.
#[derive(Debug)]
pub struct Authed<F: Face> {
    /// The caller.
    pub caller: Caller,
    face: PhantomData<F>,
}

impl<F: Face> FromRequest for Authed<F> {
    type Error = actix_web::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = req
                .app_data::<web::Data<AppState>>()
                .ok_or_else(|| F::error(DomainError::Internal("app state missing".into())))?;
            let secret = session_secret(&req, &state.cookie.name)
                .ok_or_else(|| F::error(DomainError::Unauthenticated))?;
            let caller = state
                .accounts
                .authenticate(&secret)
                .await
                .map_err(F::error)?;
            Ok(Self {
                caller,
                face: PhantomData,
            })
        })
    }
}

/// A scalar that clients send either as a JSON number or a string (`"region": 86` or `"86"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Loose {
    /// A JSON number.
    Number(serde_json::Number),
    /// A JSON string.
    Text(String),
}

impl Loose {
    /// The value as text, exactly as sent.
    pub fn text(&self) -> String {
        match self {
            Self::Number(n) => n.to_string(),
            Self::Text(s) => s.clone(),
        }
    }
}

/// The client's address, for per-IP throttles. Forwarded headers are not trusted: they are the
/// client's to forge.
pub fn client_ip(req: &HttpRequest) -> String {
    req.peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// `{"status": ...}`: the answer of `GET /health`.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)] // Documents the `json!` answer of [`health`].
struct Health {
    /// `ok` or `unavailable`.
    #[schema(example = "ok")]
    status: String,
}

/// The shared paths' part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(health), components(schemas(Health)))]
    struct Api;
    <Api as utoipa::OpenApi>::openapi()
}

/// `GET /health`: 200 once the database answers, 503 while it does not.
#[utoipa::path(
    get,
    path = "/health",
    tag = "service",
    responses(
        (status = 200, description = "the database answers", body = Health,
         example = json!({"status": "ok"})),
        (status = 503, description = "the database does not answer", body = Health,
         example = json!({"status": "unavailable"})),
    )
)]
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    match state.accounts.health().await {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({"status": "ok"})),
        Err(e) => {
            tracing::warn!(error = %e, "health check failed");
            HttpResponse::ServiceUnavailable().json(serde_json::json!({"status": "unavailable"}))
        }
    }
}

/// The answer for a path no API serves.
pub async fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(serde_json::json!({"code": 404, "message": "no such path"}))
}

/// Milliseconds since the epoch as an RFC 3339 UTC timestamp (`2017-09-18T08:00:00.000Z`).
pub fn iso8601(ms: i64) -> String {
    Iso8601(ms).to_string()
}

/// An instant (milliseconds since the epoch) that shows as [`iso8601`] text, in a JSON answer
/// without a `String` of its own. A list answer carries one per row, and `format!` with its
/// padding was a fifth of a cached 50-row `/friendship/all` (docs/benchmarks.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Iso8601(pub i64);

impl Iso8601 {
    /// Year, month, day, hour, minute, second and millisecond, in UTC.
    fn parts(self) -> [i64; 7] {
        let ms = self.0;
        let rem = ms.div_euclid(1000).rem_euclid(86_400);
        let (year, month, day) = kith_domain::dates::date_of(ms);
        [
            year,
            i64::from(month),
            i64::from(day),
            rem / 3600,
            rem % 3600 / 60,
            rem % 60,
            ms.rem_euclid(1000),
        ]
    }

    /// The text in `buf`; `None` for a year outside 0..=9999, which `Display` pads instead.
    fn write(self, buf: &mut [u8; 24]) -> Option<&str> {
        let parts = self.parts();
        if !(0..=9999).contains(&parts[0]) {
            return None;
        }
        let places = [0..4, 5..7, 8..10, 11..13, 14..16, 17..19, 20..23];
        *buf = *b"0000-00-00T00:00:00.000Z";
        for (range, mut value) in places.into_iter().zip(parts) {
            for digit in buf.get_mut(range)?.iter_mut().rev() {
                // Each value is non-negative and fits its width, so this is one decimal digit.
                *digit = b'0' + u8::try_from(value % 10).ok()?;
                value /= 10;
            }
        }
        std::str::from_utf8(buf).ok()
    }
}

impl std::fmt::Display for Iso8601 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut buf = [0; 24];
        if let Some(text) = self.write(&mut buf) {
            return f.write_str(text);
        }
        let [year, month, day, hour, minute, second, milli] = self.parts();
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{milli:03}Z"
        )
    }
}

impl serde::Serialize for Iso8601 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0; 24];
        match self.write(&mut buf) {
            Some(text) => s.serialize_str(text),
            None => s.collect_str(self),
        }
    }
}

/// A whole number shown as a JSON string of its decimal digits (SealTalk's ids and
/// millisecond times), written without a `String` of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decimal(pub i64);

impl serde::Serialize for Decimal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(itoa::Buffer::new().format(self.0))
    }
}

/// A resource of `path` serving each `(method, route)`, and answering any other method with
/// `not_allowed(allow)`, `allow` naming the methods served. Routes added with `Scope::route`
/// carry their method guard on a resource of their own, so a wrong method would fall through
/// to the 404 of unknown paths instead. Each face passes its own 405 envelope.
pub fn resource_with_405(
    path: &str,
    routes: impl IntoIterator<Item = (Method, Route)>,
    not_allowed: fn(&str) -> HttpResponse,
) -> Resource {
    let mut res = web::resource(path);
    let mut allow = Vec::new();
    for (method, route) in routes {
        allow.push(method.to_string());
        res = res.route(route.method(method));
    }
    let allow = allow.join(", ");
    res.default_service(web::to(move || {
        let answer = not_allowed(&allow);
        async move { answer }
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::{iso8601, Decimal, Iso8601};

    #[test]
    fn formats_utc_timestamps() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_560_222_477_000), "2019-06-11T03:07:57.000Z");
        assert_eq!(iso8601(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(iso8601(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(iso8601(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
        // Past the four-digit years, the padded form.
        assert_eq!(iso8601(253_402_300_800_000), "10000-01-01T00:00:00.000Z");
        assert_eq!(iso8601(-62_167_219_200_001), "-001-12-31T23:59:59.999Z");
    }

    /// The JSON of every instant is its `iso8601` text, on the fast path and off it.
    #[test]
    fn instants_and_decimals_serialize_as_strings() {
        for ms in [
            i64::MIN,
            -62_167_219_200_001,
            -1,
            0,
            1_560_222_477_000,
            253_402_300_799_999,
            253_402_300_800_000,
            i64::MAX,
        ] {
            let json = serde_json::to_string(&Iso8601(ms)).unwrap();
            assert_eq!(json, format!("\"{}\"", iso8601(ms)), "{ms}");
            let json = serde_json::to_string(&Decimal(ms)).unwrap();
            assert_eq!(json, format!("\"{ms}\""));
        }
    }
}
