//! The OpenAPI 3.1 document of every API Kith serves, `/openapi.json`, and the `/docs` page.

use std::sync::OnceLock;

use actix_web::{http::header, web, HttpResponse};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::server::Server;
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{InfoBuilder, OpenApi, OpenApiBuilder};

use crate::{addressbook, common, contacts_v1, friends, friendship, group, sealtalk, sync, user};
use crate::{user_tokens, CookieSettings};

/// The tags, one per API document (and one for the service's own paths), in display order.
const TAGS: [(&str, &str); 8] = [
    (
        "000 contacts v1",
        "Document 000: follow, star, block, remark names, phone-book upload and conversation \
         lists under `/api/v1/contact`. HTTP status codes, `{\"error\": {...}}` on failure.",
    ),
    (
        "001 friends",
        "Document 001: friend requests, follows and blocks. Numeric ids, 201 on create, \
         204 on delete, bare JSON arrays.",
    ),
    (
        "002 address book",
        "Document 002: the address book v2 (contacts with typed numbers and emails, tags, \
         search, revisions `_rev`), CouchDB-style documents.",
    ),
    (
        "003 SealTalk user",
        "Document 003: SealTalk's user API. HTTP 200 with `{\"code\": N, \"result\": ...}`.",
    ),
    (
        "004 SealTalk friendship",
        "Document 004: SealTalk's friendship API, in the same envelope as 003.",
    ),
    (
        "groups",
        "SealTalk's `/group/...` calls, which make the groups document 003 lists and syncs.",
    ),
    (
        "sync",
        "Incremental sync by version (document 003's `/user/sync/{version}`).",
    ),
    ("service", "Kith's own paths: health and this document."),
];

/// The whole document: every API module's paths and schemas, with the shared info, tags,
/// servers and security schemes.
pub fn document() -> OpenApi {
    let mut doc = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Kith")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Kith serves five contacts and relationship APIs on one relationship core. \
                     Every call behind a session takes the session value as the `kith_session` \
                     cookie (set by `POST /user/login`) or as `Authorization: Bearer <value>`.",
                ))
                .build(),
        )
        // Relative, so that "try it" on /docs calls the server that served the page.
        .servers(Some([Server::new("/")]))
        .tags(Some(TAGS.iter().map(|(name, description)| {
            TagBuilder::new()
                .name(*name)
                .description(Some(*description))
                .build()
        })))
        .build();
    for (module, mut part) in parts() {
        prefix_operation_ids(&mut part, module);
        doc.merge(part);
    }
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "The session value from `POST /user/login` (its `token` result, or the \
                     `kith_session` cookie's value).",
                ))
                .build(),
        ),
    );
    components.add_security_scheme(
        "cookie",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            CookieSettings::default().name,
            "The session cookie `POST /user/login` sets.".to_owned(),
        ))),
    );
    doc
}

/// Each API module's own document, by module name. The module names keep operation ids unique
/// across modules whose handlers share names (`follow`, `block`, `ignore`, ...).
pub fn parts() -> Vec<(&'static str, OpenApi)> {
    vec![
        ("common", common::openapi()),
        ("service", service_openapi()),
        ("contacts_v1", contacts_v1::openapi()),
        ("friends", friends::openapi()),
        ("addressbook", addressbook::openapi()),
        ("sealtalk", sealtalk::openapi()),
        ("user", user::openapi()),
        ("friendship", friendship::openapi()),
        ("group", group::openapi()),
        ("sync", sync::openapi()),
        ("user_tokens", user_tokens::openapi()),
    ]
}

/// Makes the operation ids of `part` unique: each is prefixed with `module_` (unless it already
/// starts with it), and one handler serving several methods gets `_<method>` on all but its first.
fn prefix_operation_ids(part: &mut OpenApi, module: &str) {
    let prefix = format!("{module}_");
    let mut seen = std::collections::BTreeSet::new();
    for item in part.paths.paths.values_mut() {
        let ops = [
            ("get", &mut item.get),
            ("put", &mut item.put),
            ("post", &mut item.post),
            ("delete", &mut item.delete),
            ("options", &mut item.options),
            ("head", &mut item.head),
            ("patch", &mut item.patch),
            ("trace", &mut item.trace),
        ];
        for (method, op) in ops {
            let Some(id) = op.as_mut().and_then(|op| op.operation_id.as_mut()) else {
                continue;
            };
            if !id.starts_with(&prefix) {
                id.insert_str(0, &prefix);
            }
            if !seen.insert(id.clone()) {
                id.push('_');
                id.push_str(method);
                seen.insert(id.clone());
            }
        }
    }
}

/// The document as served and printed: pretty JSON with a final newline. Built once.
pub fn json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| match document().to_pretty_json() {
        Ok(mut text) => {
            text.push('\n');
            text
        }
        Err(e) => {
            // Serialising plain data structures cannot fail; keep serving if it ever does.
            tracing::error!(error = %e, "openapi document failed to serialise");
            "{}\n".to_owned()
        }
    })
}

/// The paths of this module: the document itself.
fn service_openapi() -> OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(openapi_json))]
    struct Api;
    <Api as utoipa::OpenApi>::openapi()
}

/// Serves this document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "service",
    responses((status = 200, description = "this OpenAPI 3.1 document", content_type = "application/json"))
)]
async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(json())
}

const DOCS_HTML: &str = include_str!("../assets/docs.html");
const DOCS_JS: &str = include_str!("../assets/docs.js");
const SWAGGER_CSS: &str = include_str!("../assets/swagger-ui/swagger-ui.css");
const SWAGGER_JS: &str = include_str!("../assets/swagger-ui/swagger-ui-bundle.js");

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        // The assets change only with the binary; an hour spares reloads without going stale.
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(body)
}

/// Mounts `/openapi.json` and the `/docs` page with its vendored Swagger UI assets.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(crate::sealtalk::get("/openapi.json", openapi_json))
        .route(
            "/docs",
            web::get().to(|| async { asset("text/html; charset=utf-8", DOCS_HTML) }),
        )
        .route(
            "/docs/",
            web::get().to(|| async { asset("text/html; charset=utf-8", DOCS_HTML) }),
        )
        .route(
            "/docs/docs.js",
            web::get().to(|| async { asset("text/javascript; charset=utf-8", DOCS_JS) }),
        )
        .route(
            "/docs/swagger-ui.css",
            web::get().to(|| async { asset("text/css; charset=utf-8", SWAGGER_CSS) }),
        )
        .route(
            "/docs/swagger-ui-bundle.js",
            web::get().to(|| async { asset("text/javascript; charset=utf-8", SWAGGER_JS) }),
        );
}
