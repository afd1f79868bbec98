//! SealTalk's group API under `/group` (and `/user/groups`), in the 003 envelope: maps bodies to
//! domain values and [`GroupService`](kith_domain::group::GroupService) results to JSON.

use actix_web::web;
use kith_domain::group::{Bulletin, GroupName, MemberIds, MemberView, MyGroup};
use kith_domain::ids::GroupId;
use kith_domain::values::{DisplayName, ImageUri};
use kith_domain::DomainError;
use serde::{Deserialize, Serialize};

use crate::common::{iso8601, Authed, Loose};
use crate::sealtalk::{
    self, get, get_post, ok, ok_result, post, Id, SealAnswer, SealDone, SealFault, SealResult,
    SealTalk, SessionFaults,
};
use crate::AppState;

type Me = Authed<SealTalk>;

/// Mounts `/group/...`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/group")
            .app_data(sealtalk::json_config())
            .app_data(sealtalk::path_config())
            .app_data(sealtalk::query_config())
            .service(post("/create", create))
            .service(post("/add", add))
            .service(post("/kick", kick))
            .service(post("/quit", quit))
            .service(post("/dismiss", dismiss))
            .service(post("/transfer", transfer))
            .service(post("/rename", rename))
            .service(post("/set_display_name", set_display_name))
            .service(post("/set_portrait_uri", set_portrait_uri))
            .service(post("/set_bulletin", set_bulletin))
            .service(get("/get_bulletin", get_bulletin))
            .service(post("/set_manager", set_manager))
            .service(post("/remove_manager", remove_manager))
            .service(get("/{id}/members", members))
            .service(get("/{id}", group)),
    );
}

/// Adds `/groups` (POST or GET) to the `/user` scope; call it before the scope's `/{id}` route.
pub fn user_routes(scope: actix_web::Scope) -> actix_web::Scope {
    scope.service(get_post("/groups", my_groups))
}

fn group_id(raw: &Loose) -> Result<GroupId, DomainError> {
    GroupId::parse(&sealtalk::id_text(raw))
        .map_err(|_| DomainError::invalid("groupId", "is not a group id"))
}

/// A `memberIds` list: decimal strings or numbers.
fn member_ids(
    state: &AppState,
    raw: &[Loose],
    allow_empty: bool,
) -> Result<MemberIds, DomainError> {
    MemberIds::parse(
        raw.iter().map(sealtalk::id_text),
        state.groups.policy(),
        allow_empty,
    )
}

/// `create`'s body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CreateBody {
    /// The group's name: 2 to 32 characters by default (`KITH_GROUP_NAME_MIN`/`_MAX`).
    #[schema(min_length = 2, max_length = 32)]
    name: String,
    /// The first members besides the creator.
    #[serde(rename = "memberIds", default)]
    #[schema(value_type = Vec<Id>)]
    member_ids: Vec<Loose>,
}

/// `create`'s result.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NewGroup {
    /// The new group's id.
    id: String,
}

/// Creates a group with the caller as creator.
#[utoipa::path(
    post,
    path = "/group/create",
    tag = "groups",
    security(("bearer" = []), ("cookie" = [])),
    request_body(content = CreateBody, example = json!({"name": "Team 1", "memberIds": ["4503599627370498", "4503599627370499"]})),
    responses(
        (status = 200, description = "created", body = SealAnswer<NewGroup>, example = json!({"code": 200, "result": {"id": "7696581394433"}})),
        (status = 403, description = "the caller is not a member, or lacks the role", body = SealFault),
        (status = 404, description = "no such group (or user)", body = SealFault),
        SessionFaults,
    )
)]

async fn create(state: web::Data<AppState>, me: Me, body: web::Json<CreateBody>) -> SealResult {
    let body = body.into_inner();
    let name = GroupName::new(body.name, state.groups.policy())?;
    let members = member_ids(&state, &body.member_ids, true)?;
    let id = state
        .groups
        .create(me.caller.user_id, name, members)
        .await?;
    Ok(ok_result(NewGroup { id: id.to_string() }))
}

/// A group and some of its (future) members.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct MembersBody {
    /// The group.
    #[serde(rename = "groupId")]
    #[schema(value_type = Id)]
    group_id: Loose,
    /// The users: at least one.
    #[serde(rename = "memberIds")]
    #[schema(value_type = Vec<Id>, min_items = 1)]
    member_ids: Vec<Loose>,
}

