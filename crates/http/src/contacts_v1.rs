//! The contacts v1 API (document 000) under `/api/v1/contact`: contacts keyed by string user ids.

use std::sync::Arc;

use actix_web::{http::Method, web, HttpRequest, HttpResponse};
use kith_domain::ids::UserId;
use kith_domain::ports::{Related, SideFilter};
use kith_domain::relationship::{Command, ConvType, RemarkPatch};
use kith_domain::social::{UploadEntry, UploadResult};
use kith_domain::DomainError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::common::Authed;
use crate::rest::{
    self, BodyFaults, ErrorEnvelope, ErrorObject, PageQuery, Paging, Rest, RestResult,
    SessionFaults,
};
use crate::sealtalk::StringOrNumber;
use crate::AppState;

type Me = Authed<Rest>;

const TAG: &str = "000 contacts v1";

/// This module's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(
        paths(
            list,
            conversations,
            batch_upload,
            get_one,
            edit,
            follow,
            unfollow,
            star,
            unstar,
            block,
            unblock,
            set_conversation
        ),
        components(schemas(Contact, EditBody, Conversations, UploadItem, UploadAnswer))
    )]
    struct Api;
    <Api as utoipa::OpenApi>::openapi()
}

/// Mounts `/api/v1/contact...`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1/contact")
            .app_data(rest::json_config())
            .app_data(rest::path_config())
            .app_data(rest::query_config())
            // The fixed segments go first: they would otherwise be read as user ids.
            .service(rest::resource("", [(Method::GET, web::to(list))]))
            .service(rest::resource(
                "/conversation",
                [(Method::GET, web::to(conversations))],
            ))
            .service(rest::resource(
                "/batch_upload",
                [(Method::POST, web::to(batch_upload))],
            ))
            .service(rest::resource(
                "/{user_id}",
                [
                    (Method::GET, web::to(get_one)),
                    (Method::POST, web::to(edit)),
                ],
            ))
            .service(rest::resource(
                "/{user_id}/follow",
                [(Method::POST, web::to(follow))],
            ))
            .service(rest::resource(
                "/{user_id}/unfollow",
                [(Method::POST, web::to(unfollow))],
            ))
            .service(rest::resource(
                "/{user_id}/star",
                [(Method::POST, web::to(star))],
            ))
            .service(rest::resource(
                "/{user_id}/unstar",
                [(Method::POST, web::to(unstar))],
            ))
            .service(rest::resource(
                "/{user_id}/block",
                [(Method::POST, web::to(block))],
            ))
            .service(rest::resource(
                "/{user_id}/unblock",
                [(Method::POST, web::to(unblock))],
            ))
            .service(rest::resource(
                "/{user_id}/conversation/{conv_type}",
                [(Method::POST, web::to(set_conversation))],
            ))
            .default_service(web::to(rest::no_route)),
    );
}

/// One contact as contacts v1 shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"user_id": "2918372541", "nickname": "edwin", "portrait_uri": "",
    "display_name": "edwin wang", "phone": "+8618012345678", "is_friend": false,
    "is_following": true, "is_followed_by": false, "is_starred": false, "is_blocked": false,
    "conv_type": "normal", "updated_at": 1_539_246_059_086_i64}))]
pub struct Contact {
    /// Their user id, in decimal.
    #[schema(example = "2918372541")]
    user_id: String,
    /// Their nickname.
    nickname: String,
    /// Their portrait's URL (may be empty).
    portrait_uri: String,
    /// The caller's name for them; null when unset.
    display_name: Option<String>,
    /// E.164, only when their number is visible to me (it came from my phone book).
    phone: Option<String>,
    /// Friends (both ways).
    is_friend: bool,
    /// The caller follows them.
    is_following: bool,
    /// They follow the caller.
    is_followed_by: bool,
    /// The caller starred them.
    is_starred: bool,
    /// The caller blocks them.
    is_blocked: bool,
    /// The conversation list they are in: `normal`, `sticky` or `archive`.
    #[schema(value_type = String, example = "normal")]
    conv_type: &'static str,
    /// Milliseconds; the latest change to my row, their row on me, or their profile, so that a
    /// polling client sees every change that alters this object.
    updated_at: i64,
}

