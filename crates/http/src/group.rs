//! SealTalk's group API under `/group` (and `/user/groups`), in the 003 envelope: maps bodies to
//! domain values and [`GroupService`](kith_domain::group::GroupService) results to JSON.

use actix_web::web;
use kith_domain::group::{Bulletin, GroupName, MemberIds, MemberView, MyGroup};
use kith_domain::ids::{GroupId, UserId};
use kith_domain::values::{DisplayName, ImageUri};
use kith_domain::DomainError;
use serde::{Deserialize, Serialize};

use crate::common::{iso8601, Authed, Loose};
use crate::sealtalk::{self, ok, ok_result, SealResult, SealTalk};
use crate::AppState;

type Me = Authed<SealTalk>;

/// Mounts `/group/...`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/group")
            .app_data(sealtalk::json_config())
            .app_data(sealtalk::path_config())
            .app_data(sealtalk::query_config())
            .route("/create", web::post().to(create))
            .route("/add", web::post().to(add))
            .route("/kick", web::post().to(kick))
            .route("/quit", web::post().to(quit))
            .route("/dismiss", web::post().to(dismiss))
            .route("/transfer", web::post().to(transfer))
            .route("/rename", web::post().to(rename))
            .route("/set_display_name", web::post().to(set_display_name))
            .route("/set_portrait_uri", web::post().to(set_portrait_uri))
            .route("/set_bulletin", web::post().to(set_bulletin))
            .route("/get_bulletin", web::get().to(get_bulletin))
            .route("/set_manager", web::post().to(set_manager))
            .route("/remove_manager", web::post().to(remove_manager))
            .route("/{id}/members", web::get().to(members))
            .route("/{id}", web::get().to(group)),
    );
}

/// Adds `/groups` (POST or GET) to the `/user` scope; call it before the scope's `/{id}` route.
pub fn user_routes(scope: actix_web::Scope) -> actix_web::Scope {
    scope
        .route("/groups", web::post().to(my_groups))
        .route("/groups", web::get().to(my_groups))
}

fn group_id(raw: &Loose) -> Result<GroupId, DomainError> {
    GroupId::parse(&raw.text()).map_err(|_| DomainError::invalid("groupId", "is not a group id"))
}

fn user_id(field: &'static str, raw: &Loose) -> Result<UserId, DomainError> {
    UserId::parse(&raw.text()).map_err(|_| DomainError::invalid(field, "is not a user id"))
}

/// A `memberIds` list: decimal strings or numbers.
fn member_ids(
    state: &AppState,
    raw: &[Loose],
    allow_empty: bool,
) -> Result<MemberIds, DomainError> {
    let policy = state.groups.policy();
    // Refused before parsing, so a huge list costs nothing.
    if raw.len() > policy.max_members as usize {
        return Err(DomainError::invalid(
            "memberIds",
            format!("must name at most {} users", policy.max_members),
        ));
    }
    let ids = raw
        .iter()
        .map(|r| user_id("memberIds", r))
        .collect::<Result<Vec<_>, _>>()?;
    MemberIds::new(ids, policy, allow_empty)
}

#[derive(Debug, Deserialize)]
struct CreateBody {
    name: String,
    #[serde(rename = "memberIds", default)]
    member_ids: Vec<Loose>,
}

async fn create(state: web::Data<AppState>, me: Me, body: web::Json<CreateBody>) -> SealResult {
    let body = body.into_inner();
    let name = GroupName::new(body.name, state.groups.policy())?;
    let members = member_ids(&state, &body.member_ids, true)?;
    let id = state
        .groups
        .create(me.caller.user_id, name, members)
        .await?;
    Ok(ok_result(serde_json::json!({"id": id.to_string()})))
}

#[derive(Debug, Deserialize)]
struct MembersBody {
    #[serde(rename = "groupId")]
    group_id: Loose,
    #[serde(rename = "memberIds")]
    member_ids: Vec<Loose>,
}

async fn add(state: web::Data<AppState>, me: Me, body: web::Json<MembersBody>) -> SealResult {
    let g = group_id(&body.group_id)?;
    let members = member_ids(&state, &body.member_ids, false)?;
    state.groups.add(me.caller.user_id, g, members).await?;
    Ok(ok())
}