/// Adds users to a group.
#[utoipa::path(
    post,
    path = "/group/add",
    tag = "groups",
    security(("bearer" = []), ("cookie" = [])),
    request_body(content = MembersBody, example = json!({"groupId": "7696581394433", "memberIds": ["4503599627370498", "4503599627370499"]})),
    responses(
        (status = 200, description = "added", body = SealDone, example = json!({"code": 200})),
        (status = 403, description = "the caller is not a member, or lacks the role", body = SealFault),
        (status = 404, description = "no such group (or user)", body = SealFault),
        SessionFaults,
    )
)]
async fn add(state: web::Data<AppState>, me: Me, body: web::Json<MembersBody>) -> SealResult {
    let g = group_id(&body.group_id)?;
    let members = member_ids(&state, &body.member_ids, false)?;
    state.groups.add(me.caller.user_id, g, members).await?;
    Ok(ok())
}

/// Removes members from a group.
#[utoipa::path(
    post,
    path = "/group/kick",
    tag = "groups",
    security(("bearer" = []), ("cookie" = [])),
    request_body(content = MembersBody, example = json!({"groupId": "7696581394433", "memberIds": ["4503599627370498", "4503599627370499"]})),
    responses(
        (status = 200, description = "kicked", body = SealDone, example = json!({"code": 200})),
        (status = 403, description = "the caller is not a member, or lacks the role", body = SealFault),
        (status = 404, description = "no such group (or user)", body = SealFault),
        SessionFaults,
    )
)]
async fn kick(state: web::Data<AppState>, me: Me, body: web::Json<MembersBody>) -> SealResult {
    let g = group_id(&body.group_id)?;
    let members = member_ids(&state, &body.member_ids, false)?;
    state.groups.kick(me.caller.user_id, g, members).await?;
    Ok(ok())
}

/// Makes members managers.
#[utoipa::path(
    post,
    path = "/group/set_manager",
    tag = "groups",
    security(("bearer" = []), ("cookie" = [])),
    request_body(content = MembersBody, example = json!({"groupId": "7696581394433", "memberIds": ["4503599627370498", "4503599627370499"]})),
    responses(
        (status = 200, description = "set", body = SealDone, example = json!({"code": 200})),
        (status = 403, description = "the caller is not a member, or lacks the role", body = SealFault),
        (status = 404, description = "no such group (or user)", body = SealFault),
        SessionFaults,
    )
)]
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

/// Makes managers plain members again.
#[utoipa::path(
    post,
    path = "/group/remove_manager",
    tag = "groups",
    security(("bearer" = []), ("cookie" = [])),
    request_body(content = MembersBody, example = json!({"groupId": "7696581394433", "memberIds": ["4503599627370498", "4503599627370499"]})),
    responses(
        (status = 200, description = "set", body = SealDone, example = json!({"code": 200})),
        (status = 403, description = "the caller is not a member, or lacks the role", body = SealFault),
        (status = 404, description = "no such group (or user)", body = SealFault),
        SessionFaults,
    )
)]
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

/// A body naming a group.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct GroupBody {
    /// The group.
    #[serde(rename = "groupId")]
    #[schema(value_type = Id)]
    group_id: Loose,
}

/// Leaves a group.
#[utoipa::path(
    post,
    path = "/group/quit",
    tag = "groups",
    security(("bearer" = []), ("cookie" = [])),
    request_body(content = GroupBody, example = json!({"groupId": "7696581394433"})),
    responses(
        (status = 200, description = "left", body = SealDone, example = json!({"code": 200})),
        (status = 403, description = "the caller is not a member, or lacks the role", body = SealFault),
        (status = 404, description = "no such group (or user)", body = SealFault),
        SessionFaults,
    )
)]
async fn quit(state: web::Data<AppState>, me: Me, body: web::Json<GroupBody>) -> SealResult {
    let g = group_id(&body.group_id)?;
    state.groups.quit(me.caller.user_id, g).await?;
    Ok(ok())
}

/// Dismisses a group (creator only).
#[utoipa::path(
    post,
    path = "/group/dismiss",
    tag = "groups",
    security(("bearer" = []), ("cookie" = [])),
    request_body(content = GroupBody, example = json!({"groupId": "7696581394433"})),
    responses(
        (status = 200, description = "dismissed", body = SealDone, example = json!({"code": 200})),
        (status = 403, description = "the caller is not a member, or lacks the role", body = SealFault),
        (status = 404, description = "no such group (or user)", body = SealFault),
        SessionFaults,
    )
)]
async fn dismiss(state: web::Data<AppState>, me: Me, body: web::Json<GroupBody>) -> SealResult {
    let g = group_id(&body.group_id)?;
    state.groups.dismiss(me.caller.user_id, g).await?;
    Ok(ok())
}

