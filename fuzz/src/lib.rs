//! The in-process Kith used by the API fuzz targets: the real actix App over the domain's
//! in-memory ports, built by crates/http's own test fixture, plus the byte format the targets
//! decode a request from. All of it needs the `http` feature (on by default).
#![cfg(feature = "http")]

use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, COOKIE};
use actix_web::http::{Method, Uri};
use actix_web::{test, App};
use serde_json::Value;

// Reused, not copied: the fixture crates/http's integration tests build their state with.
#[path = "../../crates/http/tests/support/mod.rs"]
pub mod support;

/// A fresh Kith: three users (A and B are friends, C is a stranger), and A owns a tag, a
/// contact carrying it in the address book, and a group with B.
#[derive(Debug, Clone)]
pub struct Ids {
    /// User A's public id (the caller of most fuzzed requests).
    pub a: String,
    /// User B's id: A's friend.
    pub b: String,
    /// User C's id: nobody's friend.
    pub c: String,
    /// A's session token.
    pub token_a: String,
    /// B's session token.
    pub token_b: String,
    /// An address book contact of A (`_id`).
    pub contact: String,
    /// An address book tag of A (`_id`).
    pub tag: String,
    /// A SealTalk group A created with B.
    pub group: String,
}

/// Sends one request, returns its status and body. Panics (a fuzz finding) on a 5xx.
pub async fn send<S>(app: &S, req: actix_http::Request) -> (u16, actix_web::web::Bytes)
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    let res = test::call_service(app, req).await;
    let status = res.status().as_u16();
    let body = test::read_body(res).await;
    (status, body)
}

async fn setup_call<S>(app: &S, method: Method, path: &str, token: &str, body: Value) -> Value
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    let req = test::TestRequest::default()
        .method(method)
        .uri(path)
        .insert_header((AUTHORIZATION, format!("Bearer {token}")))
        .set_json(body)
        .to_request();
    let (status, body) = send(app, req).await;
    assert!(status < 300, "fixture call {path} answered {status}");
    serde_json::from_slice(&body).unwrap_or(Value::Null)
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Builds the app and its fixture data, then hands both to `f`.
pub async fn with_app<F, Fut>(f: F)
where
    F: FnOnce(Ids, Box<dyn AppService>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (state, sms, _clock) = support::state();
    let (a, token_a) = support::sign_up(&state, &sms, 1, "alice").await;
    let (b, token_b) = support::sign_up(&state, &sms, 2, "bob").await;
    let (c, _) = support::sign_up(&state, &sms, 3, "carol").await;
    let app = test::init_service(App::new().configure(kith_http::configure(state))).await;
    setup_call(
        &app,
        Method::POST,
        "/friendship/invite",
        &token_a,
        serde_json::json!({"friendId": b}),
    )
    .await;
    setup_call(
        &app,
        Method::POST,
        "/friendship/agree",
        &token_b,
        serde_json::json!({"friendId": a}),
    )
    .await;
    let tag = setup_call(
        &app,
        Method::POST,
        "/api/v2/tag",
        &token_a,
        serde_json::json!({"name": "Family"}),
    )
    .await;
    let tag = text(&tag["_id"]);
    let contact = setup_call(
        &app,
        Method::POST,
        "/api/v2/contact",
        &token_a,
        serde_json::json!({"name": "Cai", "numbers": [{"type": "Company", "number": "17314141431"}],
            "emails": [{"type": "Home", "email": "cai@example.com"}], "tag_ids": [tag]}),
    )
    .await;
    let contact = text(&contact["id"]);
    let group = setup_call(
        &app,
        Method::POST,
        "/group/create",
        &token_a,
        serde_json::json!({"name": "Team", "memberIds": [b]}),
    )
    .await;
    let group = text(&group["result"]["id"]);
    let ids = Ids {
        a,
        b,
        c,
        token_a,
        token_b,
        contact,
        tag,
        group,
    };
    f(ids, Box::new(app)).await;
}

