//! The SealTalk friendship API (document 004) under `/friendship`, and the 003 blacklist calls.

use actix_web::{web, HttpRequest, HttpResponse};
use kith_domain::ids::UserId;
use kith_domain::ports::{Related, SideFilter};
use kith_domain::relationship::{Command, Outcome, RemarkPatch};
use kith_domain::DomainError;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::common::{iso8601, Authed, Loose};
use crate::sealtalk::{self, ok, ok_result, SealError, SealResult, SealTalk};
use crate::AppState;

type Me = Authed<SealTalk>;

/// Mounts `/friendship/...`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/friendship")
            .app_data(sealtalk::json_config())
            .app_data(sealtalk::path_config())
            .app_data(sealtalk::query_config())
            .route("/invite", web::post().to(invite))
            .route("/agree", web::post().to(agree))
            .route("/ignore", web::post().to(ignore))
            .route("/delete", web::post().to(delete))
            .route("/batch_delete", web::post().to(batch_delete))
            .route("/set_display_name", web::post().to(set_display_name))
            .route(
                "/set_friend_description",
                web::post().to(set_friend_description),
            )
            .route(
                "/get_friend_description",
                web::post().to(get_friend_description),
            )
            .route("/get_contacts_info", web::post().to(get_contacts_info))
            .route("/all", web::get().to(all))
            .route("/{friend_id}/profile", web::get().to(profile)),
    );
}

/// The blacklist calls of document 003, mounted inside `/user` before `/user/{id}`.
pub fn blacklist_routes(scope: actix_web::Scope) -> actix_web::Scope {
    scope
        .route("/blacklist", web::route().to(blacklist))
        .route("/add_to_blacklist", web::post().to(add_to_blacklist))
        .route(
            "/remove_from_blacklist",
            web::post().to(remove_from_blacklist),
        )
}

fn user_id(field: &'static str, raw: &Loose) -> Result<UserId, DomainError> {
    UserId::parse(&raw.text()).map_err(|_| DomainError::invalid(field, "is not a user id"))
}

#[derive(Debug, Deserialize)]
struct FriendBody {
    #[serde(rename = "friendId")]
    friend_id: Loose,
}

#[derive(Debug, Deserialize)]
struct InviteBody {
    #[serde(rename = "friendId")]
    friend_id: Loose,
    message: Option<String>,
}

fn action(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Invite(a) => a.as_str(),
        Outcome::Done | Outcome::Unchanged => "None",
    }
}

async fn invite(state: web::Data<AppState>, me: Me, body: web::Json<InviteBody>) -> SealResult {
    let body = body.into_inner();
    let other = user_id("friendId", &body.friend_id)?;
    let t = state
        .relationships
        .run(
            me.caller.user_id,
            other,
            Command::Invite {
                message: body.message,
            },
        )
        .await?;
    Ok(ok_result(json!({"action": action(t.outcome)})))
}

async fn agree(state: web::Data<AppState>, me: Me, body: web::Json<FriendBody>) -> SealResult {
    let other = user_id("friendId", &body.friend_id)?;
    state
        .relationships
        .run(me.caller.user_id, other, Command::Accept)
        .await?;
    Ok(ok_result(json!({"action": "Added"})))
}

async fn ignore(state: web::Data<AppState>, me: Me, body: web::Json<FriendBody>) -> SealResult {
    let other = user_id("friendId", &body.friend_id)?;
    state
        .relationships
        .run(me.caller.user_id, other, Command::Ignore)
        .await?;
    Ok(ok())
}

async fn delete(state: web::Data<AppState>, me: Me, body: web::Json<FriendBody>) -> SealResult {
    let other = user_id("friendId", &body.friend_id)?;
    state
        .relationships
        .run(me.caller.user_id, other, Command::Delete)
        .await?;
    Ok(ok())
}

#[derive(Debug, Deserialize)]
struct BatchDeleteBody {
    #[serde(rename = "friendIds")]
    friend_ids: Vec<Loose>,
}