/// `transfer`'s body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct TransferBody {
    /// The group.
    #[serde(rename = "groupId")]
    #[schema(value_type = Id)]
    group_id: Loose,
    /// The member who becomes creator.
    #[serde(rename = "userId")]
    #[schema(value_type = Id)]
    user_id: Loose,
}

/// Hands the group over to another member (creator only).
#[utoipa::path(
    post,
    path = "/group/transfer",
    tag = "groups",
    security(("bearer" = []), ("cookie" = [])),
    request_body(content = TransferBody, example = json!({"groupId": "7696581394433", "userId": "4503599627370498"})),
    responses(
        (status = 200, description = "transferred", body = SealDone, example = json!({"code": 200})),
        (status = 403, description = "the caller is not a member, or lacks the role", body = SealFault),
        (status = 404, description = "no such group (or user)", body = SealFault),
        SessionFaults,
    )
)]
async fn transfer(state: web::Data<AppState>, me: Me, body: web::Json<TransferBody>) -> SealResult {
    let g = group_id(&body.group_id)?;
    let to = sealtalk::user_id("userId", &body.user_id)?;
    state.groups.transfer(me.caller.user_id, g, to).await?;
    Ok(ok())
}

/// `rename`'s body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct RenameBody {
    /// The group.
    #[serde(rename = "groupId")]
    #[schema(value_type = Id)]
    group_id: Loose,
    /// The new name: 2 to 32 characters by default (`KITH_GROUP_NAME_MIN`/`_MAX`).
    #[schema(min_length = 2, max_length = 32)]
    name: String,
}

/// Renames a group.
#[utoipa::path(
    post,
    path = "/group/rename",
    tag = "groups",
    security(("bearer" = []), ("cookie" = [])),
    request_body(content = RenameBody, example = json!({"groupId": "7696581394433", "name": "Team 2"})),
    responses(
        (status = 200, description = "renamed", body = SealDone, example = json!({"code": 200})),
        (status = 403, description = "the caller is not a member, or lacks the role", body = SealFault),
        (status = 404, description = "no such group (or user)", body = SealFault),
        SessionFaults,
    )
)]
async fn rename(state: web::Data<AppState>, me: Me, body: web::Json<RenameBody>) -> SealResult {
    let body = body.into_inner();
    let g = group_id(&body.group_id)?;
    let name = GroupName::new(body.name, state.groups.policy())?;
    state.groups.rename(me.caller.user_id, g, name).await?;
    Ok(ok())
}

/// `set_display_name`'s body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = GroupDisplayNameBody)]
pub struct DisplayNameBody {
    /// The group.
    #[serde(rename = "groupId")]
    #[schema(value_type = Id)]
    group_id: Loose,
    /// The caller's name in this group.
    #[serde(rename = "displayName")]
    display_name: String,
}

/// Sets the caller's name in a group.
#[utoipa::path(
    post,
    path = "/group/set_display_name",
    tag = "groups",
    security(("bearer" = []), ("cookie" = [])),
    request_body(content = DisplayNameBody, example = json!({"groupId": "7696581394433", "displayName": "Ironman"})),
    responses(
        (status = 200, description = "set", body = SealDone, example = json!({"code": 200})),
        (status = 403, description = "the caller is not a member, or lacks the role", body = SealFault),
        (status = 404, description = "no such group (or user)", body = SealFault),
        SessionFaults,
    )
)]
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

/// `set_portrait_uri`'s body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = GroupPortraitBody)]
pub struct PortraitBody {
    /// The group.
    #[serde(rename = "groupId")]
    #[schema(value_type = Id)]
    group_id: Loose,
    /// The portrait URL; "" clears it.
    #[serde(rename = "portraitUri")]
    portrait_uri: String,
}

/// Sets a group's portrait.
#[utoipa::path(
    post,
    path = "/group/set_portrait_uri",
    tag = "groups",
    security(("bearer" = []), ("cookie" = [])),
    request_body(content = PortraitBody, example = json!({"groupId": "7696581394433", "portraitUri": "http://test.com/group/abc123.jpg"})),
    responses(
        (status = 200, description = "set", body = SealDone, example = json!({"code": 200})),
        (status = 403, description = "the caller is not a member, or lacks the role", body = SealFault),
        (status = 404, description = "no such group (or user)", body = SealFault),
        SessionFaults,
    )
)]
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

/// `set_bulletin`'s body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct BulletinBody {
    /// The group.
    #[serde(rename = "groupId")]
    #[schema(value_type = Id)]
    group_id: Loose,
    /// The bulletin text.
    bulletin: String,
}