async fn kick(state: web::Data<AppState>, me: Me, body: web::Json<MembersBody>) -> SealResult {
    let g = group_id(&body.group_id)?;
    let members = member_ids(&state, &body.member_ids, false)?;
    state.groups.kick(me.caller.user_id, g, members).await?;
    Ok(ok())
}

async fn set_manager(
    state: web::Data<AppState>,
    me: Me,
    body: web::Json<MembersBody>,
) -> SealResult {
    let g = group_id(&body.group_id)?;
    let members = member_ids(&state, &body.member_ids, false)?;
    state
        .groups
        .set_managers(me.caller.user_id, g, members, true)
        .await?;
    Ok(ok())
}

async fn remove_manager(
    state: web::Data<AppState>,
    me: Me,
    body: web::Json<MembersBody>,
) -> SealResult {
    let g = group_id(&body.group_id)?;
    let members = member_ids(&state, &body.member_ids, false)?;
    state
        .groups
        .set_managers(me.caller.user_id, g, members, false)
        .await?;
    Ok(ok())
}

#[derive(Debug, Deserialize)]
struct GroupBody {
    #[serde(rename = "groupId")]
    group_id: Loose,
}

async fn quit(state: web::Data<AppState>, me: Me, body: web::Json<GroupBody>) -> SealResult {
    let g = group_id(&body.group_id)?;
    state.groups.quit(me.caller.user_id, g).await?;
    Ok(ok())
}

async fn dismiss(state: web::Data<AppState>, me: Me, body: web::Json<GroupBody>) -> SealResult {
    let g = group_id(&body.group_id)?;
    state.groups.dismiss(me.caller.user_id, g).await?;
    Ok(ok())
}

#[derive(Debug, Deserialize)]
struct TransferBody {
    #[serde(rename = "groupId")]
    group_id: Loose,
    #[serde(rename = "userId")]
    user_id: Loose,
}

async fn transfer(state: web::Data<AppState>, me: Me, body: web::Json<TransferBody>) -> SealResult {
    let g = group_id(&body.group_id)?;
    let to = user_id("userId", &body.user_id)?;
    state.groups.transfer(me.caller.user_id, g, to).await?;
    Ok(ok())
}

#[derive(Debug, Deserialize)]
struct RenameBody {
    #[serde(rename = "groupId")]
    group_id: Loose,
    name: String,
}

async fn rename(state: web::Data<AppState>, me: Me, body: web::Json<RenameBody>) -> SealResult {
    let body = body.into_inner();
    let g = group_id(&body.group_id)?;
    let name = GroupName::new(body.name, state.groups.policy())?;
    state.groups.rename(me.caller.user_id, g, name).await?;
    Ok(ok())
}

#[derive(Debug, Deserialize)]
struct DisplayNameBody {
    #[serde(rename = "groupId")]
    group_id: Loose,
    #[serde(rename = "displayName")]
    display_name: String,
}

async fn set_display_name(
    state: web::Data<AppState>,
    me: Me,
    body: web::Json<DisplayNameBody>,
) -> SealResult {
    let body = body.into_inner();
    let g = group_id(&body.group_id)?;
    let name = DisplayName::new("displayName", body.display_name)?;
    state
        .groups
        .set_display_name(me.caller.user_id, g, name)
        .await?;
    Ok(ok())
}

#[derive(Debug, Deserialize)]
struct PortraitBody {
    #[serde(rename = "groupId")]
    group_id: Loose,
    #[serde(rename = "portraitUri")]
    portrait_uri: String,
}

async fn set_portrait_uri(
    state: web::Data<AppState>,
    me: Me,
    body: web::Json<PortraitBody>,
) -> SealResult {
    let body = body.into_inner();
    let g = group_id(&body.group_id)?;
    // An empty URI clears the portrait.
    let uri = if body.portrait_uri.is_empty() {
        None
    } else {
        Some(ImageUri::new("portraitUri", body.portrait_uri)?)
    };
    state
        .groups
        .set_portrait_uri(me.caller.user_id, g, uri)
        .await?;
    Ok(ok())
}

#[derive(Debug, Deserialize)]
struct BulletinBody {
    #[serde(rename = "groupId")]
    group_id: Loose,
    bulletin: String,
}