impl From<Related> for Contact {
    fn from(r: Related) -> Self {
        let Related { user, mine, theirs } = r;
        Self {
            user_id: user.id.to_string(),
            phone: mine.phone_visible.then(|| user.phone.e164().to_owned()),
            nickname: user.nickname,
            portrait_uri: user.portrait_uri,
            display_name: mine.display_name.clone(),
            is_friend: mine.is_friend(),
            is_following: mine.following,
            is_followed_by: theirs.following,
            is_starred: mine.starred,
            is_blocked: mine.blocking,
            conv_type: mine.conv_type.as_str(),
            updated_at: mine.updated_at.max(theirs.updated_at).max(user.updated_at),
        }
    }
}

/// Renames the domain's field names to this API's.
fn v1(err: DomainError) -> DomainError {
    let err = rest::rename(err, "id", "user_id");
    rest::rename(err, "displayName", "display_name")
}

fn contact_id(raw: &str) -> Result<UserId, DomainError> {
    rest::path_user_id("user_id", raw)
}

/// Runs `cmd` on the contact in the path and answers the contact as it is afterwards.
async fn act(state: &AppState, me: Me, raw_id: &str, cmd: Command) -> RestResult {
    let me = me.caller.user_id;
    let other = contact_id(raw_id)?;
    let t = state.relationships.run(me, other, cmd).await.map_err(v1)?;
    let user = state.relationships.target(me, other).await.map_err(v1)?;
    let related = Related {
        user,
        mine: t.pair.mine,
        theirs: t.pair.theirs,
    };
    Ok(HttpResponse::Ok().json(Contact::from(related)))
}

