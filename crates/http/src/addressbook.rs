//! The address book v2 API (document 002) under `/api/v2`: contacts, tags, search and batches.

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use kith_domain::addressbook::{
    BatchOp, BatchResult, Contact, ContactDraft, ExportFormat, SearchParams, Tag, BATCH_MAX,
};
use kith_domain::{DomainError, UserId};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::common::Authed;
use crate::rest::{self, Rest, RestResult};
use crate::AppState;

type Me = Authed<Rest>;

/// Mounts `/api/v2/...`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v2")
            .app_data(rest::json_config())
            .app_data(rest::path_config())
            .app_data(rest::query_config())
            .route("/contact", web::post().to(create))
            .route("/contact/{id}", web::get().to(get_one))
            .route("/contact/{id}", web::put().to(update))
            .route("/contact/{id}", web::delete().to(delete))
            .route("/contacts", web::get().to(search))
            .route("/contacts/batch", web::post().to(batch))
            .route("/contacts/import", web::post().to(import))
            .route("/contacts/export.vcf", web::get().to(export_vcf))
            .route("/contacts/export.csv", web::get().to(export_csv))
            .route("/tag", web::post().to(create_tag))
            .route("/tags", web::get().to(list_tags))
            .route("/tag/{id}", web::put().to(rename_tag))
            .route("/tag/{id}", web::delete().to(delete_tag))
            .default_service(web::to(rest::no_route)),
    );
}

/// A contact as the document shows it, CouchDB-style, with `user_id` (a decimal string) when
/// one of its numbers belongs to a Kith user who may be found by phone.
pub fn contact_doc(c: &Contact, user: Option<UserId>) -> Value {
    let f = &c.fields;
    let mut doc = json!({
        "_id": c.id.to_string(),
        "_rev": c.rev.to_string(),
        "name": f.name().as_str(),
        "numbers": f.numbers().iter()
            .map(|n| json!({"type": n.kind(), "number": n.number()}))
            .collect::<Vec<_>>(),
        "emails": f.emails().iter()
            .map(|e| json!({"type": e.kind(), "email": e.email()}))
            .collect::<Vec<_>>(),
        "tag_ids": f.tag_ids().iter().map(ToString::to_string).collect::<Vec<_>>(),
        "doc_type": "contact",
        "created_date": c.created_at,
    });
    if let Some(obj) = doc.as_object_mut() {
        if let Some(note) = f.note() {
            obj.insert("note".into(), json!(note));
        }
        if let Some(at) = c.modified_at {
            obj.insert("modified_date".into(), json!(at));
        }
        if let Some(user) = user {
            obj.insert("user_id".into(), json!(user.to_string()));
        }
    }
    doc
}

/// One contact's document with its link.
async fn linked_doc(state: &AppState, owner: UserId, c: &Contact) -> Result<Value, DomainError> {
    let links = state
        .addressbook
        .links(owner, std::slice::from_ref(c))
        .await?;
    Ok(contact_doc(c, links.get(&c.id).copied()))
}

/// A tag as this API shows it.
pub fn tag_doc(t: &Tag) -> Value {
    let mut doc = json!({
        "_id": t.id.to_string(),
        "name": t.name.as_str(),
        "doc_type": "tag",
        "created_date": t.created_at,
    });
    if let (Some(obj), Some(at)) = (doc.as_object_mut(), t.modified_at) {
        obj.insert("modified_date".into(), json!(at));
    }
    doc
}

/// The keys a contact body may carry. The CouchDB bookkeeping ones are read or ignored, so
/// that a client may PUT back exactly what it got.
const CONTACT_KEYS: [&str; 11] = [
    "name",
    "numbers",
    "emails",
    "tag_ids",
    "note",
    "doc_type",
    "_id",
    "_rev",
    "created_date",
    "modified_date",
    "user_id",
];

