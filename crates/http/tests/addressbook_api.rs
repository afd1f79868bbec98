//! The address book v2 API (002)'s HTTP mapping, over the in-memory ports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use actix_web::dev::{Service, ServiceResponse};
use actix_web::{test, App};
use kith_http::configure;
use serde_json::{json, Value};
use support::{sign_up, state};

macro_rules! app {
    ($state:expr) => {
        test::init_service(App::new().configure(configure($state))).await
    };
}

/// Status and JSON body (`Null` when empty) of one call.
struct Answer {
    status: u16,
    body: Value,
}

async fn call_with(
    app: &impl Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
    req: test::TestRequest,
    token: Option<&str>,
) -> Answer {
    let mut req = req;
    if let Some(t) = token {
        req = req.insert_header(("Authorization", format!("Bearer {t}")));
    }
    let res = test::call_service(app, req.to_request()).await;
    let status = res.status().as_u16();
    let bytes = test::read_body(res).await;
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    Answer { status, body }
}

async fn call(
    app: &impl Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
    method: &str,
    path: &str,
    body: Option<Value>,
    token: &str,
) -> Answer {
    let mut req = match method {
        "GET" => test::TestRequest::get(),
        "POST" => test::TestRequest::post(),
        "PUT" => test::TestRequest::put(),
        "DELETE" => test::TestRequest::delete(),
        other => panic!("method {other}"),
    }
    .uri(path);
    if let Some(b) = body {
        req = req.set_json(b);
    }
    call_with(app, req, Some(token)).await
}

fn mail(local: &str, domain: &str) -> String {
    format!("{local}{}{domain}", '@')
}

fn cai() -> Value {
    json!({
        "name": "Cai",
        "numbers": [
            {"type": "Company", "number": "17314141431"},
            {"type": "School", "number": "16213131313"}
        ],
        "emails": [{"type": "Company", "email": mail("cai", "example.com")}],
        "tag_ids": []
    })
}

#[actix_web::test]
async fn create_get_put_delete_with_revisions() {
    let (st, sms, _) = state();
    let (_, token) = sign_up(&st, &sms, 1, "user1").await;
    let app = app!(st);

    let r = call(&app, "POST", "/api/v2/contact", Some(cai()), &token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["ok"], true);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let rev1 = r.body["rev"].as_str().unwrap().to_owned();
    assert!(rev1.starts_with("1-") && rev1.len() == 34, "{rev1}");

    let path = format!("/api/v2/contact/{id}");
    let r = call(&app, "GET", &path, None, &token).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["_id"], id.as_str());
    assert_eq!(r.body["_rev"], rev1.as_str());
    assert_eq!(r.body["doc_type"], "contact");
    assert_eq!(r.body["numbers"], cai()["numbers"]);
    assert!(r.body["created_date"].is_i64());
    assert!(r.body.get("modified_date").is_none());

    // PUT back what GET answered, changed: the CouchDB bookkeeping fields are accepted.
    let mut doc = r.body.clone();
    doc["name"] = json!("Caiwei");
    let r = call(&app, "PUT", &path, Some(doc.clone()), &token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["name"], "Caiwei");
    let rev2 = r.body["_rev"].as_str().unwrap().to_owned();
    assert!(rev2.starts_with("2-"));
    assert!(r.body["modified_date"].is_i64());

    // The same stale revision again: 409, nothing changes.
    doc["name"] = json!("Lost");
    let r = call(&app, "PUT", &path, Some(doc), &token).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "conflict");
    let r = call(&app, "GET", &path, None, &token).await;
    assert_eq!(r.body["name"], "Caiwei");

    // If-Match works like _rev.
    let req = test::TestRequest::put()
        .uri(&path)
        .insert_header(("If-Match", format!("\"{rev1}\"")))
        .set_json(json!({"name": "Also lost"}));
    assert_eq!(call_with(&app, req, Some(&token)).await.status, 409);
    // Without a revision the last write wins.
    let r = call(&app, "PUT", &path, Some(json!({"name": "Won"})), &token).await;
    assert_eq!(
        (r.status, r.body["_rev"].as_str().unwrap().starts_with("3-")),
        (200, true)
    );

    let r = call(&app, "DELETE", &format!("{path}?rev={rev2}"), None, &token).await;
    assert_eq!(r.status, 409);
    let r = call(&app, "DELETE", &path, None, &token).await;
    assert_eq!((r.status, &r.body), (200, &json!({"ok": true, "id": id})));
    assert_eq!(call(&app, "GET", &path, None, &token).await.status, 404);
    assert_eq!(call(&app, "DELETE", &path, None, &token).await.status, 404);
}

