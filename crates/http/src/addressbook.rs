//! The address book v2 API (document 002) under `/api/v2`: contacts, tags, search and batches.

use actix_web::{
    http::{header, Method},
    web, HttpRequest, HttpResponse,
};
use kith_domain::addressbook::{
    BatchOp, BatchResult, Contact, ContactDraft, ExportFormat, SearchParams, Tag, BATCH_MAX,
};
use kith_domain::{DomainError, UserId};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::common::Authed;
use crate::rest::{self, BodyFaults, ErrorEnvelope, ErrorObject, Rest, RestResult, SessionFaults};
use crate::AppState;

type Me = Authed<Rest>;

const TAG: &str = "002 address book";

/// This module's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(
        paths(
            create, get_one, update, delete, search, batch, import, export_vcf, export_csv,
            create_tag, list_tags, rename_tag, delete_tag
        ),
        components(schemas(
            ContactInput,
            ContactDoc,
            TypedNumber,
            TypedEmail,
            Saved,
            Removed,
            SearchAnswer,
            BatchBody,
            BatchItemOp,
            BatchAnswer,
            BatchItemResult,
            TagInput,
            TagDoc,
            TagCreated,
            TagList,
            ImportAnswer,
            SkippedCard
        ))
    )]
    struct Api;
    <Api as utoipa::OpenApi>::openapi()
}

/// Mounts `/api/v2/...`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v2")
            .app_data(rest::json_config())
            .app_data(rest::path_config())
            .app_data(rest::query_config())
            .service(rest::resource(
                "/contact",
                [(Method::POST, web::to(create))],
            ))
            .service(rest::resource(
                "/contact/{id}",
                [
                    (Method::GET, web::to(get_one)),
                    (Method::PUT, web::to(update)),
                    (Method::DELETE, web::to(delete)),
                ],
            ))
            .service(rest::resource(
                "/contacts",
                [(Method::GET, web::to(search))],
            ))
            .service(rest::resource(
                "/contacts/batch",
                [(Method::POST, web::to(batch))],
            ))
            .service(rest::resource(
                "/contacts/import",
                [(Method::POST, web::to(import))],
            ))
            .service(rest::resource(
                "/contacts/export.vcf",
                [(Method::GET, web::to(export_vcf))],
            ))
            .service(rest::resource(
                "/contacts/export.csv",
                [(Method::GET, web::to(export_csv))],
            ))
            .service(rest::resource(
                "/tag",
                [(Method::POST, web::to(create_tag))],
            ))
            .service(rest::resource("/tags", [(Method::GET, web::to(list_tags))]))
            .service(rest::resource(
                "/tag/{id}",
                [
                    (Method::PUT, web::to(rename_tag)),
                    (Method::DELETE, web::to(delete_tag)),
                ],
            ))
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

/// The expected revision: `_rev` from the body or the query (blank counts as absent, see
/// [`rest::present`]), or `If-Match`; they must agree.
fn expected_rev(req: &HttpRequest, sent: Option<&str>) -> Result<Option<String>, DomainError> {
    let if_match = match req.headers().get(header::IF_MATCH) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| DomainError::invalid("If-Match", "must be a revision"))?
                .trim()
                .trim_start_matches("W/")
                .trim_matches('"'),
        ),
    }
    .filter(|m| !m.is_empty());
    match (sent, if_match) {
        (Some(a), Some(b)) if a != b => Err(DomainError::invalid(
            "If-Match",
            "differs from _rev in the body",
        )),
        (sent, if_match) => Ok(sent.or(if_match).map(str::to_owned)),
    }
}

