//! End to end: the address book v2 (002) through HTTP, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kith_e2e::{both_backends, Kith, TestDb};
use serde_json::{json, Value};

const PW: &str = "kith-Secret1";

fn names(body: &Value) -> Vec<String> {
    body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

both_backends!(contacts_revisions_search_and_isolation, |db: TestDb| {
    let kith = Kith::start(&db, &[]);
    let (_, ta) = kith.sign_up("13900000201", "Ann", PW);
    let (_, tb) = kith.sign_up("13900000202", "Bob", PW);

    let r = kith.post(
        "/api/v2/contact",
        json!({
            "name": "Cai",
            "numbers": [{"type": "Company", "number": "17314141431"},
                        {"type": "School", "number": "+86 154-7324-43242"}],
            "emails": [{"type": "Company", "email": format!("cai{}example.com", '@')}],
            "tag_ids": []
        }),
        Some(&ta),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["ok"], true);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let rev1 = r.body["rev"].as_str().unwrap().to_owned();
    let path = format!("/api/v2/contact/{id}");

    let r = kith.get(&path, Some(&ta));
    assert_eq!(
        (r.status, &r.body["_rev"]),
        (200, &json!(rev1)),
        "{}",
        r.text
    );
    assert_eq!(r.body["doc_type"], "contact");

    let mut doc = r.body.clone();
    doc["name"] = json!("Caiwei");
    let r = kith.call("PUT", &path, Some(&doc), Some(&ta));
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body["_rev"].as_str().unwrap().starts_with("2-"));
    assert!(r.body["modified_date"].is_i64());
    // Stale revision: 409 and nothing changes.
    doc["name"] = json!("Lost");
    let r = kith.call("PUT", &path, Some(&doc), Some(&ta));
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(kith.get(&path, Some(&ta)).body["name"], "Caiwei");

    // Another user's contact does not exist for them.
    assert_eq!(kith.get(&path, Some(&tb)).status, 404);
    assert_eq!(kith.call("PUT", &path, Some(&doc), Some(&tb)).status, 404);
    assert_eq!(kith.call("DELETE", &path, None, Some(&tb)).status, 404);
    assert_eq!(kith.get("/api/v2/contacts", Some(&tb)).body["totalRows"], 0);

    for name in ["alice", "Bert", "dora"] {
        let r = kith.post("/api/v2/contact", json!({"name": name}), Some(&ta));
        assert_eq!(r.status, 200);
    }
    let r = kith.get("/api/v2/contacts?keyword=154732", Some(&ta));
    assert_eq!(
        (r.status, names(&r.body)),
        (200, vec!["Caiwei".to_owned()]),
        "{}",
        r.text
    );
    let r = kith.get("/api/v2/contacts?keyword=CAIW", Some(&ta));
    assert_eq!(r.body["totalRows"], 1);
    let r = kith.get("/api/v2/contacts?keyword=%25", Some(&ta));
    assert_eq!(r.body["totalRows"], 0);
    let r = kith.get("/api/v2/contacts?items=2&currentpage=1", Some(&ta));
    assert_eq!(r.body["totalRows"], 4);
    assert_eq!(names(&r.body), ["alice", "Bert"]);
    let cursor = r.body["next_cursor"].as_str().unwrap().to_owned();
    let r = kith.get(
        &format!("/api/v2/contacts?items=2&cursor={cursor}"),
        Some(&ta),
    );
    assert_eq!(names(&r.body), ["Caiwei", "dora"]);
    let r = kith.get("/api/v2/contacts?items=5000", Some(&ta));
    assert_eq!(r.status, 400);

    let r = kith.call("DELETE", &path, None, Some(&ta));
    assert_eq!((r.status, &r.body["id"]), (200, &json!(id)), "{}", r.text);
    assert_eq!(kith.get(&path, Some(&ta)).status, 404);
});

both_backends!(tags_on_contacts, |db: TestDb| {
    let kith = Kith::start(&db, &[]);
    let (_, ta) = kith.sign_up("13900000211", "Ann", PW);
    let r = kith.post("/api/v2/tag", json!({"name": "Family"}), Some(&ta));
    assert_eq!(r.status, 200, "{}", r.text);
    let tag = r.body["_id"].as_str().unwrap().to_owned();
    let r = kith.post(
        "/api/v2/contact",
        json!({"name": "Mum", "tag_ids": [tag]}),
        Some(&ta),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let r = kith.post(
        "/api/v2/contact",
        json!({"name": "Nope", "tag_ids": ["00000000000000aa"]}),
        Some(&ta),
    );
    assert_eq!(
        (r.status, &r.body["error"]["field"]),
        (400, &json!("tag_ids"))
    );
    let r = kith.get(&format!("/api/v2/contacts?keyword={tag}"), Some(&ta));
    assert_eq!(names(&r.body), ["Mum"]);
    let r = kith.call("DELETE", &format!("/api/v2/tag/{tag}"), None, Some(&ta));
    assert_eq!(r.status, 200, "{}", r.text);
    let r = kith.get(&format!("/api/v2/contact/{id}"), Some(&ta));
    assert_eq!(r.body["tag_ids"], json!([]));
    assert_eq!(kith.get("/api/v2/tags", Some(&ta)).body["totalRows"], 0);
});

both_backends!(vcard_import_export_and_batch, |db: TestDb| {
    let kith = Kith::start(&db, &[]);
    let (_, ta) = kith.sign_up("13900000221", "Ann", PW);
    let auth = format!("Bearer {ta}");
    let vcf = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Hai Yan\r\nTEL;TYPE=CELL:+86 139 1234 5678\r\nCATEGORIES:Family\r\nEND:VCARD\r\n\
               BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Same\r\nTEL:13912345678\r\nEND:VCARD\r\n";
    let r = kith.raw(
        "POST",
        "/api/v2/contacts/import",
        &[("Authorization", &auth), ("Content-Type", "text/vcard")],
        vcf.to_owned(),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body, json!({"created": 1, "merged": 1, "skipped": []}));
    let r = kith.raw(
        "POST",
        "/api/v2/contacts/import",
        &[("Authorization", &auth), ("Content-Type", "text/vcard")],
        format!("{vcf}BEGIN:VCARD\r\nbroken\r\n"),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(kith.get("/api/v2/contacts", Some(&ta)).body["totalRows"], 1);

    let r = kith.get("/api/v2/contacts/export.vcf", Some(&ta));
    assert_eq!(r.status, 200);
    assert!(r.text.contains("FN:Hai Yan\r\n") && r.text.contains("CATEGORIES:Family"));
    let r = kith.get("/api/v2/contacts/export.csv", Some(&ta));
    assert!(
        r.text.starts_with("Name,Notes,Group Membership,"),
        "{}",
        r.text
    );

    let r = kith.post(
        "/api/v2/contacts/batch",
        json!({"ops": [
            {"op": "create", "doc": {"name": "One"}},
            {"op": "create", "doc": {"name": ""}},
            {"op": "delete", "id": "0000000000000001"}
        ]}),
        Some(&ta),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let statuses: Vec<Value> = r.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.get("status").cloned().unwrap_or(json!(200)))
        .collect();
    assert_eq!(statuses, [json!(200), json!(400), json!(404)]);
});