async fn set_bulletin(
    state: web::Data<AppState>,
    me: Me,
    body: web::Json<BulletinBody>,
) -> SealResult {
    let body = body.into_inner();
    let g = group_id(&body.group_id)?;
    let bulletin = Bulletin::new(body.bulletin, state.groups.policy())?;
    state
        .groups
        .set_bulletin(me.caller.user_id, g, bulletin)
        .await?;
    Ok(ok())
}

#[derive(Debug, Deserialize)]
struct BulletinQuery {
    #[serde(rename = "groupId")]
    group_id: String,
}

async fn get_bulletin(
    state: web::Data<AppState>,
    me: Me,
    query: web::Query<BulletinQuery>,
) -> SealResult {
    let g = group_id(&Loose::Text(query.into_inner().group_id))?;
    let (content, at) = state.groups.bulletin(me.caller.user_id, g).await?;
    Ok(ok_result(serde_json::json!({
        "groupId": g.to_string(),
        "content": content,
        "timestamp": at,
    })))
}

fn path_group(raw: String) -> Result<GroupId, DomainError> {
    // A path that is no group id names no group.
    GroupId::parse(&raw).map_err(|_| DomainError::NotFound("group"))
}

async fn group(state: web::Data<AppState>, me: Me, path: web::Path<String>) -> SealResult {
    let g = path_group(path.into_inner())?;
    let s = state.groups.group(me.caller.user_id, g).await?;
    let info = s.info();
    Ok(ok_result(serde_json::json!({
        "id": info.id.to_string(),
        "name": info.name,
        "portraitUri": info.portrait_uri,
        "creatorId": info.creator.to_string(),
        "memberCount": info.member_count,
        "maxMemberCount": state.groups.policy().max_members,
        "bulletin": s.group.bulletin,
        "timestamp": info.stamp,
        "createdAt": iso8601(s.group.created_at),
    })))
}

/// One entry of `/group/{id}/members`.
#[derive(Debug, Serialize)]
struct MemberJson {
    #[serde(rename = "displayName")]
    display_name: String,
    role: i32,
    #[serde(rename = "createdAt")]
    created_at: String,
    #[serde(rename = "updatedAt")]
    updated_at: String,
    timestamp: i64,
    user: serde_json::Value,
}

impl From<MemberView> for MemberJson {
    fn from(v: MemberView) -> Self {
        Self {
            display_name: v.member.display_name,
            role: v.member.role.code(),
            created_at: iso8601(v.member.joined_at),
            updated_at: iso8601(v.member.stamp),
            timestamp: v.member.stamp,
            user: serde_json::json!({
                "id": v.user.to_string(),
                "nickname": v.nickname,
                "portraitUri": v.portrait_uri,
            }),
        }
    }
}

async fn members(state: web::Data<AppState>, me: Me, path: web::Path<String>) -> SealResult {
    let g = path_group(path.into_inner())?;
    let list = state.groups.members(me.caller.user_id, g).await?;
    Ok(ok_result(
        list.into_iter().map(MemberJson::from).collect::<Vec<_>>(),
    ))
}

/// One entry of `/user/groups`.
#[derive(Debug, Serialize)]
struct MyGroupJson {
    id: String,
    name: String,
    #[serde(rename = "portraitUri")]
    portrait_uri: String,
    #[serde(rename = "creatorId")]
    creator_id: String,
    #[serde(rename = "memberCount")]
    member_count: u32,
    role: i32,
    #[serde(rename = "displayName")]
    display_name: String,
    timestamp: i64,
}

impl From<MyGroup> for MyGroupJson {
    fn from(g: MyGroup) -> Self {
        Self {
            id: g.info.id.to_string(),
            name: g.info.name,
            portrait_uri: g.info.portrait_uri,
            creator_id: g.info.creator.to_string(),
            member_count: g.info.member_count,
            role: g.role.code(),
            display_name: g.display_name,
            timestamp: g.info.stamp,
        }
    }
}

async fn my_groups(state: web::Data<AppState>, me: Me) -> SealResult {
    let list = state.groups.my_groups(me.caller.user_id).await?;
    Ok(ok_result(
        list.into_iter().map(MyGroupJson::from).collect::<Vec<_>>(),
    ))
}