fn object<'a>(field: &'static str, v: &'a Value) -> Result<&'a Map<String, Value>, DomainError> {
    v.as_object()
        .ok_or_else(|| DomainError::invalid(field, "must be a JSON object"))
}

/// An optional string member; `null` counts as absent.
fn opt_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    field: &'static str,
) -> Result<Option<&'a str>, DomainError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(DomainError::invalid(
            field,
            format!("{key} must be a string"),
        )),
    }
}

/// A `[{"type": .., <value_key>: ..}, ..]` list.
fn typed_list(
    obj: &Map<String, Value>,
    field: &'static str,
    value_key: &str,
) -> Result<Vec<(String, String)>, DomainError> {
    let items = match obj.get(field) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(DomainError::invalid(field, "must be an array")),
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let o = item.as_object().ok_or_else(|| {
                DomainError::invalid(field, format!("item {i} must be an object"))
            })?;
            if let Some(k) = o.keys().find(|k| *k != "type" && *k != value_key) {
                return Err(DomainError::invalid(
                    field,
                    format!("item {i} has an unknown field \"{k}\""),
                ));
            }
            let kind = opt_str(o, "type", field)?.unwrap_or("");
            let value = opt_str(o, value_key, field)?.ok_or_else(|| {
                DomainError::invalid(field, format!("item {i} needs a \"{value_key}\" string"))
            })?;
            Ok((kind.to_owned(), value.to_owned()))
        })
        .collect()
}

/// A contact body, checked for shape and types; the domain checks the values.
struct ContactBody {
    draft: ContactDraft,
    id: Option<String>,
    rev: Option<String>,
}

fn contact_body(v: &Value) -> Result<ContactBody, DomainError> {
    let obj = object("body", v)?;
    if let Some(k) = obj.keys().find(|k| !CONTACT_KEYS.contains(&k.as_str())) {
        return Err(DomainError::invalid(
            "body",
            format!("unknown field \"{k}\""),
        ));
    }
    let name = match obj.get("name") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => return Err(DomainError::invalid("name", "is required")),
        Some(_) => return Err(DomainError::invalid("name", "must be a string")),
    };
    let tag_ids = match obj.get("tag_ids") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(ids)) => ids
            .iter()
            .map(|id| {
                id.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| DomainError::invalid("tag_ids", "must be strings"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(DomainError::invalid("tag_ids", "must be an array")),
    };
    match obj.get("doc_type") {
        None | Some(Value::Null) => {}
        Some(Value::String(t)) if t == "contact" => {}
        Some(_) => return Err(DomainError::invalid("doc_type", "must be \"contact\"")),
    }
    for key in ["created_date", "modified_date"] {
        if obj.get(key).is_some_and(|v| !v.is_null() && !v.is_number()) {
            return Err(DomainError::invalid(
                key,
                "must be a number of milliseconds",
            ));
        }
    }
    Ok(ContactBody {
        draft: ContactDraft {
            name,
            numbers: typed_list(obj, "numbers", "number")?,
            emails: typed_list(obj, "emails", "email")?,
            tag_ids,
            note: opt_str(obj, "note", "note")?.map(str::to_owned),
        },
        id: opt_str(obj, "_id", "_id")?.map(str::to_owned),
        rev: opt_str(obj, "_rev", "_rev")?.map(str::to_owned),
    })
}

/// The expected revision: `_rev` from the body or the query, or `If-Match`; they must agree.
fn expected_rev(req: &HttpRequest, sent: Option<String>) -> Result<Option<String>, DomainError> {
    let if_match = match req.headers().get(header::IF_MATCH) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| DomainError::invalid("If-Match", "must be a revision"))?
                .trim()
                .trim_start_matches("W/")
                .trim_matches('"')
                .to_owned(),
        ),
    };
    match (sent, if_match) {
        (Some(a), Some(b)) if a != b => Err(DomainError::invalid(
            "If-Match",
            "differs from _rev in the body",
        )),
        (Some(a), _) => Ok(Some(a)),
        (None, b) => Ok(b),
    }
}