/// Sets a group's bulletin.
#[utoipa::path(
    post,
    path = "/group/set_bulletin",
    tag = "groups",
    security(("bearer" = []), ("cookie" = [])),
    request_body(content = BulletinBody, example = json!({"groupId": "7696581394433", "bulletin": "Meeting at 10"})),
    responses(
        (status = 200, description = "set", body = SealDone, example = json!({"code": 200})),
        (status = 403, description = "the caller is not a member, or lacks the role", body = SealFault),
        (status = 404, description = "no such group (or user)", body = SealFault),
        SessionFaults,
    )
)]
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

/// `get_bulletin`'s query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BulletinQuery {
    /// The group.
    #[serde(rename = "groupId")]
    #[param(pattern = r"^[1-9][0-9]{0,15}$")]
    group_id: String,
}

/// `get_bulletin`'s result.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BulletinView {
    /// The group.
    #[serde(rename = "groupId")]
    group_id: String,
    /// The bulletin text.
    content: String,
    /// When it was set, milliseconds since the epoch.
    timestamp: i64,
}

/// A group's bulletin.
#[utoipa::path(
    get,
    path = "/group/get_bulletin",
    tag = "groups",
    security(("bearer" = []), ("cookie" = [])),
    params(BulletinQuery),
    responses(
        (status = 200, description = "the bulletin", body = SealAnswer<BulletinView>, example = json!({"code": 200, "result": {"groupId": "7696581394433", "content": "Meeting at 10", "timestamp": 1560222477000_i64}})),
        (status = 403, description = "the caller is not a member, or lacks the role", body = SealFault),
        (status = 404, description = "no such group (or user)", body = SealFault),
        SessionFaults,
    )
)]
async fn get_bulletin(
    state: web::Data<AppState>,
    me: Me,
    query: web::Query<BulletinQuery>,
) -> SealResult {
    let g = group_id(&Loose::Text(query.into_inner().group_id))?;
    let (content, at) = state.groups.bulletin(me.caller.user_id, g).await?;
    Ok(ok_result(BulletinView {
        group_id: g.to_string(),
        content,
        timestamp: at,
    }))
}

fn path_group(raw: String) -> Result<GroupId, DomainError> {
    // A path that is no group id names no group.
    GroupId::parse(&raw).map_err(|_| DomainError::NotFound("group"))
}

/// One group, as `/group/{id}` shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GroupView {
    /// Group id.
    id: String,
    /// Name.
    name: String,
    /// Portrait URL.
    #[serde(rename = "portraitUri")]
    portrait_uri: String,
    /// The creator's id.
    #[serde(rename = "creatorId")]
    creator_id: String,
    /// How many members.
    #[serde(rename = "memberCount")]
    member_count: u32,
    /// The most members a group may have.
    #[serde(rename = "maxMemberCount")]
    max_member_count: u32,
    /// Bulletin text.
    bulletin: String,
    /// Version stamp, milliseconds.
    timestamp: i64,
    /// Creation time, RFC 3339.
    #[serde(rename = "createdAt")]
    created_at: String,
}

/// A group the caller belongs to.
#[utoipa::path(
    get,
    path = "/group/{id}",
    tag = "groups",
    security(("bearer" = []), ("cookie" = [])),
    params(("id" = String, Path, description = "Group id", example = "7696581394433", pattern = r"^[1-9][0-9]{0,15}$")),
    responses(
        (status = 200, description = "the group", body = SealAnswer<GroupView>, example = json!({"code": 200, "result": {"id": "7696581394433", "name": "Team 1", "portraitUri": "http://test.com/group/abc123.jpg", "creatorId": "4503599627370497", "memberCount": 5, "maxMemberCount": 500, "bulletin": "", "timestamp": 1560222477000_i64, "createdAt": "2019-06-11T03:07:57.000Z"}})),
        (status = 403, description = "the caller is not a member, or lacks the role", body = SealFault),
        (status = 404, description = "no such group (or user)", body = SealFault),
        SessionFaults,
    )
)]
async fn group(state: web::Data<AppState>, me: Me, path: web::Path<String>) -> SealResult {
    let g = path_group(path.into_inner())?;
    let s = state.groups.group(me.caller.user_id, g).await?;
    let info = s.info();
    Ok(ok_result(GroupView {
        id: info.id.to_string(),
        name: info.name,
        portrait_uri: info.portrait_uri,
        creator_id: info.creator.to_string(),
        member_count: info.member_count,
        max_member_count: state.groups.policy().max_members,
        bulletin: s.group.bulletin,
        timestamp: info.stamp,
        created_at: iso8601(s.group.created_at),
    }))
}