/// Follows the contact.
#[utoipa::path(
    post,
    operation_id = "contacts_v1_follow",
    path = "/api/v1/contact/{user_id}/follow",
    tag = TAG,
    security(("bearer" = []), ("cookie" = [])),
    params(("user_id" = String, Path, description = "the contact's user id, in decimal", pattern = r"^[1-9][0-9]{0,15}$")),
    responses(
        (status = 200, description = "the contact afterwards", body = Contact),
        (status = 400, description = "`invalid`: a bad `user_id` (also the caller's own)", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`: a block between the two refuses it", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: no such user", body = ErrorEnvelope),
        (status = 409, description = "`conflict`: the state does not allow it", body = ErrorEnvelope),
        SessionFaults,
    )
)]
async fn follow(state: web::Data<AppState>, me: Me, path: web::Path<String>) -> RestResult {
    act(&state, me, &path, Command::Follow).await
}

/// Stops following the contact.
#[utoipa::path(
    post,
    operation_id = "contacts_v1_unfollow",
    path = "/api/v1/contact/{user_id}/unfollow",
    tag = TAG,
    security(("bearer" = []), ("cookie" = [])),
    params(("user_id" = String, Path, description = "the contact's user id, in decimal", pattern = r"^[1-9][0-9]{0,15}$")),
    responses(
        (status = 200, description = "the contact afterwards", body = Contact),
        (status = 400, description = "`invalid`: a bad `user_id` (also the caller's own)", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: no such user", body = ErrorEnvelope),
        (status = 409, description = "`conflict`: the state does not allow it", body = ErrorEnvelope),
        SessionFaults,
    )
)]
async fn unfollow(state: web::Data<AppState>, me: Me, path: web::Path<String>) -> RestResult {
    act(&state, me, &path, Command::Unfollow).await
}

/// Stars the contact.
#[utoipa::path(
    post,
    operation_id = "contacts_v1_star",
    path = "/api/v1/contact/{user_id}/star",
    tag = TAG,
    security(("bearer" = []), ("cookie" = [])),
    params(("user_id" = String, Path, description = "the contact's user id, in decimal", pattern = r"^[1-9][0-9]{0,15}$")),
    responses(
        (status = 200, description = "the contact afterwards", body = Contact),
        (status = 400, description = "`invalid`: a bad `user_id` (also the caller's own)", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: no such user", body = ErrorEnvelope),
        (status = 409, description = "`conflict`: the state does not allow it", body = ErrorEnvelope),
        SessionFaults,
    )
)]
async fn star(state: web::Data<AppState>, me: Me, path: web::Path<String>) -> RestResult {
    act(&state, me, &path, Command::Star).await
}

/// Unstars the contact.
#[utoipa::path(
    post,
    operation_id = "contacts_v1_unstar",
    path = "/api/v1/contact/{user_id}/unstar",
    tag = TAG,
    security(("bearer" = []), ("cookie" = [])),
    params(("user_id" = String, Path, description = "the contact's user id, in decimal", pattern = r"^[1-9][0-9]{0,15}$")),
    responses(
        (status = 200, description = "the contact afterwards", body = Contact),
        (status = 400, description = "`invalid`: a bad `user_id` (also the caller's own)", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: no such user", body = ErrorEnvelope),
        (status = 409, description = "`conflict`: the state does not allow it", body = ErrorEnvelope),
        SessionFaults,
    )
)]
async fn unstar(state: web::Data<AppState>, me: Me, path: web::Path<String>) -> RestResult {
    act(&state, me, &path, Command::Unstar).await
}

/// Blocks the contact (in every API).
#[utoipa::path(
    post,
    operation_id = "contacts_v1_block",
    path = "/api/v1/contact/{user_id}/block",
    tag = TAG,
    security(("bearer" = []), ("cookie" = [])),
    params(("user_id" = String, Path, description = "the contact's user id, in decimal", pattern = r"^[1-9][0-9]{0,15}$")),
    responses(
        (status = 200, description = "the contact afterwards", body = Contact),
        (status = 400, description = "`invalid`: a bad `user_id` (also the caller's own)", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: no such user", body = ErrorEnvelope),
        (status = 409, description = "`conflict`: the state does not allow it", body = ErrorEnvelope),
        SessionFaults,
    )
)]
async fn block(state: web::Data<AppState>, me: Me, path: web::Path<String>) -> RestResult {
    act(&state, me, &path, Command::Block).await
}

/// Unblocks the contact.
#[utoipa::path(
    post,
    operation_id = "contacts_v1_unblock",
    path = "/api/v1/contact/{user_id}/unblock",
    tag = TAG,
    security(("bearer" = []), ("cookie" = [])),
    params(("user_id" = String, Path, description = "the contact's user id, in decimal", pattern = r"^[1-9][0-9]{0,15}$")),
    responses(
        (status = 200, description = "the contact afterwards", body = Contact),
        (status = 400, description = "`invalid`: a bad `user_id` (also the caller's own)", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: no such user", body = ErrorEnvelope),
        (status = 409, description = "`conflict`: the state does not allow it", body = ErrorEnvelope),
        SessionFaults,
    )
)]
async fn unblock(state: web::Data<AppState>, me: Me, path: web::Path<String>) -> RestResult {
    act(&state, me, &path, Command::Unblock).await
}

/// `POST /api/v1/contact/{user_id}`'s body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct EditBody {
    /// The caller's name for the contact; `""` clears it.
    display_name: String,
}

/// `POST /api/v1/contact/{user_id}`: sets my name for them; `""` clears it.
#[utoipa::path(
    post,
    operation_id = "contacts_v1_edit",
    path = "/api/v1/contact/{user_id}",
    tag = TAG,
    security(("bearer" = []), ("cookie" = [])),
    params(("user_id" = String, Path, description = "the contact's user id, in decimal", pattern = r"^[1-9][0-9]{0,15}$")),
    request_body(content = EditBody, example = json!({"display_name": "edwin wang"})),
    responses(
        (status = 200, description = "the contact afterwards", body = Contact),
        (status = 400, description = "`invalid`: a bad `user_id`, a malformed body or a bad `display_name`",
         body = ErrorEnvelope),
        (status = 404, description = "`not_found`: no such user", body = ErrorEnvelope),
        BodyFaults,
        SessionFaults,
    )
)]
async fn edit(
    state: web::Data<AppState>,
    me: Me,
    path: web::Path<String>,
    body: web::Json<EditBody>,
) -> RestResult {
    let patch = RemarkPatch {
        display_name: Some(body.into_inner().display_name),
        ..RemarkPatch::default()
    };
    act(&state, me, &path, Command::SetRemark(patch)).await
}

/// Puts the contact in a conversation list: `normal`, `sticky` (pinned) or `archive`.
#[utoipa::path(
    post,
    operation_id = "contacts_v1_set_conversation",
    path = "/api/v1/contact/{user_id}/conversation/{conv_type}",
    tag = TAG,
    security(("bearer" = []), ("cookie" = [])),
    params(
        ("user_id" = String, Path, description = "the contact's user id, in decimal", pattern = r"^[1-9][0-9]{0,15}$"),
        ("conv_type" = String, Path, description = "`normal`, `sticky` or `archive`",
         pattern = "^(normal|sticky|archive)$",
         example = "sticky"),
    ),
    responses(
        (status = 200, description = "the contact afterwards", body = Contact),
        (status = 400, description = "`invalid`: a bad `user_id` or `conv_type`", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: no such user", body = ErrorEnvelope),
        SessionFaults,
    )
)]
async fn set_conversation(
    state: web::Data<AppState>,
    me: Me,
    path: web::Path<(String, String)>,
) -> RestResult {
    let (raw_id, raw_type) = path.into_inner();
    // The id is checked first so that a bad pair of segments names the first bad one.
    contact_id(&raw_id)?;
    let conv_type = ConvType::parse(&raw_type)?;
    act(&state, me, &raw_id, Command::SetConvType(conv_type)).await
}

/// One contact: the caller's relationship with that user.
#[utoipa::path(
    get,
    operation_id = "contacts_v1_get_one",
    path = "/api/v1/contact/{user_id}",
    tag = TAG,
    security(("bearer" = []), ("cookie" = [])),
    params(("user_id" = String, Path, description = "the contact's user id, in decimal", pattern = r"^[1-9][0-9]{0,15}$")),
    responses(
        (status = 200, description = "the contact", body = Contact),
        (status = 400, description = "`invalid`: a bad `user_id`", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: no such user, or one who blocks the caller",
         body = ErrorEnvelope),
        SessionFaults,
    )
)]
async fn get_one(state: web::Data<AppState>, me: Me, path: web::Path<String>) -> RestResult {
    let other = contact_id(&path)?;
    let related = state
        .relationships
        .get(me.caller.user_id, other)
        .await
        .map_err(v1)?;
    Ok(HttpResponse::Ok().json(Contact::from(related)))
}

/// One page of my contacts (anyone I hold any state or remark on) and the paging it used.
async fn contacts_page(
    state: &AppState,
    me: UserId,
    query: &PageQuery,
) -> Result<(Vec<Contact>, Paging, Option<UserId>), DomainError> {
    let paging = query.check(state.relationships.policy().list_cap)?;
    let listed = state
        .relationships
        .list(me, SideFilter::Any, Some(paging.limit), paging.after)
        .await?;
    // Moved out when this request holds the only reference (lists the store does not cache).
    let contacts = listed
        .rows
        .into_iter()
        .map(|r| Contact::from(Arc::unwrap_or_clone(r)))
        .collect();
    Ok((contacts, paging, listed.next))
}

/// All the caller's contacts: anyone they hold any state or remark on, a page at a time.
#[utoipa::path(
    get,
    operation_id = "contacts_v1_list",
    path = "/api/v1/contact",
    tag = TAG,
    security(("bearer" = []), ("cookie" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "one page; `Link: <...>; rel=\"next\"` when cut",
         body = Vec<Contact>),
        (status = 400, description = "`invalid`: a bad `limit` or `cursor`", body = ErrorEnvelope),
        SessionFaults,
    )
)]
async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Me,
    query: web::Query<PageQuery>,
) -> RestResult {
    let (contacts, paging, next) = contacts_page(&state, me.caller.user_id, &query).await?;
    let mut res = HttpResponse::Ok();
    rest::link_next(&mut res, &req, paging, next);
    Ok(res.json(contacts))
}

