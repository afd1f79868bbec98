//! The OpenAPI document: its snapshot, its shape, and that it matches the routes really mounted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use actix_web::{test as atest, App};
use kith_http::{configure, openapi};
use serde_json::Value;
use support::state;

const METHODS: [&str; 4] = ["get", "post", "put", "delete"];

fn doc() -> Value {
    serde_json::from_str(openapi::json()).expect("the document is JSON")
}

fn snapshot_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
}

/// `docs/openapi.json` is the document, byte for byte. `UPDATE_OPENAPI_SNAPSHOT=1` rewrites it.
#[test]
fn snapshot_matches() {
    let path = snapshot_path();
    let now = openapi::json();
    if std::env::var_os("UPDATE_OPENAPI_SNAPSHOT").is_some_and(|v| v == "1") {
        std::fs::write(&path, now).unwrap();
        eprintln!("openapi snapshot written to {}", path.display());
        return;
    }
    let Ok(before) = std::fs::read_to_string(&path) else {
        panic!(
            "no snapshot at {}: create it with\n  \
             UPDATE_OPENAPI_SNAPSHOT=1 cargo nextest run -p kith-http snapshot_matches",
            path.display()
        );
    };
    if before == now {
        return;
    }
    let (old, new): (Vec<&str>, Vec<&str>) = (before.lines().collect(), now.lines().collect());
    let first = old
        .iter()
        .zip(&new)
        .position(|(a, b)| a != b)
        .unwrap_or(old.len().min(new.len()));
    let from = first.saturating_sub(3);
    let show = |lines: &[&str]| {
        lines
            .iter()
            .enumerate()
            .skip(from)
            .take(8)
            .map(|(i, l)| format!("{:>6} | {l}\n", i + 1))
            .collect::<String>()
    };
    panic!(
        "the OpenAPI document differs from {} from line {} on.\n\
         --- snapshot ---\n{}--- now ---\n{}\
         If the change is intended, regenerate the snapshot and review its diff:\n  \
         UPDATE_OPENAPI_SNAPSHOT=1 cargo nextest run -p kith-http snapshot_matches && \
         git diff docs/openapi.json",
        path.display(),
        first + 1,
        show(&old),
        show(&new),
    );
}

#[test]
fn is_openapi_3_1_with_both_security_schemes() {
    let d = doc();
    assert_eq!(d["openapi"], "3.1.0");
    assert_eq!(d["info"]["title"], "Kith");
    assert_eq!(d["servers"][0]["url"], "/");
    let schemes = &d["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["type"], "http");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["cookie"]["type"], "apiKey");
    assert_eq!(schemes["cookie"]["in"], "cookie");
    assert_eq!(schemes["cookie"]["name"], "kith_session");
    // `kith openapi` and `/openapi.json` print this one string: it must end cleanly.
    assert!(openapi::json().ends_with("}\n"));
}

#[test]
fn lists_paths_of_every_api() {
    let d = doc();
    let paths = d["paths"].as_object().unwrap();
    for (path, method) in [
        ("/health", "get"),
        ("/openapi.json", "get"),
        // 000
        ("/api/v1/contact", "get"),
        ("/api/v1/contact/{user_id}/follow", "post"),
        ("/api/v1/contact/batch_upload", "post"),
        ("/api/v1/contact/{user_id}/conversation/{conv_type}", "post"),
        // 001
        ("/friends", "get"),
        ("/friends/request", "post"),
        ("/follows/{user_id}/follower", "get"),
        ("/blocks/{user_id}", "delete"),
        // 002
        ("/api/v2/contact", "post"),
        ("/api/v2/contact/{id}", "put"),
        ("/api/v2/contacts", "get"),
        // 003
        ("/user/login", "post"),
        ("/user/send_code", "post"),
        ("/user/blacklist", "get"),
        ("/user/sync/{version}", "get"),
        // 004
        ("/friendship/invite", "post"),
        ("/friendship/all", "get"),
        // groups
        ("/group/create", "post"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is missing from the document"
        );
    }
}

/// Every operation: a unique id, a tag the document declares, responses, and security (when
/// any) naming only the two schemes.
#[test]
fn operations_are_well_formed() {
    let d = doc();
    let tags: BTreeSet<&str> = d["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    let mut ids = BTreeSet::new();
    for (path, item) in d["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap_or_default();
            assert!(
                ids.insert(id.to_owned()),
                "operationId {id:?} twice ({method} {path})"
            );
            for tag in op["tags"].as_array().unwrap() {
                let tag = tag.as_str().unwrap();
                assert!(
                    tags.contains(tag),
                    "{method} {path}: undeclared tag {tag:?}"
                );
            }
            assert!(!op["responses"].as_object().unwrap().is_empty());
            for req in op["security"].as_array().into_iter().flatten() {
                for scheme in req.as_object().unwrap().keys() {
                    assert!(["bearer", "cookie"].contains(&scheme.as_str()), "{scheme}");
                }
            }
        }
    }
}

/// Every `$ref` points at a schema the document has.
#[test]
fn every_reference_resolves() {
    fn walk<'a>(v: &'a Value, refs: &mut BTreeSet<&'a str>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(r)) => {
                            refs.insert(r);
                        }
                        _ => walk(v, refs),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, refs)),
            _ => {}
        }
    }
    let d = doc();
    let mut refs = BTreeSet::new();
    walk(&d, &mut refs);
    assert!(!refs.is_empty());
    let schemas = d["components"]["schemas"].as_object().unwrap();
    for r in refs {
        let name = r.strip_prefix("#/components/schemas/").unwrap_or(r);
        assert!(schemas.contains_key(name), "dangling $ref {r}");
    }
}