/// `POST /api/v2/contact`: `{"ok": true, "id", "rev"}`.
#[utoipa::path(
    post,
    operation_id = "addressbook_create",
    path = "/api/v2/contact",
    tag = TAG,
    security(("bearer" = []), ("cookie" = [])),
    // Document 002's example (its email addresses were mangled in the copy; these stand in).
    request_body(content = ContactInput, example = json!({
        "name": "Cai",
        "numbers": [
            {"type": "Company", "number": "17314141431"},
            {"type": "School", "number": "16213131313"}
        ],
        "emails": [{"type": "Company", "email": "cai@example.com"}],
        "tag_ids": ["d3ccb1b893d0352124555151ddac05a6"]
    })),
    responses(
        (status = 200, description = "created", body = Saved,
         example = json!({"ok": true, "id": "d3ccb1b893d0352124555151ddc5a923",
                          "rev": "1-99a8bf4969373534f23ff63e9981e009"})),
        (status = 400, description = "`invalid`: a malformed body, an unknown field, `_id` or \
                                      `_rev` sent, or a field over its limits; `field` names it",
         body = ErrorEnvelope),
        (status = 404, description = "`not_found`: a `tag_ids` entry names no tag of the caller's",
         body = ErrorEnvelope),
        BodyFaults,
        SessionFaults,
    )
)]
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
#[utoipa::path(
    get,
    operation_id = "addressbook_get_one",
    path = "/api/v2/contact/{id}",
    tag = TAG,
    security(("bearer" = []), ("cookie" = [])),
    params(("id" = String, Path, description = "the contact's `_id`")),
    responses(
        (status = 200, description = "the contact", body = ContactDoc, example = json!({
             "_id": "d3ccb1b893d0352124555151ddc5a923",
             "_rev": "2-b09912e678341a2a79c4c1c3129e5bb0",
             "name": "Caiwei",
             "numbers": [{"type": "Company", "number": "17314141431"}],
             "emails": [{"type": "Home", "email": "caiwei@example.com"}],
             "tag_ids": ["d3ccb1b893d0352124555151ddac05a6"],
             "doc_type": "contact",
             "created_date": 1_539_248_841_297_i64,
             "modified_date": 1_539_249_790_186_i64
         })),
        (status = 404, description = "`not_found`: no such contact in the caller's book",
         body = ErrorEnvelope),
        SessionFaults,
    )
)]
async fn get_one(state: web::Data<AppState>, me: Me, path: web::Path<String>) -> RestResult {
    let owner = me.caller.user_id;
    let c = state.addressbook.get(owner, &path).await?;
    Ok(HttpResponse::Ok().json(linked_doc(&state, owner, &c).await?))
}

/// `PUT /api/v2/contact/{id}`: the whole document; answers it as stored.
#[utoipa::path(
    put,
    operation_id = "addressbook_update",
    path = "/api/v2/contact/{id}",
    tag = TAG,
    security(("bearer" = []), ("cookie" = [])),
    params(
        ("id" = String, Path, description = "the contact's `_id`"),
        ("If-Match" = Option<String>, Header, description = "the `_rev` being replaced (or send \
                                                              `_rev` in the body)"),
    ),
    // Document 002's example (its email address was mangled in the copy; this stands in).
    request_body(content = ContactInput, example = json!({
        "name": "Caiwei",
        "numbers": [{"type": "Company", "number": "17314141431"}],
        "emails": [{"type": "Home", "email": "caiwei@example.com"}],
        "tag_ids": ["d3ccb1b893d0352124555151ddac05a6"]
    })),
    responses(
        (status = 200, description = "the contact as stored, with its new `_rev`",
         body = ContactDoc, example = json!({
             "_id": "d3ccb1b893d0352124555151ddc5a923",
             "_rev": "2-b09912e678341a2a79c4c1c3129e5bb0",
             "name": "Caiwei",
             "numbers": [{"type": "Company", "number": "17314141431"}],
             "emails": [{"type": "Home", "email": "caiwei@example.com"}],
             "tag_ids": ["d3ccb1b893d0352124555151ddac05a6"],
             "doc_type": "contact",
             "created_date": 1_539_248_841_297_i64,
             "modified_date": 1_539_249_790_186_i64
         })),
        (status = 400, description = "`invalid`: a malformed body, an unknown field, `_id` \
                                      differing from the path, `_rev` differing from `If-Match`, \
                                      or a field over its limits", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: no such contact, or a `tag_ids` entry names no \
                                      tag", body = ErrorEnvelope),
        (status = 409, description = "`conflict`: `_rev` is not the current revision",
         body = ErrorEnvelope),
        BodyFaults,
        SessionFaults,
    )
)]
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
    let rev = expected_rev(&req, rest::present(&body.rev))?;
    let c = state
        .addressbook
        .update(me.caller.user_id, &path, rev.as_deref(), body.draft)
        .await?;
    Ok(HttpResponse::Ok().json(linked_doc(&state, me.caller.user_id, &c).await?))
}