/// `POST /api/v2/contact`: `{"ok": true, "id", "rev"}`.
async fn create(state: web::Data<AppState>, me: Me, body: web::Json<Value>) -> RestResult {
    let body = contact_body(&body)?;
    if body.id.is_some() || body.rev.is_some() {
        return Err(DomainError::invalid(
            "_id",
            "a new contact gets its id and _rev from the server",
        )
        .into());
    }
    let c = state
        .addressbook
        .create(me.caller.user_id, body.draft)
        .await?;
    Ok(HttpResponse::Ok()
        .json(json!({"ok": true, "id": c.id.to_string(), "rev": c.rev.to_string()})))
}

/// `GET /api/v2/contact/{id}`.
async fn get_one(state: web::Data<AppState>, me: Me, path: web::Path<String>) -> RestResult {
    let owner = me.caller.user_id;
    let c = state.addressbook.get(owner, &path).await?;
    Ok(HttpResponse::Ok().json(linked_doc(&state, owner, &c).await?))
}

/// `PUT /api/v2/contact/{id}`: the whole document; answers it as stored.
async fn update(
    state: web::Data<AppState>,
    me: Me,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> RestResult {
    let body = contact_body(&body)?;
    if body.id.as_deref().is_some_and(|id| id != path.as_str()) {
        return Err(DomainError::invalid("_id", "differs from the id in the path").into());
    }
    let rev = expected_rev(&req, body.rev)?;
    let c = state
        .addressbook
        .update(me.caller.user_id, &path, rev.as_deref(), body.draft)
        .await?;
    Ok(HttpResponse::Ok().json(linked_doc(&state, me.caller.user_id, &c).await?))
}

/// The revision of a DELETE, CouchDB-style in the query.
#[derive(Debug, Deserialize)]
struct RevQuery {
    rev: Option<String>,
    #[serde(rename = "_rev")]
    underscore_rev: Option<String>,
}

/// `DELETE /api/v2/contact/{id}[?rev=]`: `{"ok": true, "id"}`.
async fn delete(
    state: web::Data<AppState>,
    me: Me,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<RevQuery>,
) -> RestResult {
    let RevQuery {
        rev,
        underscore_rev,
    } = query.into_inner();
    let rev = expected_rev(&req, rev.or(underscore_rev))?;
    let id = state
        .addressbook
        .delete(me.caller.user_id, &path, rev.as_deref())
        .await?;
    Ok(HttpResponse::Ok().json(json!({"ok": true, "id": id.to_string()})))
}

/// The search parameters, as sent; numbers are parsed here so errors name them.
#[derive(Debug, Deserialize)]
struct SearchQuery {
    keyword: Option<String>,
    items: Option<String>,
    currentpage: Option<String>,
    cursor: Option<String>,
}

fn number(field: &'static str, raw: Option<&str>) -> Result<Option<u32>, DomainError> {
    raw.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u32>()
                .map_err(|_| DomainError::invalid(field, "must be a positive integer"))
        })
        .transpose()
}

/// `GET /api/v2/contacts?keyword=&items=&currentpage=&cursor=`:
/// `{"totalRows", "rows", "next_cursor"}`.
async fn search(state: web::Data<AppState>, me: Me, query: web::Query<SearchQuery>) -> RestResult {
    let q = query.into_inner();
    let params = SearchParams {
        items: number("items", q.items.as_deref())?,
        page: number("currentpage", q.currentpage.as_deref())?,
        keyword: q.keyword,
        cursor: q.cursor,
    };
    let owner = me.caller.user_id;
    let r = state.addressbook.search(owner, params).await?;
    let links = state.addressbook.links(owner, &r.rows).await?;
    Ok(HttpResponse::Ok().json(json!({
        "totalRows": r.total,
        "rows": r.rows.iter()
            .map(|c| contact_doc(c, links.get(&c.id).copied()))
            .collect::<Vec<_>>(),
        "next_cursor": r.next_cursor,
    })))
}