async fn batch_delete(
    state: web::Data<AppState>,
    me: Me,
    body: web::Json<BatchDeleteBody>,
) -> SealResult {
    let ids = body
        .friend_ids
        .iter()
        .map(|raw| user_id("friendIds", raw))
        .collect::<Result<Vec<_>, _>>()?;
    state
        .relationships
        .delete_friends(me.caller.user_id, &ids)
        .await?;
    Ok(ok())
}

#[derive(Debug, Deserialize)]
struct DisplayNameBody {
    #[serde(rename = "friendId")]
    friend_id: Loose,
    #[serde(rename = "displayName")]
    display_name: String,
}

async fn set_display_name(
    state: web::Data<AppState>,
    me: Me,
    body: web::Json<DisplayNameBody>,
) -> SealResult {
    let body = body.into_inner();
    let other = user_id("friendId", &body.friend_id)?;
    let patch = RemarkPatch {
        display_name: Some(body.display_name),
        ..RemarkPatch::default()
    };
    state
        .relationships
        .run(me.caller.user_id, other, Command::SetRemark(patch))
        .await?;
    Ok(ok())
}

#[derive(Debug, Deserialize)]
struct DescriptionBody {
    #[serde(rename = "friendId")]
    friend_id: Loose,
    #[serde(rename = "displayName")]
    display_name: Option<String>,
    region: Option<Loose>,
    phone: Option<Loose>,
    description: Option<String>,
    #[serde(rename = "imageUri")]
    image_uri: Option<String>,
}

async fn set_friend_description(
    state: web::Data<AppState>,
    me: Me,
    body: web::Json<DescriptionBody>,
) -> SealResult {
    let body = body.into_inner();
    let other = user_id("friendId", &body.friend_id)?;
    // Only the fields sent change; an empty string clears one.
    let patch = RemarkPatch {
        display_name: body.display_name,
        description: body.description,
        phone: body.phone.map(|p| p.text()),
        region: body.region.map(|r| r.text()),
        image_uri: body.image_uri,
    };
    state
        .relationships
        .run(me.caller.user_id, other, Command::SetRemark(patch))
        .await?;
    Ok(ok())
}

async fn get_friend_description(
    state: web::Data<AppState>,
    me: Me,
    body: web::Json<FriendBody>,
) -> SealResult {
    let other = user_id("friendId", &body.friend_id)?;
    let r = state.relationships.get(me.caller.user_id, other).await?;
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    Ok(ok_result(json!({
        "displayName": s(&r.mine.display_name),
        "region": s(&r.mine.remark_region),
        "phone": s(&r.mine.remark_phone),
        "description": s(&r.mine.description),
        "imageUri": s(&r.mine.remark_image_uri),
    })))
}

/// The user object of this API. The phone shows to friends and to those whose phone book holds it.
fn user_json(r: &Related) -> Value {
    let visible = r.mine.is_friend() || r.mine.phone_visible;
    let (region, phone) = if visible {
        (
            r.user.phone.region().to_owned(),
            r.user.phone.national().to_owned(),
        )
    } else {
        (String::new(), String::new())
    };
    json!({
        "id": r.user.id.to_string(),
        "nickname": r.user.nickname,
        "region": region,
        "phone": phone,
        "portraitUri": r.user.portrait_uri,
        "gender": r.user.shown_gender(),
    })
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<u32>,
    cursor: Option<String>,
}

/// Reads one page of a list for the SealTalk face; a cut list carries a `Link` to the next page.
async fn page(
    state: &AppState,
    req: &HttpRequest,
    me: UserId,
    filter: SideFilter,
    query: &ListQuery,
) -> Result<(Vec<Related>, Option<String>), SealError> {
    let after = match &query.cursor {
        Some(c) => {
            Some(UserId::parse(c).map_err(|_| DomainError::invalid("cursor", "is not a cursor"))?)
        }
        None => None,
    };
    if query.limit == Some(0) {
        return Err(DomainError::invalid("limit", "must be at least 1").into());
    }
    let listed = state
        .relationships
        .list(me, filter, query.limit, after)
        .await?;
    let link = listed.next.map(|next| {
        let limit = query.limit.unwrap_or(state.relationships.policy().list_cap);
        format!("<{}?limit={limit}&cursor={next}>; rel=\"next\"", req.path())
    });
    Ok((listed.rows, link))
}