/// The revision of a DELETE, CouchDB-style in the query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct RevQuery {
    /// The revision being deleted (or send `If-Match`); without any, the last write wins.
    rev: Option<String>,
    /// Same as `rev`, CouchDB's spelling.
    #[serde(rename = "_rev")]
    underscore_rev: Option<String>,
}

/// `DELETE /api/v2/contact/{id}[?rev=]`: `{"ok": true, "id"}`.
#[utoipa::path(
    delete,
    operation_id = "addressbook_delete",
    path = "/api/v2/contact/{id}",
    tag = TAG,
    security(("bearer" = []), ("cookie" = [])),
    params(
        ("id" = String, Path, description = "the contact's `_id`"),
        RevQuery,
        ("If-Match" = Option<String>, Header, description = "the `_rev` being deleted"),
    ),
    responses(
        (status = 200, description = "deleted", body = Removed,
         example = json!({"ok": true, "id": "d3ccb1b893d0352124555151ddc5a923"})),
        (status = 400, description = "`invalid`: `rev` differing from `If-Match`", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: no such contact", body = ErrorEnvelope),
        (status = 409, description = "`conflict`: `rev` is not the current revision", body = ErrorEnvelope),
        SessionFaults,
    )
)]
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
    let rev = expected_rev(&req, rest::present(&rev).or(rest::present(&underscore_rev)))?;
    let id = state
        .addressbook
        .delete(me.caller.user_id, &path, rev.as_deref())
        .await?;
    Ok(HttpResponse::Ok().json(json!({"ok": true, "id": id.to_string()})))
}