/// `GET /api/v1/contact/conversation`: one page of contacts, grouped by conversation list.
#[utoipa::path(
    get,
    operation_id = "contacts_v1_conversations",
    path = "/api/v1/contact/conversation",
    tag = TAG,
    security(("bearer" = []), ("cookie" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "one page of contacts, by conversation list; \
                                      `Link: <...>; rel=\"next\"` when cut",
         body = Conversations),
        (status = 400, description = "`invalid`: a bad `limit` or `cursor`", body = ErrorEnvelope),
        SessionFaults,
    )
)]
async fn conversations(
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Me,
    query: web::Query<PageQuery>,
) -> RestResult {
    let (contacts, paging, next) = contacts_page(&state, me.caller.user_id, &query).await?;
    let (mut normal, mut sticky, mut archive) = (Vec::new(), Vec::new(), Vec::new());
    for c in contacts {
        match c.conv_type {
            "sticky" => sticky.push(c),
            "archive" => archive.push(c),
            _ => normal.push(c),
        }
    }
    let mut res = HttpResponse::Ok();
    rest::link_next(&mut res, &req, paging, next);
    Ok(res.json(json!({"normal": normal, "sticky": sticky, "archive": archive})))
}

/// Reads one phone-book entry; a malformed one is reported in its place, not for the batch.
fn upload_entry(raw: &Value) -> Result<UploadEntry, DomainError> {
    let phone = match raw.get("tel") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(DomainError::invalid("tel", "is required: a phone number")),
    };
    let display_name = match raw.get("display_name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(DomainError::invalid("display_name", "must be a string")),
    };
    Ok(UploadEntry {
        phone,
        display_name,
    })
}