#[actix_web::test]
async fn another_users_contact_is_404() {
    let (st, sms, _) = state();
    let (_, a) = sign_up(&st, &sms, 1, "user1").await;
    let (_, b) = sign_up(&st, &sms, 2, "user2").await;
    let app = app!(st);
    let r = call(&app, "POST", "/api/v2/contact", Some(cai()), &a).await;
    let path = format!("/api/v2/contact/{}", r.body["id"].as_str().unwrap());
    for (method, body) in [("GET", None), ("PUT", Some(cai())), ("DELETE", None)] {
        let r = call(&app, method, &path, body, &b).await;
        assert_eq!(r.status, 404, "{method}");
        assert!(r.body.get("name").is_none());
    }
    assert_eq!(
        call(&app, "GET", "/api/v2/contact/nope", None, &a)
            .await
            .status,
        404
    );
    let r = call(&app, "GET", "/api/v2/contacts", None, &b).await;
    assert_eq!(r.body["totalRows"], 0);
    let unauth = call_with(&app, test::TestRequest::get().uri(&path), None).await;
    assert_eq!(unauth.status, 401);
}

#[actix_web::test]
async fn bad_input_is_400_naming_the_field() {
    let (st, sms, _) = state();
    let (_, token) = sign_up(&st, &sms, 1, "user1").await;
    let app = app!(st);
    let cases = [
        (json!({"numbers": []}), "name"),
        (json!({"name": 5}), "name"),
        (json!({"name": ""}), "name"),
        (json!({"name": "x".repeat(257)}), "name"),
        (json!({"name": "x", "numbers": "123"}), "numbers"),
        (
            json!({"name": "x", "numbers": [{"type": "Home"}]}),
            "numbers",
        ),
        (
            json!({"name": "x", "numbers": [{"number": 123}]}),
            "numbers",
        ),
        (
            json!({"name": "x", "numbers": [{"number": "abc"}]}),
            "numbers",
        ),
        (
            json!({"name": "x", "numbers": vec![json!({"number": "1"}); 51]}),
            "numbers",
        ),
        (
            json!({"name": "x", "emails": [{"email": "not-an-email"}]}),
            "emails",
        ),
        (json!({"name": "x", "tag_ids": "t"}), "tag_ids"),
        (
            json!({"name": "x", "tag_ids": ["00000000000000aa"]}),
            "tag_ids",
        ),
        (json!({"name": "x", "note": 3}), "note"),
        (json!({"name": "x", "doc_type": "tag"}), "doc_type"),
        (json!({"name": "x", "surprise": 1}), "body"),
        (json!(["name"]), "body"),
    ];
    for (body, field) in cases {
        let r = call(&app, "POST", "/api/v2/contact", Some(body.clone()), &token).await;
        assert_eq!(r.status, 400, "{body}");
        assert_eq!(r.body["error"]["field"], field, "{body}: {}", r.body);
    }
    let req = test::TestRequest::post()
        .uri("/api/v2/contact")
        .insert_header(("Content-Type", "application/json"))
        .set_payload("{\"name\": ");
    let r = call_with(&app, req, Some(&token)).await;
    assert_eq!((r.status, &r.body["error"]["field"]), (400, &json!("body")));
    let huge = format!("{{\"name\": \"{}\"}}", "x".repeat(1 << 20));
    let req = test::TestRequest::post()
        .uri("/api/v2/contact")
        .insert_header(("Content-Type", "application/json"))
        .set_payload(huge);
    assert_eq!(call_with(&app, req, Some(&token)).await.status, 413);

    for (query, field) in [
        ("items=x", "items"),
        ("items=0", "items"),
        ("items=1001", "items"),
        ("currentpage=0", "currentpage"),
        ("currentpage=-1", "currentpage"),
        ("cursor=zz", "cursor"),
    ] {
        let r = call(
            &app,
            "GET",
            &format!("/api/v2/contacts?{query}"),
            None,
            &token,
        )
        .await;
        assert_eq!(
            (r.status, &r.body["error"]["field"]),
            (400, &json!(field)),
            "{query}"
        );
    }
    let r = call(&app, "POST", "/api/v2/contact", Some(cai()), &token).await;
    let path = format!("/api/v2/contact/{}", r.body["id"].as_str().unwrap());
    let r = call(
        &app,
        "PUT",
        &path,
        Some(json!({"name": "x", "_rev": "junk"})),
        &token,
    )
    .await;
    assert_eq!((r.status, &r.body["error"]["field"]), (400, &json!("_rev")));
    let r = call(
        &app,
        "PUT",
        &path,
        Some(json!({"name": "x", "_id": "0000000000000001"})),
        &token,
    )
    .await;
    assert_eq!((r.status, &r.body["error"]["field"]), (400, &json!("_id")));
}