/// The search parameters, as sent; numbers are parsed here so errors name them.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct SearchQuery {
    /// Matches names, numbers, emails or tag ids.
    #[param(example = "16")]
    keyword: Option<String>,
    /// Rows per page.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000, example = 100)]
    items: Option<String>,
    /// The page, from 1.
    #[param(value_type = Option<u32>, minimum = 1, example = 1)]
    currentpage: Option<String>,
    /// `next_cursor` from the previous page: faster than `currentpage` on large books.
    #[param(pattern = r"^([0-9a-f]{16}\.([0-9a-f]{2})*)?$")]
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
#[utoipa::path(
    get,
    operation_id = "addressbook_search",
    path = "/api/v2/contacts",
    tag = TAG,
    security(("bearer" = []), ("cookie" = [])),
    params(SearchQuery),
    responses(
        // Document 002's example, its JSON repaired and emails standing in for mangled ones.
        (status = 200, description = "one page of the contacts matching `keyword`, by name",
         body = SearchAnswer, example = json!({
             "totalRows": 4,
             "rows": [
                 {"name": "tom", "numbers": [{"type": "Company", "number": "164832443241"},
                     {"type": "School", "number": "16234234241"}],
                  "emails": [{"type": "School", "email": "tom@example.edu"},
                     {"type": "Company", "email": "tom@example.com"}],
                  "tag_ids": [], "doc_type": "contact", "created_date": 1_539_246_059_086_i64},
                 {"name": "carter", "numbers": [{"type": "Home", "number": "16473243224"}],
                  "emails": [], "tag_ids": [], "doc_type": "contact",
                  "created_date": 1_539_246_138_091_i64}
             ],
             "next_cursor": null
         })),
        (status = 400, description = "`invalid`: a bad `items`, `currentpage` or `cursor`",
         body = ErrorEnvelope),
        SessionFaults,
    )
)]
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
#[utoipa::path(
    post,
    operation_id = "addressbook_batch",
    path = "/api/v2/contacts/batch",
    tag = TAG,
    security(("bearer" = []), ("cookie" = [])),
    request_body(content = BatchBody, example = json!({"ops": [
        {"op": "create", "doc": {"name": "carter",
            "numbers": [{"type": "Home", "number": "16473243224"}]}},
        {"op": "delete", "id": "d3ccb1b893d0352124555151ddc5a923",
          "_rev": "2-b09912e678341a2a79c4c1c3129e5bb0"}
    ]})),
    responses(
        (status = 200, description = "one result per operation, in order; a refused operation \
                                      carries its own status and error", body = BatchAnswer,
         example = json!({"results": [
             {"ok": true, "id": "e41c2c9a8b3d4f60a1b2c3d4e5f60718",
               "rev": "1-0f1e2d3c4b5a69788796a5b4c3d2e1f0"},
             {"ok": false, "status": 409, "error": {"code": "conflict",
               "message": "conflict: _rev"}}
         ]})),
        (status = 400, description = "`invalid`: no `ops` array, or more than 200 operations",
         body = ErrorEnvelope),
        BodyFaults,
        SessionFaults,
    )
)]
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
#[utoipa::path(
    post,
    operation_id = "addressbook_create_tag",
    path = "/api/v2/tag",
    tag = TAG,
    security(("bearer" = []), ("cookie" = [])),
    request_body(content = TagInput, example = json!({"name": "family"})),
    responses(
        (status = 200, description = "the new tag", body = TagCreated,
         example = json!({"ok": true, "id": "d3ccb1b893d0352124555151ddac05a6",
             "_id": "d3ccb1b893d0352124555151ddac05a6", "name": "family", "doc_type": "tag",
             "created_date": 1_539_246_059_086_i64})),
        (status = 400, description = "`invalid`: a malformed body, an unknown field, or a bad \
                                      `name`", body = ErrorEnvelope),
        (status = 409, description = "`conflict`: the caller has a tag of that name",
         body = ErrorEnvelope),
        BodyFaults,
        SessionFaults,
    )
)]
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
#[utoipa::path(
    get,
    operation_id = "addressbook_list_tags",
    path = "/api/v2/tags",
    tag = TAG,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "all the caller's tags, by name", body = TagList),
        SessionFaults,
    )
)]
async fn list_tags(state: web::Data<AppState>, me: Me) -> RestResult {
    let tags = state.addressbook.tags(me.caller.user_id).await?;
    Ok(HttpResponse::Ok().json(json!({
        "totalRows": tags.len(),
        "rows": tags.iter().map(tag_doc).collect::<Vec<_>>(),
    })))
}

/// `PUT /api/v2/tag/{id} {"name"}`: the renamed tag.
#[utoipa::path(
    put,
    operation_id = "addressbook_rename_tag",
    path = "/api/v2/tag/{id}",
    tag = TAG,
    security(("bearer" = []), ("cookie" = [])),
    params(("id" = String, Path, description = "the tag's `_id`")),
    request_body(content = TagInput, example = json!({"name": "friends"})),
    responses(
        (status = 200, description = "the renamed tag", body = TagDoc),
        (status = 400, description = "`invalid`: a malformed body, an unknown field, or a bad \
                                      `name`", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: no such tag", body = ErrorEnvelope),
        (status = 409, description = "`conflict`: the caller has a tag of that name",
         body = ErrorEnvelope),
        BodyFaults,
        SessionFaults,
    )
)]
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
#[utoipa::path(
    delete,
    operation_id = "addressbook_delete_tag",
    path = "/api/v2/tag/{id}",
    tag = TAG,
    security(("bearer" = []), ("cookie" = [])),
    params(("id" = String, Path, description = "the tag's `_id`")),
    responses(
        (status = 200, description = "deleted, and taken off every contact", body = Removed,
         example = json!({"ok": true, "id": "d3ccb1b893d0352124555151ddac05a6"})),
        (status = 404, description = "`not_found`: no such tag", body = ErrorEnvelope),
        SessionFaults,
    )
)]
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
#[utoipa::path(
    post,
    operation_id = "addressbook_import",
    path = "/api/v2/contacts/import",
    tag = TAG,
    security(("bearer" = []), ("cookie" = [])),
    request_body(content = String, content_type = "text/vcard",
        description = "vCard 3.0 or 4.0 (also `text/x-vcard`, `text/directory`)",
        example = "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:carter\r\nTEL;TYPE=home:16473243224\r\nEND:VCARD\r\n"),
    responses(
        (status = 200, description = "what was imported", body = ImportAnswer,
         example = json!({"created": 1, "merged": 0, "skipped": []})),
        (status = 400, description = "`invalid`: another Content-Type, a body with no card, or \
                                      broken vCard (the message names the line); nothing is \
                                      written",
         body = ErrorEnvelope),
        BodyFaults,
        SessionFaults,
    )
)]
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
#[utoipa::path(
    get,
    operation_id = "addressbook_export_vcf",
    path = "/api/v2/contacts/export.vcf",
    tag = TAG,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "the whole book, vCard 4.0, as an attachment",
         content_type = "text/vcard", body = String),
        SessionFaults,
    )
)]
async fn export_vcf(state: web::Data<AppState>, me: Me) -> RestResult {
    export(&state, me, ExportFormat::VCard).await
}