/// Two modules defining a schema of one name would silently lose one in the merge.
#[test]
fn modules_do_not_clash_on_schema_names() {
    let mut seen: BTreeMap<String, (&str, Value)> = BTreeMap::new();
    for (module, part) in openapi::parts() {
        let part = serde_json::to_value(&part).unwrap();
        for (name, schema) in part["components"]["schemas"]
            .as_object()
            .into_iter()
            .flatten()
        {
            if let Some((other, before)) = seen.get(name) {
                assert_eq!(
                    before, schema,
                    "schema {name} defined differently by {other} and {module}"
                );
            } else {
                seen.insert(name.clone(), (module, schema.clone()));
            }
        }
    }
}

/// A concrete path for a documented one: each `{param}` gets a well-formed value.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c);
        let name = &rest[open + 1..close];
        out.push_str(match name {
            "conv_type" => "sticky",
            "region" => "86",
            "phone" => "13912345678",
            "version" => "0",
            _ => "2918372541",
        });
        rest = &rest[(close + 1).min(rest.len())..];
    }
    out.push_str(rest);
    out
}

/// Whether the app answered from a route (anything but the "no such path" fallbacks).
async fn routed(app_state: &kith_http::AppState, method: &str, path: &str) -> bool {
    let app = atest::init_service(App::new().configure(configure(app_state.clone()))).await;
    let req = match method {
        "get" => atest::TestRequest::get(),
        "post" => atest::TestRequest::post(),
        "put" => atest::TestRequest::put(),
        "delete" => atest::TestRequest::delete(),
        other => panic!("method {other}"),
    }
    .uri(path)
    .to_request();
    let res = atest::call_service(&app, req).await;
    let status = res.status().as_u16();
    let body = atest::read_body(res).await;
    let fallback = String::from_utf8_lossy(&body).contains("no such path");
    // 405: the path is served, but not for this method.
    !(status == 405 || status == 404 && fallback)
}

/// A documented path answers a method it does not document with 405, an `Allow` header naming
/// the methods it does serve, and its API's envelope (not the 404 of unknown paths).
#[actix_web::test]
async fn undocumented_methods_on_documented_paths_answer_405() {
    let (app_state, _, _) = state();
    let app = atest::init_service(App::new().configure(configure(app_state.clone()))).await;
    let d = doc();
    let paths = d["paths"].as_object().unwrap();
    let mut wrong = Vec::new();
    let mut checked = 0;
    for (path, item) in paths {
        let url = concrete(path);
        for method in METHODS {
            // Another template (`/user/{id}` beside `/user/sync/...`) may serve this URL.
            let covered = paths
                .iter()
                .any(|(tpl, item)| item.get(method).is_some() && matches(tpl, &url));
            if covered {
                continue;
            }
            let req = atest::TestRequest::default()
                .method(method.to_uppercase().parse().unwrap())
                .uri(&url)
                .to_request();
            let res = atest::call_service(&app, req).await;
            let status = res.status().as_u16();
            let allow = res
                .headers()
                .get("allow")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let body: Value =
                serde_json::from_slice(&atest::read_body(res).await).unwrap_or(Value::Null);
            let envelope = body["code"] == 405 || body["error"]["code"] == "method_not_allowed";
            let served: Vec<String> = METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(|m| m.to_uppercase())
                .collect();
            let allowed: Vec<&str> = allow.split(", ").collect();
            checked += 1;
            if status != 405 || !envelope || !served.iter().all(|m| allowed.contains(&m.as_str())) {
                wrong.push(format!(
                    "{method} {url}: {status}, Allow {allow:?}, body {body} (serves {served:?})"
                ));
            }
        }
    }
    assert!(checked > 100, "checked only {checked} method/path pairs");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Whether the documented `template` (with `{param}` segments) matches the concrete `url`.
fn matches(template: &str, url: &str) -> bool {
    let (t, u): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), url.split('/').collect());
    t.len() == u.len()
        && t.iter()
            .zip(&u)
            .all(|(t, u)| match (t.find('{'), t.find('}')) {
                (Some(open), Some(close)) => {
                    let (pre, post) = (&t[..open], &t[close + 1..]);
                    u.len() > pre.len() + post.len() && u.starts_with(pre) && u.ends_with(post)
                }
                _ => t == u,
            })
}