#[actix_web::test]
async fn search_pages_and_cursors() {
    let (st, sms, _) = state();
    let (_, token) = sign_up(&st, &sms, 1, "user1").await;
    let app = app!(st);
    let people = [
        ("tom", "164832443241"),
        ("Alen", "163732443242"),
        ("carter", "16473243224"),
        ("haiyan", "+86 154-7324-43242"),
        ("zoe", "99999"),
    ];
    for (name, number) in people {
        let body = json!({"name": name, "numbers": [{"type": "Home", "number": number}]});
        assert_eq!(
            call(&app, "POST", "/api/v2/contact", Some(body), &token)
                .await
                .status,
            200
        );
    }
    let r = call(
        &app,
        "GET",
        "/api/v2/contacts?items=100&currentpage=1&keyword=16",
        None,
        &token,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["totalRows"], 3);
    let names: Vec<&str> = r.body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Alen", "carter", "tom"]);
    let r = call(&app, "GET", "/api/v2/contacts?keyword=154732", None, &token).await;
    assert_eq!(r.body["rows"][0]["name"], "haiyan");

    let r = call(&app, "GET", "/api/v2/contacts?items=2", None, &token).await;
    assert_eq!(r.body["totalRows"], 5);
    let cursor = r.body["next_cursor"].as_str().unwrap().to_owned();
    let r = call(
        &app,
        "GET",
        &format!("/api/v2/contacts?items=2&cursor={cursor}"),
        None,
        &token,
    )
    .await;
    let names: Vec<&str> = r.body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["haiyan", "tom"]);
    let r = call(
        &app,
        "GET",
        "/api/v2/contacts?items=2&currentpage=3",
        None,
        &token,
    )
    .await;
    assert_eq!(r.body["rows"][0]["name"], "zoe");
    assert_eq!(r.body["next_cursor"], Value::Null);
}

#[actix_web::test]
async fn tags_and_batch() {
    let (st, sms, _) = state();
    let (_, token) = sign_up(&st, &sms, 1, "user1").await;
    let app = app!(st);
    let r = call(
        &app,
        "POST",
        "/api/v2/tag",
        Some(json!({"name": "Family"})),
        &token,
    )
    .await;
    assert_eq!((r.status, r.body["ok"].clone()), (200, json!(true)));
    let tag = r.body["_id"].as_str().unwrap().to_owned();
    let mut body = cai();
    body["tag_ids"] = json!([tag]);
    let r = call(&app, "POST", "/api/v2/contact", Some(body), &token).await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    let r = call(
        &app,
        "GET",
        &format!("/api/v2/contacts?keyword={tag}"),
        None,
        &token,
    )
    .await;
    assert_eq!(r.body["totalRows"], 1);

    let r = call(
        &app,
        "PUT",
        &format!("/api/v2/tag/{tag}"),
        Some(json!({"name": "Kin"})),
        &token,
    )
    .await;
    assert_eq!((r.status, r.body["name"].clone()), (200, json!("Kin")));
    let r = call(&app, "GET", "/api/v2/tags", None, &token).await;
    assert_eq!(r.body["rows"][0]["name"], "Kin");
    let r = call(&app, "DELETE", &format!("/api/v2/tag/{tag}"), None, &token).await;
    assert_eq!(r.status, 200);
    let r = call(&app, "GET", &format!("/api/v2/contact/{id}"), None, &token).await;
    assert_eq!(r.body["tag_ids"], json!([]));
    assert!(r.body["_rev"].as_str().unwrap().starts_with("2-"));
    let r = call(&app, "DELETE", &format!("/api/v2/tag/{tag}"), None, &token).await;
    assert_eq!(r.status, 404);

    let ops = json!({"ops": [
        {"op": "create", "doc": {"name": "New"}},
        {"op": "create", "doc": {"name": ""}},
        {"op": "update", "id": id, "_rev": "1-00000000000000000000000000000000", "doc": {"name": "x"}},
        {"op": "frobnicate"},
        {"op": "delete", "id": id},
    ]});
    let r = call(&app, "POST", "/api/v2/contacts/batch", Some(ops), &token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let results = r.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 5);
    assert_eq!(results[0]["ok"], true);
    assert_eq!(
        (&results[1]["status"], &results[1]["error"]["field"]),
        (&json!(400), &json!("name"))
    );
    assert_eq!(results[2]["status"], 409);
    assert_eq!(results[3]["status"], 400);
    assert_eq!(results[4], json!({"ok": true, "id": id, "deleted": true}));
    let too_many = json!({"ops": vec![json!({"op": "create", "doc": {"name": "x"}}); 201]});
    let r = call(
        &app,
        "POST",
        "/api/v2/contacts/batch",
        Some(too_many),
        &token,
    )
    .await;
    assert_eq!((r.status, &r.body["error"]["field"]), (400, &json!("ops")));
}