/// `GET /api/v2/contacts/export.csv`: the whole book with Google/Outlook export columns.
#[utoipa::path(
    get,
    operation_id = "addressbook_export_csv",
    path = "/api/v2/contacts/export.csv",
    tag = TAG,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "the whole book, with Google/Outlook export columns, as an \
                                      attachment", content_type = "text/csv", body = String),
        SessionFaults,
    )
)]
async fn export_csv(state: web::Data<AppState>, me: Me) -> RestResult {
    export(&state, me, ExportFormat::Csv).await
}

// The shapes below exist for the OpenAPI document only: the handlers read and write the same
// keys through `serde_json::Value` (see `contact_body`, `contact_doc`, `tag_doc`), so a change to
// one must be made to the other.

/// A typed phone number.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
struct TypedNumber {
    /// A free label (`Company`, `Home`, ...); may be empty.
    #[serde(rename = "type")]
    #[schema(example = "Company")]
    kind: String,
    /// The number as the user wrote it.
    #[schema(example = "17314141431")]
    number: String,
}

/// A typed email address.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
struct TypedEmail {
    /// A free label; may be empty.
    #[serde(rename = "type")]
    #[schema(example = "Home")]
    kind: String,
    /// The address.
    email: String,
}

/// A contact as sent to create or replace it. The bookkeeping keys a read answers (`_id`,
/// `_rev`, `doc_type`, dates, `user_id`) may be sent back and are ignored, except `_id` (must
/// match the path; refused on create) and `_rev` (the revision replaced).
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
struct ContactInput {
    /// The contact's name (required).
    name: String,
    /// Phone numbers.
    #[schema(nullable = false)]
    numbers: Option<Vec<TypedNumber>>,
    /// Email addresses.
    #[schema(nullable = false)]
    emails: Option<Vec<TypedEmail>>,
    /// Ids of the caller's tags.
    #[schema(nullable = false)]
    tag_ids: Option<Vec<String>>,
    /// A free note.
    note: Option<String>,
    /// The revision being replaced (update only; or send `If-Match`).
    #[serde(rename = "_rev")]
    rev: Option<String>,
}

/// A contact, CouchDB-style.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
struct ContactDoc {
    /// Its id.
    #[serde(rename = "_id")]
    id: String,
    /// Its revision: `<n>-<hash>`, `n` growing with each change.
    #[serde(rename = "_rev")]
    #[schema(example = "2-b09912e678341a2a79c4c1c3129e5bb0")]
    rev: String,
    /// The contact's name.
    name: String,
    /// Phone numbers.
    numbers: Vec<TypedNumber>,
    /// Email addresses.
    emails: Vec<TypedEmail>,
    /// Ids of the caller's tags.
    tag_ids: Vec<String>,
    /// A free note, when set.
    #[schema(nullable = false)]
    note: Option<String>,
    /// Always `contact`.
    #[schema(example = "contact")]
    doc_type: String,
    /// Created, in milliseconds since the epoch.
    created_date: i64,
    /// Last changed, in milliseconds since the epoch; absent until the first change.
    #[schema(nullable = false)]
    modified_date: Option<i64>,
    /// The Kith user (decimal id) one of its numbers belongs to, when that user may be found
    /// by phone.
    #[schema(nullable = false)]
    user_id: Option<String>,
}