/// Each documented operation is mounted, and no other method is mounted on a documented path
/// (unless another documented path, such as `/user/{id}`, serves that URL and method).
#[actix_web::test]
async fn document_matches_the_mounted_routes() {
    let (app_state, _, _) = state();
    let d = doc();
    let paths = d["paths"].as_object().unwrap();
    let mut wrong = Vec::new();
    for (path, item) in paths {
        let url = concrete(path);
        for method in METHODS {
            let routed = routed(&app_state, method, &url).await;
            if item.get(method).is_some() && !routed {
                wrong.push(format!("{method} {path}: documented, not mounted"));
            }
            let covered = paths
                .iter()
                .any(|(tpl, item)| item.get(method).is_some() && matches(tpl, &url));
            if routed && !covered {
                wrong.push(format!("{method} {path}: mounted, not documented"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Every path literal registered in the sources ends some documented path, so a
/// new route without a `#[utoipa::path]` fails here.
#[test]
fn every_route_in_the_sources_is_documented() {
    fn shape(path: &str) -> String {
        let mut out = String::new();
        let mut in_param = false;
        for c in path.chars() {
            match c {
                '{' => {
                    in_param = true;
                    out.push_str("{}");
                }
                '}' => in_param = false,
                c if !in_param => out.push(c),
                _ => {}
            }
        }
        out
    }
    let d = doc();
    let documented: Vec<String> = d["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(|p| shape(p))
        .collect();
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut literals = 0;
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let file = entry.unwrap().path();
        let text = std::fs::read_to_string(&file).unwrap();
        // Unit tests mount routes of their own.
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        // `.route("/x", ...)`, the SealTalk modules' `.service(post("/x", handler))` and the
        // REST modules' `.service(rest::resource("/x", [...]))`.
        let calls = [
            ".route(",
            ".service(post(",
            ".service(get(",
            ".service(get_post(",
            ".service(rest::resource(",
        ];
        for (at, call) in calls.iter().flat_map(|c| text.match_indices(c)) {
            let after = text[at + call.len()..].trim_start();
            let Some(lit) = after.strip_prefix('"') else {
                continue; // built with format!: covered by the mounted-routes test instead
            };
            let lit = &lit[..lit.find('"').unwrap()];
            // `""` is a scope's own path and `/docs...` serves the page, not an API.
            if lit.is_empty() || lit.starts_with("/docs") {
                continue;
            }
            literals += 1;
            let lit = shape(lit);
            if !documented.iter().any(|p| p.ends_with(&lit)) {
                missing.push(format!("{}: {lit}", file.display()));
            }
        }
    }
    assert!(
        literals > 50,
        "found only {literals} routes: is the scan broken?"
    );
    assert!(
        missing.is_empty(),
        "undocumented routes:\n{}",
        missing.join("\n")
    );
}

#[actix_web::test]
async fn serves_the_document_and_the_docs_page() {
    let (app_state, _, _) = state();
    let app = atest::init_service(App::new().configure(configure(app_state))).await;
    let get = |uri: &str| atest::TestRequest::get().uri(uri).to_request();

    let res = atest::call_service(&app, get("/openapi.json")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers().get("content-type").unwrap(),
        "application/json"
    );
    let body = atest::read_body(res).await;
    assert_eq!(body, openapi::json().as_bytes());

    for (uri, ty, needle) in [
        (
            "/docs",
            "text/html; charset=utf-8",
            "/docs/swagger-ui-bundle.js",
        ),
        ("/docs/", "text/html; charset=utf-8", "/docs/swagger-ui.css"),
        (
            "/docs/docs.js",
            "text/javascript; charset=utf-8",
            "/openapi.json",
        ),
        (
            "/docs/swagger-ui.css",
            "text/css; charset=utf-8",
            ".swagger-ui",
        ),
        (
            "/docs/swagger-ui-bundle.js",
            "text/javascript; charset=utf-8",
            "SwaggerUIBundle",
        ),
    ] {
        let res = atest::call_service(&app, get(uri)).await;
        assert_eq!(res.status(), 200, "{uri}");
        assert_eq!(res.headers().get("content-type").unwrap(), ty, "{uri}");
        let body = atest::read_body(res).await;
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains(needle), "{uri} lacks {needle}");
        // Served by Kith alone: no asset from a CDN.
        if uri == "/docs" || uri == "/docs/docs.js" {
            assert!(!text.contains("https://"), "{uri} loads something remote");
        }
    }
}