#[actix_web::test]
async fn vcard_import_and_exports() {
    let (st, sms, _) = state();
    let (_, token) = sign_up(&st, &sms, 1, "user1").await;
    let app = app!(st);
    let vcf = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Hai Yan\r\nTEL;TYPE=CELL:+86 139 1234 5678\r\nCATEGORIES:Family\r\nEND:VCARD\r\n\
               BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Same\r\nTEL:13912345678\r\nEND:VCARD\r\n\
               BEGIN:VCARD\r\nVERSION:4.0\r\nTEL:1\r\nEND:VCARD\r\n";
    let import = |body: &str, ct: &str| {
        test::TestRequest::post()
            .uri("/api/v2/contacts/import")
            .insert_header(("Content-Type", ct.to_owned()))
            .set_payload(body.to_owned())
    };
    let r = call_with(&app, import(vcf, "text/vcard; charset=utf-8"), Some(&token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"created": 1, "merged": 1, "skipped": [{"line": 12, "reason": "name: must be 1 to 256 characters"}]})
    );
    let r = call_with(
        &app,
        import("BEGIN:VCARD\nFN x\n", "text/vcard"),
        Some(&token),
    )
    .await;
    assert_eq!(
        (r.status, &r.body["error"]["field"]),
        (400, &json!("vcard"))
    );
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("line 2"));
    let r = call_with(&app, import(vcf, "application/json"), Some(&token)).await;
    assert_eq!(
        (r.status, &r.body["error"]["field"]),
        (400, &json!("Content-Type"))
    );

    let res = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/api/v2/contacts/export.vcf")
            .insert_header(("Authorization", format!("Bearer {token}")))
            .to_request(),
    )
    .await;
    assert_eq!(res.status().as_u16(), 200);
    assert!(res
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/vcard"));
    let body = String::from_utf8(test::read_body(res).await.to_vec()).unwrap();
    assert!(
        body.contains("FN:Hai Yan\r\n") && body.contains("CATEGORIES:Family\r\n"),
        "{body}"
    );

    let res = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/api/v2/contacts/export.csv")
            .insert_header(("Authorization", format!("Bearer {token}")))
            .to_request(),
    )
    .await;
    assert_eq!(res.status().as_u16(), 200);
    let body = String::from_utf8(test::read_body(res).await.to_vec()).unwrap();
    assert!(body.starts_with("Name,Notes,Group Membership,"), "{body}");
    assert!(body.contains("Hai Yan,,Family,"), "{body}");
}

#[actix_web::test]
async fn contacts_link_to_findable_kith_users() {
    let (st, sms, _) = state();
    let (_, a) = sign_up(&st, &sms, 1, "user1").await;
    let (b_id, _) = sign_up(&st, &sms, 2, "user2").await;
    let app = app!(st);
    let body = json!({"name": "Bob", "numbers": [
        {"type": "Home", "number": "12345"},
        {"type": "Mobile", "number": "139 0000 0002"}
    ]});
    let r = call(&app, "POST", "/api/v2/contact", Some(body), &a).await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    let r = call(&app, "GET", &format!("/api/v2/contact/{id}"), None, &a).await;
    assert_eq!(r.body["user_id"], b_id.as_str());
    let body =
        json!({"name": "Stranger", "numbers": [{"type": "Home", "number": "+86 139 0000 0099"}]});
    call(&app, "POST", "/api/v2/contact", Some(body), &a).await;
    let r = call(&app, "GET", "/api/v2/contacts", None, &a).await;
    assert_eq!(r.body["rows"][0]["user_id"], b_id.as_str());
    assert!(r.body["rows"][1].get("user_id").is_none());
}