/// `POST /api/v1/contact/batch_upload`: answers one object per entry, in order: `tel` as sent
/// and either `user_id` and the normalised `phone`, or an `error`.
#[utoipa::path(
    post,
    operation_id = "contacts_v1_batch_upload",
    path = "/api/v1/contact/batch_upload",
    tag = TAG,
    security(("bearer" = []), ("cookie" = [])),
    // Document 000's own example.
    request_body(content = Vec<UploadItem>, example = json!([
        {"tel": "18012345678", "display_name": "edwin wang"},
        {"tel": "18012345670"}
    ])),
    responses(
        (status = 200, description = "one answer per entry, in order", body = Vec<UploadAnswer>,
         example = json!([
             {"tel": "18012345678", "user_id": "2918372541", "phone": "+8618012345678"},
             {"tel": "18012345670", "user_id": "7712093384", "phone": "+8618012345670"}
         ])),
        (status = 400, description = "`invalid`: not a JSON array, or too many entries", body = ErrorEnvelope),
        BodyFaults,
        SessionFaults,
    )
)]
async fn batch_upload(
    state: web::Data<AppState>,
    me: Me,
    body: web::Json<Vec<Value>>,
) -> RestResult {
    let raw = body.into_inner();
    let max = state.relationships.policy().upload_max;
    if raw.len() > max {
        return Err(DomainError::invalid("body", format!("at most {max} entries per call")).into());
    }
    let me = me.caller.user_id;
    // Numbers without a country code are read as the uploader's own country's.
    let region = state.accounts.get_user(me).await?.phone.region().to_owned();
    let parsed: Vec<(Value, Result<UploadEntry, DomainError>)> = raw
        .into_iter()
        .map(|v| {
            let entry = upload_entry(&v);
            (v.get("tel").cloned().unwrap_or(Value::Null), entry)
        })
        .collect();
    let good: Vec<UploadEntry> = parsed
        .iter()
        .filter_map(|(_, e)| e.as_ref().ok().cloned())
        .collect();
    let mut results = state
        .relationships
        .upload(me, &region, good)
        .await
        .map_err(v1)?
        .into_iter();
    let mut answer = Vec::with_capacity(parsed.len());
    for (tel, entry) in parsed {
        let outcome = match entry {
            Ok(_) => results.next().unwrap_or_else(|| {
                UploadResult::Err(DomainError::Internal(
                    "upload answered too few entries".into(),
                ))
            }),
            Err(e) => UploadResult::Err(e),
        };
        answer.push(match outcome {
            UploadResult::Ok { phone, user_id, .. } => json!({
                "tel": tel,
                "user_id": user_id.to_string(),
                "phone": phone.e164(),
            }),
            UploadResult::Err(e) => {
                if let DomainError::Internal(cause) = &e {
                    tracing::error!(%cause, "internal error in phone-book upload");
                }
                json!({"tel": tel, "error": rest::error_object(&v1(e))})
            }
        });
    }
    Ok(HttpResponse::Ok().json(answer))
}

// The shapes below exist for the OpenAPI document only: the handlers build the same keys with
// `json!`, so a change to one must be made to the other.

/// `GET /api/v1/contact/conversation`'s answer.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
struct Conversations {
    /// Ordinary conversations.
    normal: Vec<Contact>,
    /// Pinned conversations.
    sticky: Vec<Contact>,
    /// Archived conversations.
    archive: Vec<Contact>,
}

/// One phone-book entry of `POST /api/v1/contact/batch_upload`.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
struct UploadItem {
    /// The phone number; without a country code, read as the uploader's country's.
    #[schema(value_type = StringOrNumber, example = "18012345678")]
    tel: String,
    /// The caller's name for them (optional).
    display_name: Option<String>,
}

/// One entry's answer: `user_id` and `phone`, or `error`.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
struct UploadAnswer {
    /// `tel` exactly as sent: any JSON value, `null` when the entry had none.
    tel: serde_json::Value,
    /// The user with that number (made now when new), in decimal.
    #[schema(nullable = false)]
    user_id: Option<String>,
    /// The number, normalised to E.164.
    #[schema(nullable = false)]
    phone: Option<String>,
    /// Why this entry was refused.
    #[schema(nullable = false)]
    error: Option<ErrorObject>,
}