/// One batch operation, checked for shape.
fn batch_op(v: &Value) -> Result<BatchOp, DomainError> {
    let obj = object("ops", v)?;
    let op = opt_str(obj, "op", "op")?
        .ok_or_else(|| DomainError::invalid("op", "must be create, update or delete"))?;
    let id = || {
        opt_str(obj, "id", "id")?
            .map(str::to_owned)
            .ok_or_else(|| DomainError::invalid("id", "is required"))
    };
    let rev = || Ok::<_, DomainError>(opt_str(obj, "_rev", "_rev")?.map(str::to_owned));
    let doc = || {
        obj.get("doc")
            .ok_or_else(|| DomainError::invalid("doc", "is required"))
            .and_then(contact_body)
    };
    match op {
        "create" => Ok(BatchOp::Create(doc()?.draft)),
        "update" => {
            let body = doc()?;
            Ok(BatchOp::Update {
                id: id()?,
                rev: rev()?.or(body.rev),
                draft: body.draft,
            })
        }
        "delete" => Ok(BatchOp::Delete {
            id: id()?,
            rev: rev()?,
        }),
        _ => Err(DomainError::invalid(
            "op",
            "must be create, update or delete",
        )),
    }
}

fn failed(err: &DomainError) -> Value {
    json!({
        "ok": false,
        "status": rest::status_of(err).as_u16(),
        "error": rest::error_object(err),
    })
}

/// `POST /api/v2/contacts/batch` `{"ops": [{"op": "create"|"update"|"delete", "id", "_rev",
/// "doc"}, ...]}`: up to 200 operations, each answered on its own.
async fn batch(state: web::Data<AppState>, me: Me, body: web::Json<Value>) -> RestResult {
    let obj = object("body", &body)?;
    let ops = obj
        .get("ops")
        .and_then(Value::as_array)
        .ok_or_else(|| DomainError::invalid("ops", "must be an array"))?;
    if ops.len() > BATCH_MAX {
        return Err(DomainError::invalid("ops", format!("at most {BATCH_MAX} operations")).into());
    }
    let parsed: Vec<Result<BatchOp, DomainError>> = ops.iter().map(batch_op).collect();
    let valid: Vec<BatchOp> = parsed
        .iter()
        .filter_map(|p| p.as_ref().ok().cloned())
        .collect();
    let mut done = state
        .addressbook
        .batch(me.caller.user_id, valid)
        .await?
        .into_iter();
    let mut results = Vec::with_capacity(parsed.len());
    for p in &parsed {
        let item = match p {
            Err(e) => failed(e),
            Ok(_) => match done.next() {
                Some(BatchResult::Saved(c)) => {
                    json!({"ok": true, "id": c.id.to_string(), "rev": c.rev.to_string()})
                }
                Some(BatchResult::Deleted(id)) => {
                    json!({"ok": true, "id": id.to_string(), "deleted": true})
                }
                Some(BatchResult::Failed(e)) => failed(&e),
                None => failed(&DomainError::Internal("batch result missing".into())),
            },
        };
        results.push(item);
    }
    Ok(HttpResponse::Ok().json(json!({"results": results})))
}

/// A tag body: `{"name"}`.
fn tag_name(v: &Value) -> Result<String, DomainError> {
    let obj = object("body", v)?;
    if let Some(k) = obj.keys().find(|k| {
        !["name", "_id", "doc_type", "created_date", "modified_date"].contains(&k.as_str())
    }) {
        return Err(DomainError::invalid(
            "body",
            format!("unknown field \"{k}\""),
        ));
    }
    opt_str(obj, "name", "name")?
        .map(str::to_owned)
        .ok_or_else(|| DomainError::invalid("name", "is required"))
}