/// A write's answer.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
struct Saved {
    /// Always true.
    ok: bool,
    /// The contact's id.
    id: String,
    /// Its new revision.
    rev: String,
}

/// A delete's answer.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
struct Removed {
    /// Always true.
    ok: bool,
    /// The id deleted.
    id: String,
}

/// `GET /api/v2/contacts`'s answer.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
struct SearchAnswer {
    /// Contacts matching the keyword, over all pages.
    #[serde(rename = "totalRows")]
    total_rows: u64,
    /// This page.
    rows: Vec<ContactDoc>,
    /// The `cursor` for the next page; null on the last.
    next_cursor: Option<String>,
}

/// `POST /api/v2/contacts/batch`'s body.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
struct BatchBody {
    /// Up to 200 operations, applied in order.
    ops: Vec<BatchItemOp>,
}

/// One batch operation.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
struct BatchItemOp {
    /// `create`, `update` or `delete`.
    #[schema(example = "create")]
    op: String,
    /// The contact (update, delete).
    #[schema(nullable = false)]
    id: Option<String>,
    /// The revision replaced (update, delete).
    #[serde(rename = "_rev")]
    #[schema(nullable = false)]
    rev: Option<String>,
    /// The contact's content (create, update).
    #[schema(nullable = false)]
    doc: Option<ContactInput>,
}

/// `POST /api/v2/contacts/batch`'s answer.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
struct BatchAnswer {
    /// One per operation, in order.
    results: Vec<BatchItemResult>,
}

/// One batch operation's result: `ok` with `id` (and `rev`, or `deleted`), or the refusal.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
struct BatchItemResult {
    /// Whether this operation was applied.
    ok: bool,
    /// The contact.
    #[schema(nullable = false)]
    id: Option<String>,
    /// Its new revision (create, update).
    #[schema(nullable = false)]
    rev: Option<String>,
    /// True for a delete.
    #[schema(nullable = false)]
    deleted: Option<bool>,
    /// The HTTP status this operation alone would have had.
    #[schema(nullable = false)]
    status: Option<u16>,
    /// Why it was refused.
    #[schema(nullable = false)]
    error: Option<ErrorObject>,
}

/// A tag's body: `{"name"}`.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
struct TagInput {
    /// The tag's name.
    name: String,
}

/// A tag.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
struct TagDoc {
    /// Its id.
    #[serde(rename = "_id")]
    id: String,
    /// Its name.
    name: String,
    /// Always `tag`.
    #[schema(example = "tag")]
    doc_type: String,
    /// Created, in milliseconds since the epoch.
    created_date: i64,
    /// Last renamed, in milliseconds since the epoch.
    #[schema(nullable = false)]
    modified_date: Option<i64>,
}

/// `POST /api/v2/tag`'s answer: the tag with `ok` and `id`.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
struct TagCreated {
    /// Always true.
    ok: bool,
    /// The tag's id (as `_id`).
    id: String,
    /// The tag.
    #[serde(flatten)]
    tag: TagDoc,
}

/// `GET /api/v2/tags`'s answer.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
struct TagList {
    /// How many tags.
    #[serde(rename = "totalRows")]
    total_rows: u64,
    /// The tags, by name.
    rows: Vec<TagDoc>,
}

/// `POST /api/v2/contacts/import`'s answer.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
struct ImportAnswer {
    /// New contacts.
    created: u32,
    /// Cards merged into an existing contact with the same number.
    merged: u32,
    /// Cards left out, and why.
    skipped: Vec<SkippedCard>,
}

/// A card left out of an import.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
struct SkippedCard {
    /// The line it starts on.
    line: u32,
    /// Why.
    reason: String,
}