/// The app as an object, so targets need not name its opaque type.
pub trait AppService {
    /// Sends `req` and returns (status, body).
    fn send(
        &self,
        req: actix_http::Request,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = (u16, actix_web::web::Bytes)> + '_>>;
}

impl<S> AppService for S
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    fn send(
        &self,
        req: actix_http::Request,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = (u16, actix_web::web::Bytes)> + '_>>
    {
        Box::pin(send(self, req))
    }
}

/// Runs `fut` on this thread's actix system (one per fuzzing thread, made once).
pub fn block_on<T>(fut: impl std::future::Future<Output = T>) -> T {
    thread_local! {
        static SYSTEM: actix_rt::SystemRunner = actix_rt::System::new();
    }
    SYSTEM.with(|s| s.block_on(fut))
}

/// Replaces the fixture markers the seeds use (`@A`, `@B`, `@C` users, `@K` contact, `@T` tag,
/// `@G` group, `@S` A's session token) so mutations start from ids that exist.
pub fn substitute(raw: &[u8], ids: &Ids) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + 32);
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'@' && i + 1 < raw.len() {
            let rep = match raw[i + 1] {
                b'A' => Some(&ids.a),
                b'B' => Some(&ids.b),
                b'C' => Some(&ids.c),
                b'K' => Some(&ids.contact),
                b'T' => Some(&ids.tag),
                b'G' => Some(&ids.group),
                b'S' => Some(&ids.token_a),
                _ => None,
            };
            if let Some(rep) = rep {
                out.extend_from_slice(rep.as_bytes());
                i += 2;
                continue;
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    out
}

/// Percent-encodes every byte a URI cannot carry as is; `keep` lists the extra bytes kept raw
/// (`/` in paths, `&=` in queries). `%` is kept so broken escapes reach the decoders.
fn encode(raw: &[u8], keep: &[u8], out: &mut String) {
    for &b in raw {
        if b.is_ascii_alphanumeric() || b"-._~%:@!$'()*+,;".contains(&b) || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// One fuzzed request, decoded from bytes:
/// `[method] [prefix] [flags] path-tail \n query \n body`.
/// - method: GET, POST, PUT, DELETE, PATCH (byte mod 5);
/// - prefix: one of the target's mounts (byte mod len);
/// - flags: bits 0-1 credentials (A's Bearer, A's cookie, none, B's Bearer), bits 2-3 the
///   Content-Type (JSON, none, text/vcard, form);
/// - the path tail and query are percent-encoded where needed; the body goes as is.
#[derive(Debug)]
pub struct Fuzzed {
    /// The request, ready to send.
    pub request: actix_http::Request,
    /// The path and query it went to, for the panic message.
    pub uri: String,
    /// The method.
    pub method: Method,
}

/// Decodes `data` into a request under one of `prefixes`, or `None` when too short.
pub fn decode(data: &[u8], prefixes: &[&str], ids: &Ids) -> Option<Fuzzed> {
    let (&[m, p, flags], rest) = data.split_first_chunk::<3>()?;
    let method = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
    ][usize::from(m) % 5]
        .clone();
    let prefix = prefixes[usize::from(p) % prefixes.len()];
    let rest = substitute(rest, ids);
    let mut parts = rest.splitn(3, |b| *b == b'\n');
    let tail = parts.next().unwrap_or_default();
    let query = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default().to_vec();
    let mut uri = String::from(prefix);
    encode(tail, b"/", &mut uri);
    if !query.is_empty() {
        uri.push('?');
        encode(query, b"&=/?", &mut uri);
    }
    // What the encoder lets through is URI-safe, but a broken escape may still be refused here;
    // the server would never see such a request, so neither does the target.
    uri.parse::<Uri>().ok()?;
    let mut req = test::TestRequest::default()
        .method(method.clone())
        .uri(&uri);
    req = match flags & 3 {
        0 => req.insert_header((AUTHORIZATION, format!("Bearer {}", ids.token_a))),
        1 => req.insert_header((COOKIE, format!("kith_session={}", ids.token_a))),
        2 => req,
        _ => req.insert_header((AUTHORIZATION, format!("Bearer {}", ids.token_b))),
    };
    req = match (flags >> 2) & 3 {
        0 => req.insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json"))),
        1 => req,
        2 => req.insert_header((CONTENT_TYPE, HeaderValue::from_static("text/vcard"))),
        _ => req.insert_header((
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        )),
    };
    let request = req.set_payload(body).to_request();
    Some(Fuzzed {
        request,
        uri,
        method,
    })
}

/// Sends the request decoded from `data` under one of `prefixes` to a fresh Kith and panics if
/// it answers 5xx. Each input gets a fresh state, so every finding replays on its own.
pub fn run_api(data: &[u8], prefixes: &'static [&'static str]) {
    let data = data.to_vec();
    block_on(with_app(|ids, app| async move {
        let Some(f) = decode(&data, prefixes, &ids) else {
            return;
        };
        let (status, body) = app.send(f.request).await;
        assert!(
            status < 500 || expected_5xx(&f.uri, status, &body),
            "{} {} answered {status}: {}",
            f.method,
            f.uri,
            String::from_utf8_lossy(&body)
        );
    }));
}

/// The 5xx answers that are not about the input but about the fixture, which (like a server
/// without object storage or captchas configured) has neither an upload token provider nor an
/// image captcha: `get_image_token` and the captcha calls answer 503 there, whatever is sent.
fn expected_5xx(uri: &str, status: u16, body: &[u8]) -> bool {
    let captcha =
        uri.starts_with("/user/get_sms_img_code") || uri.starts_with("/user/sms_img_code/");
    status == 503
        && (captcha
            || serde_json::from_slice::<Value>(body).is_ok_and(|v| {
                v["message"] == "image upload storage is not configured on this server"
            }))
}
