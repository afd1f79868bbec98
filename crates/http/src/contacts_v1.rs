//! The contacts v1 API (document 000) under `/api/v1/contact`: contacts keyed by string user ids.

use actix_web::{web, HttpRequest, HttpResponse};
use kith_domain::ids::UserId;
use kith_domain::ports::{Related, SideFilter};
use kith_domain::relationship::{Command, ConvType, RemarkPatch};
use kith_domain::social::{UploadEntry, UploadResult};
use kith_domain::DomainError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::common::Authed;
use crate::rest::{self, PageQuery, Paging, Rest, RestResult};
use crate::AppState;

type Me = Authed<Rest>;

/// Mounts `/api/v1/contact...`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1/contact")
            .app_data(rest::json_config())
            .app_data(rest::path_config())
            .app_data(rest::query_config())
            .route("", web::get().to(list))
            // The fixed segments go first: they would otherwise be read as user ids.
            .route("/conversation", web::get().to(conversations))
            .route("/batch_upload", web::post().to(batch_upload))
            .route("/{user_id}", web::get().to(get_one))
            .route("/{user_id}", web::post().to(edit))
            .route("/{user_id}/follow", web::post().to(follow))
            .route("/{user_id}/unfollow", web::post().to(unfollow))
            .route("/{user_id}/star", web::post().to(star))
            .route("/{user_id}/unstar", web::post().to(unstar))
            .route("/{user_id}/block", web::post().to(block))
            .route("/{user_id}/unblock", web::post().to(unblock))
            .route(
                "/{user_id}/conversation/{conv_type}",
                web::post().to(set_conversation),
            )
            .default_service(web::to(rest::no_route)),
    );
}

/// One contact as contacts v1 shows it.
#[derive(Debug, Serialize)]
pub struct Contact {
    user_id: String,
    nickname: String,
    portrait_uri: String,
    display_name: Option<String>,
    /// E.164, only when their number is visible to me (it came from my phone book).
    phone: Option<String>,
    is_friend: bool,
    is_following: bool,
    is_followed_by: bool,
    is_starred: bool,
    is_blocked: bool,
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

async fn follow(state: web::Data<AppState>, me: Me, path: web::Path<String>) -> RestResult {
    act(&state, me, &path, Command::Follow).await
}

async fn unfollow(state: web::Data<AppState>, me: Me, path: web::Path<String>) -> RestResult {
    act(&state, me, &path, Command::Unfollow).await
}

async fn star(state: web::Data<AppState>, me: Me, path: web::Path<String>) -> RestResult {
    act(&state, me, &path, Command::Star).await
}

async fn unstar(state: web::Data<AppState>, me: Me, path: web::Path<String>) -> RestResult {
    act(&state, me, &path, Command::Unstar).await
}

async fn block(state: web::Data<AppState>, me: Me, path: web::Path<String>) -> RestResult {
    act(&state, me, &path, Command::Block).await
}

async fn unblock(state: web::Data<AppState>, me: Me, path: web::Path<String>) -> RestResult {
    act(&state, me, &path, Command::Unblock).await
}

#[derive(Debug, Deserialize)]
struct EditBody {
    display_name: String,
}

/// `POST /api/v1/contact/{user_id}`: sets my name for them; `""` clears it.
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
    let contacts = listed.rows.into_iter().map(Contact::from).collect();
    Ok((contacts, paging, listed.next))
}

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