/// `POST /api/v2/tag {"name"}`: the new tag, with `"ok": true`.
async fn create_tag(state: web::Data<AppState>, me: Me, body: web::Json<Value>) -> RestResult {
    let name = tag_name(&body)?;
    let tag = state
        .addressbook
        .create_tag(me.caller.user_id, &name)
        .await?;
    let mut doc = tag_doc(&tag);
    if let Some(obj) = doc.as_object_mut() {
        obj.insert("ok".into(), json!(true));
        obj.insert("id".into(), json!(tag.id.to_string()));
    }
    Ok(HttpResponse::Ok().json(doc))
}

/// `GET /api/v2/tags`: `{"totalRows", "rows"}`, by name.
async fn list_tags(state: web::Data<AppState>, me: Me) -> RestResult {
    let tags = state.addressbook.tags(me.caller.user_id).await?;
    Ok(HttpResponse::Ok().json(json!({
        "totalRows": tags.len(),
        "rows": tags.iter().map(tag_doc).collect::<Vec<_>>(),
    })))
}

/// `PUT /api/v2/tag/{id} {"name"}`: the renamed tag.
async fn rename_tag(
    state: web::Data<AppState>,
    me: Me,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> RestResult {
    let name = tag_name(&body)?;
    let tag = state
        .addressbook
        .rename_tag(me.caller.user_id, &path, &name)
        .await?;
    Ok(HttpResponse::Ok().json(tag_doc(&tag)))
}

/// `DELETE /api/v2/tag/{id}`: removes it from every contact too.
async fn delete_tag(state: web::Data<AppState>, me: Me, path: web::Path<String>) -> RestResult {
    state
        .addressbook
        .delete_tag(me.caller.user_id, &path)
        .await?;
    Ok(HttpResponse::Ok().json(json!({"ok": true, "id": path.as_str()})))
}

/// The media types an import accepts (`text/directory` is vCard 3.0's older name).
const VCARD_TYPES: [&str; 3] = ["text/vcard", "text/x-vcard", "text/directory"];

/// `POST /api/v2/contacts/import` with a `text/vcard` body (3.0 or 4.0):
/// `{"created", "merged", "skipped": [{"line", "reason"}]}`. Broken input is 400 naming the
/// line, and nothing is written.
async fn import(
    state: web::Data<AppState>,
    me: Me,
    req: HttpRequest,
    body: web::Bytes,
) -> RestResult {
    if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
        let essence = ct.split(';').next().unwrap_or("").trim();
        if !VCARD_TYPES.contains(&essence) {
            return Err(DomainError::invalid("Content-Type", "must be text/vcard").into());
        }
    }
    let report = state
        .addressbook
        .import_vcard(me.caller.user_id, &body)
        .await?;
    Ok(HttpResponse::Ok().json(json!({
        "created": report.created,
        "merged": report.merged,
        "skipped": report.skipped.iter()
            .map(|s| json!({"line": s.line, "reason": s.reason}))
            .collect::<Vec<_>>(),
    })))
}

async fn export(state: &AppState, me: Me, format: ExportFormat) -> RestResult {
    let text = state.addressbook.export(me.caller.user_id, format).await?;
    let (mime, file) = match format {
        ExportFormat::VCard => ("text/vcard; charset=utf-8", "contacts.vcf"),
        ExportFormat::Csv => ("text/csv; charset=utf-8", "contacts.csv"),
    };
    Ok(HttpResponse::Ok()
        .content_type(mime)
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{file}\""),
        ))
        .body(text))
}

/// `GET /api/v2/contacts/export.vcf`: the whole book as vCard 4.0.
async fn export_vcf(state: web::Data<AppState>, me: Me) -> RestResult {
    export(&state, me, ExportFormat::VCard).await
}

/// `GET /api/v2/contacts/export.csv`: the whole book with Google/Outlook export columns.
async fn export_csv(state: web::Data<AppState>, me: Me) -> RestResult {
    export(&state, me, ExportFormat::Csv).await
}