/// The user inside a member entry.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MemberUser {
    /// User id.
    id: String,
    /// Nickname.
    nickname: String,
    /// Portrait URL.
    #[serde(rename = "portraitUri")]
    portrait_uri: String,
}

/// One entry of `/group/{id}/members`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MemberJson {
    /// The member's name in this group.
    #[serde(rename = "displayName")]
    display_name: String,
    /// 0 creator, 1 member, 2 manager.
    role: i32,
    /// When the member joined, RFC 3339.
    #[serde(rename = "createdAt")]
    created_at: String,
    /// Last change, RFC 3339.
    #[serde(rename = "updatedAt")]
    updated_at: String,
    /// Version stamp, milliseconds.
    timestamp: i64,
    /// The member.
    user: MemberUser,
}

impl From<MemberView> for MemberJson {
    fn from(v: MemberView) -> Self {
        Self {
            display_name: v.member.display_name,
            role: v.member.role.code(),
            created_at: iso8601(v.member.joined_at),
            updated_at: iso8601(v.member.stamp),
            timestamp: v.member.stamp,
            user: MemberUser {
                id: v.user.to_string(),
                nickname: v.nickname,
                portrait_uri: v.portrait_uri,
            },
        }
    }
}

/// A group's members.
#[utoipa::path(
    get,
    path = "/group/{id}/members",
    tag = "groups",
    security(("bearer" = []), ("cookie" = [])),
    params(("id" = String, Path, description = "Group id", example = "7696581394433", pattern = r"^[1-9][0-9]{0,15}$")),
    responses(
        (status = 200, description = "the members", body = SealAnswer<MemberList>, example = json!({"code": 200, "result": [{"displayName": "Ironman", "role": 0, "createdAt": "2019-06-11T03:07:57.000Z", "updatedAt": "2019-06-11T03:07:57.000Z", "timestamp": 1560222477000_i64, "user": {"id": "4503599627370497", "nickname": "Tom", "portraitUri": "http://test.com/user/abc123.jpg"}}]})),
        (status = 403, description = "the caller is not a member, or lacks the role", body = SealFault),
        (status = 404, description = "no such group (or user)", body = SealFault),
        SessionFaults,
    )
)]
async fn members(state: web::Data<AppState>, me: Me, path: web::Path<String>) -> SealResult {
    let g = path_group(path.into_inner())?;
    let list = state.groups.members(me.caller.user_id, g).await?;
    Ok(ok_result(MemberList(
        list.into_iter().map(MemberJson::from).collect(),
    )))
}

/// `/group/{id}/members`' result.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MemberList(Vec<MemberJson>);

/// `/user/groups`' result.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MyGroupList(Vec<MyGroupJson>);

/// One entry of `/user/groups`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MyGroupJson {
    /// Group id.
    id: String,
    /// Name.
    name: String,
    /// Portrait URL.
    #[serde(rename = "portraitUri")]
    portrait_uri: String,
    /// The creator's id.
    #[serde(rename = "creatorId")]
    creator_id: String,
    /// How many members.
    #[serde(rename = "memberCount")]
    member_count: u32,
    /// The caller's role: 0 creator, 1 member, 2 manager.
    role: i32,
    /// The caller's name in the group.
    #[serde(rename = "displayName")]
    display_name: String,
    /// Version stamp, milliseconds.
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

/// The groups the caller belongs to (document 003).
#[utoipa::path(
    method(post, get),
    path = "/user/groups",
    tag = "003 SealTalk user",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "the groups", body = SealAnswer<MyGroupList>,
         example = json!({"code": 200, "result": [{"id": "7696581394433", "name": "Team 1",
            "portraitUri": "http://test.com/group/abc123.jpg", "creatorId": "4503599627370497",
            "memberCount": 5, "role": 0, "displayName": "", "timestamp": 1560222477000_i64}]})),
        SessionFaults,
    )
)]
async fn my_groups(state: web::Data<AppState>, me: Me) -> SealResult {
    let list = state.groups.my_groups(me.caller.user_id).await?;
    Ok(ok_result(MyGroupList(
        list.into_iter().map(MyGroupJson::from).collect(),
    )))
}

/// The group calls' part of the OpenAPI document (with `/user/groups`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(
        create,
        add,
        kick,
        quit,
        dismiss,
        transfer,
        rename,
        set_display_name,
        set_portrait_uri,
        set_bulletin,
        get_bulletin,
        set_manager,
        remove_manager,
        members,
        group,
        my_groups
    ))]
    struct Api;
    let mut doc = <Api as utoipa::OpenApi>::openapi();
    doc.merge(sealtalk::openapi());
    doc
}