fn with_link(mut res: HttpResponse, link: Option<String>) -> HttpResponse {
    if let Some(link) = link {
        if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&link) {
            res.headers_mut().insert(actix_web::http::header::LINK, v);
        }
    }
    res
}

async fn all(
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Me,
    query: web::Query<ListQuery>,
) -> SealResult {
    let (rows, link) = page(
        &state,
        &req,
        me.caller.user_id,
        SideFilter::Friendship,
        &query,
    )
    .await?;
    let result: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "displayName": r.mine.display_name.clone().unwrap_or_default(),
                "message": r.mine.request_message.clone().unwrap_or_default(),
                "status": r.mine.friendship.sealtalk_status(),
                "updatedAt": iso8601(r.mine.updated_at),
                "updatedTime": r.mine.updated_at.to_string(),
                "user": user_json(r),
            })
        })
        .collect();
    Ok(with_link(ok_result(result), link))
}

async fn profile(state: web::Data<AppState>, me: Me, path: web::Path<String>) -> SealResult {
    let other = UserId::parse(&path.into_inner())?;
    let r = state.relationships.friend(me.caller.user_id, other).await?;
    Ok(ok_result(json!({
        "displayName": r.mine.display_name.clone().unwrap_or_default(),
        "user": user_json(&r),
    })))
}

#[derive(Debug, Deserialize)]
struct ContactsInfoBody {
    #[serde(rename = "contactList", alias = "contacstList")]
    contact_list: Vec<Loose>,
}

async fn get_contacts_info(
    state: web::Data<AppState>,
    me: Me,
    body: web::Json<ContactsInfoBody>,
) -> SealResult {
    let phones = body
        .into_inner()
        .contact_list
        .iter()
        .map(Loose::text)
        .collect();
    let mine = state.accounts.get_user(me.caller.user_id).await?;
    let infos = state
        .relationships
        .contacts_info(me.caller.user_id, mine.phone.region(), phones)
        .await?;
    let result: Vec<Value> = infos
        .into_iter()
        .map(|info| match info.user {
            Some(u) => json!({
                "registered": 1,
                "relationship": i32::from(info.is_friend),
                "stAccount": "",
                "phone": info.phone,
                "id": u.id.to_string(),
                "nickname": u.nickname,
                "portraitUri": u.portrait_uri,
            }),
            None => json!({
                "registered": 0,
                "relationship": 0,
                "stAccount": "",
                "phone": info.phone,
                "nickname": "",
                "portraitUri": "",
            }),
        })
        .collect();
    Ok(ok_result(result))
}

async fn blacklist(
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Me,
    query: web::Query<ListQuery>,
) -> SealResult {
    let (rows, link) = page(
        &state,
        &req,
        me.caller.user_id,
        SideFilter::Blocking,
        &query,
    )
    .await?;
    let result: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "id": r.user.id.to_string(),
                "nickname": r.user.nickname,
                "portraitUri": r.user.portrait_uri,
                "updatedAt": iso8601(r.mine.blocked_at.unwrap_or(r.mine.updated_at)),
            })
        })
        .collect();
    Ok(with_link(ok_result(result), link))
}

async fn add_to_blacklist(
    state: web::Data<AppState>,
    me: Me,
    body: web::Json<FriendBody>,
) -> SealResult {
    let other = user_id("friendId", &body.friend_id)?;
    state
        .relationships
        .run(me.caller.user_id, other, Command::Block)
        .await?;
    Ok(ok())
}

async fn remove_from_blacklist(
    state: web::Data<AppState>,
    me: Me,
    body: web::Json<FriendBody>,
) -> SealResult {
    let other = user_id("friendId", &body.friend_id)?;
    state
        .relationships
        .run(me.caller.user_id, other, Command::Unblock)
        .await?;
    Ok(ok())
}
