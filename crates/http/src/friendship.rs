//! The SealTalk friendship API (document 004) under `/friendship`, and the 003 blacklist calls.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use kith_domain::ids::UserId;
use kith_domain::ports::{Related, SideFilter};
use kith_domain::relationship::{Command, Outcome, RemarkPatch};
use kith_domain::DomainError;
use serde::{Deserialize, Serialize};

use crate::common::{iso8601, Authed, Decimal, Iso8601, Loose};
use crate::rendered::PageKey;
use crate::sealtalk::{
    self, get, get_post, ok, ok_body, ok_result, ok_result_body, post, Id, SealAnswer, SealDone,
    SealError, SealFault, SealResult, SealTalk, SessionFaults, StringOrNumber,
};
use crate::AppState;

type Me = Authed<SealTalk>;

/// Mounts `/friendship/...`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/friendship")
            .app_data(sealtalk::json_config())
            .app_data(sealtalk::path_config())
            .app_data(sealtalk::query_config())
            .service(post("/invite", invite))
            .service(post("/agree", agree))
            .service(post("/ignore", ignore))
            .service(post("/delete", delete))
            .service(post("/batch_delete", batch_delete))
            .service(post("/set_display_name", set_display_name))
            .service(post("/set_friend_description", set_friend_description))
            .service(post("/get_friend_description", get_friend_description))
            .service(post("/get_contacts_info", get_contacts_info))
            .service(get("/all", all))
            .service(get("/{friend_id}/profile", profile)),
    );
}

/// The blacklist calls of document 003, mounted inside `/user` before `/user/{id}`.
pub fn blacklist_routes(scope: actix_web::Scope) -> actix_web::Scope {
    scope
        // The document says POST; GET reads better and is accepted too.
        .service(get_post("/blacklist", blacklist))
        .service(post("/add_to_blacklist", add_to_blacklist))
        .service(post("/remove_from_blacklist", remove_from_blacklist))
}

/// A body naming one other user.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct FriendBody {
    /// The other user's id.
    #[serde(rename = "friendId")]
    #[schema(value_type = Id)]
    friend_id: Loose,
}

/// `invite`'s body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct InviteBody {
    /// The user to invite.
    #[serde(rename = "friendId")]
    #[schema(value_type = Id)]
    friend_id: Loose,
    /// A greeting shown with the request.
    message: Option<String>,
}

/// What an invite or agree did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ActionResult {
    /// `Added` (now friends), `None` (refused: the other side blocks you), `Sent` (request
    /// sent), `AddDirectly` (the other side needs no verification: now friends).
    #[schema(value_type = String, example = "Sent")]
    action: &'static str,
}

fn action(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Invite(a) => a.as_str(),
        Outcome::Done | Outcome::Unchanged => "None",
    }
}

/// Invites a user to be friends (sends the request again when one is pending).
#[utoipa::path(
    post,
    path = "/friendship/invite",
    tag = "004 SealTalk friendship",
    security(("bearer" = []), ("cookie" = [])),
    request_body(content = InviteBody, example = json!({"friendId": "4503599627370498", "message": "你好,我是 Martin"})),
    responses(
        (status = 200, description = "the action; 5000 over the frequency limit (with `Retry-After`)", body = SealAnswer<ActionResult>, example = json!({"code": 200, "result": {"action": "Added"}})),
        (status = 400, description = "already friends, or a bad id", body = SealFault),
        (status = 404, description = "no such user", body = SealFault),
        SessionFaults,
    )
)]
async fn invite(state: web::Data<AppState>, me: Me, body: web::Json<InviteBody>) -> SealResult {
    let body = body.into_inner();
    let other = sealtalk::user_id("friendId", &body.friend_id)?;
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
    Ok(ok_result(ActionResult {
        action: action(t.outcome),
    }))
}

/// Accepts a pending friend request from `friendId`.
#[utoipa::path(
    post,
    path = "/friendship/agree",
    tag = "004 SealTalk friendship",
    security(("bearer" = []), ("cookie" = [])),
    request_body(content = FriendBody, example = json!({"friendId": "4503599627370498"})),
    responses(
        (status = 200, description = "now friends", body = SealAnswer<ActionResult>, example = json!({"code": 200, "result": {"action": "Added"}})),
        (status = 404, description = "no such user, or no such request", body = SealFault),
        SessionFaults,
    )
)]
async fn agree(state: web::Data<AppState>, me: Me, body: web::Json<FriendBody>) -> SealResult {
    let other = sealtalk::user_id("friendId", &body.friend_id)?;
    state
        .relationships
        .run(me.caller.user_id, other, Command::Accept)
        .await?;
    Ok(ok_result(ActionResult { action: "Added" }))
}

/// Ignores a pending friend request from `friendId`.
#[utoipa::path(
    post,
    path = "/friendship/ignore",
    tag = "004 SealTalk friendship",
    security(("bearer" = []), ("cookie" = [])),
    request_body(content = FriendBody, example = json!({"friendId": "4503599627370498"})),
    responses(
        (status = 200, description = "ignored", body = SealDone, example = json!({"code": 200})),
        (status = 404, description = "no such user, or no such request", body = SealFault),
        SessionFaults,
    )
)]
async fn ignore(state: web::Data<AppState>, me: Me, body: web::Json<FriendBody>) -> SealResult {
    let other = sealtalk::user_id("friendId", &body.friend_id)?;
    state
        .relationships
        .run(me.caller.user_id, other, Command::Ignore)
        .await?;
    Ok(ok())
}

/// Ends a friendship.
#[utoipa::path(
    post,
    path = "/friendship/delete",
    tag = "004 SealTalk friendship",
    security(("bearer" = []), ("cookie" = [])),
    request_body(content = FriendBody, example = json!({"friendId": "4503599627370498"})),
    responses(
        (status = 200, description = "deleted", body = SealDone, example = json!({"code": 200})),
        (status = 404, description = "no such user, or no such request", body = SealFault),
        SessionFaults,
    )
)]
async fn delete(state: web::Data<AppState>, me: Me, body: web::Json<FriendBody>) -> SealResult {
    let other = sealtalk::user_id("friendId", &body.friend_id)?;
    state
        .relationships
        .run(me.caller.user_id, other, Command::Delete)
        .await?;
    Ok(ok())
}

/// `batch_delete`'s body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct BatchDeleteBody {
    /// The friends to delete.
    #[serde(rename = "friendIds")]
    #[schema(value_type = Vec<Id>)]
    friend_ids: Vec<Loose>,
}

/// Ends several friendships at once.
#[utoipa::path(
    post,
    path = "/friendship/batch_delete",
    tag = "004 SealTalk friendship",
    security(("bearer" = []), ("cookie" = [])),
    request_body(content = BatchDeleteBody, example = json!({"friendIds": ["4503599627370498", "4503599627370499"]})),
    responses(
        (status = 200, description = "deleted", body = SealDone, example = json!({"code": 200})),
        (status = 404, description = "no such user, or no such request", body = SealFault),
        SessionFaults,
    )
)]
async fn batch_delete(
    state: web::Data<AppState>,
    me: Me,
    body: web::Json<BatchDeleteBody>,
) -> SealResult {
    let ids = body
        .friend_ids
        .iter()
        .map(|raw| sealtalk::user_id("friendIds", raw))
        .collect::<Result<Vec<_>, _>>()?;
    state
        .relationships
        .delete_friends(me.caller.user_id, &ids)
        .await?;
    Ok(ok())
}

/// `set_display_name`'s body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct DisplayNameBody {
    /// The friend.
    #[serde(rename = "friendId")]
    #[schema(value_type = Id)]
    friend_id: Loose,
    /// The remark name; "" clears it.
    #[serde(rename = "displayName")]
    #[schema(
        max_length = 32,
        pattern = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
    )]
    display_name: String,
}

/// Sets the remark name of a friend.
#[utoipa::path(
    post,
    path = "/friendship/set_display_name",
    tag = "004 SealTalk friendship",
    security(("bearer" = []), ("cookie" = [])),
    request_body(content = DisplayNameBody, example = json!({"friendId": "4503599627370498", "displayName": "备注"})),
    responses(
        (status = 200, description = "set", body = SealDone, example = json!({"code": 200})),
        (status = 404, description = "no such user, or no such request", body = SealFault),
        SessionFaults,
    )
)]
async fn set_display_name(
    state: web::Data<AppState>,
    me: Me,
    body: web::Json<DisplayNameBody>,
) -> SealResult {
    let body = body.into_inner();
    let other = sealtalk::user_id("friendId", &body.friend_id)?;
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

/// `set_friend_description`'s body: only the fields sent change; "" clears one.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct DescriptionBody {
    /// The friend.
    #[serde(rename = "friendId")]
    #[schema(value_type = Id)]
    friend_id: Loose,
    /// Remark name.
    #[serde(rename = "displayName")]
    display_name: Option<String>,
    /// Remark phone's dialling code.
    #[schema(value_type = Option<StringOrNumber>)]
    region: Option<Loose>,
    /// Remark phone.
    #[schema(value_type = Option<StringOrNumber>)]
    phone: Option<Loose>,
    /// Free text.
    description: Option<String>,
    /// A photo URL.
    #[serde(rename = "imageUri")]
    image_uri: Option<String>,
}

/// A friend's remarks, as `get_friend_description` answers them ("" when unset).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FriendDescription {
    /// Remark name.
    #[serde(rename = "displayName")]
    display_name: String,
    /// Remark phone's dialling code.
    region: String,
    /// Remark phone.
    phone: String,
    /// Free text.
    description: String,
    /// A photo URL.
    #[serde(rename = "imageUri")]
    image_uri: String,
}

/// Sets a friend's remarks.
#[utoipa::path(
    post,
    path = "/friendship/set_friend_description",
    tag = "004 SealTalk friendship",
    security(("bearer" = []), ("cookie" = [])),
    request_body(content = DescriptionBody, example = json!({"friendId": "4503599627370498", "displayName": "Fox", "region": "86", "phone": "18700991234", "description": "融云该公司地址在北京市朝阳区北苑路北。", "imageUri": "http://rongcloud-file.ronghub.com/cb6d05474f891251ae.PNG"})),
    responses(
        (status = 200, description = "set", body = SealDone, example = json!({"code": 200})),
        (status = 404, description = "no such user, or no such request", body = SealFault),
        SessionFaults,
    )
)]
async fn set_friend_description(
    state: web::Data<AppState>,
    me: Me,
    body: web::Json<DescriptionBody>,
) -> SealResult {
    let body = body.into_inner();
    let other = sealtalk::user_id("friendId", &body.friend_id)?;
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

/// A friend's remarks.
#[utoipa::path(
    post,
    path = "/friendship/get_friend_description",
    tag = "004 SealTalk friendship",
    security(("bearer" = []), ("cookie" = [])),
    request_body(content = FriendBody, example = json!({"friendId": "4503599627370498"})),
    responses(
        (status = 200, description = "the remarks", body = SealAnswer<FriendDescription>, example = json!({"code": 200, "result": {"displayName": "Fox", "region": "86", "phone": "18700991234", "description": "融云该公司地址在北京市朝阳区北苑路北。", "imageUri": "http://rongcloud-file.ronghub.com/cb6d05474f891251ae.PNG"}})),
        (status = 404, description = "no such user, or no such request", body = SealFault),
        SessionFaults,
    )
)]
async fn get_friend_description(
    state: web::Data<AppState>,
    me: Me,
    body: web::Json<FriendBody>,
) -> SealResult {
    let other = sealtalk::user_id("friendId", &body.friend_id)?;
    let r = state.relationships.get(me.caller.user_id, other).await?;
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    Ok(ok_result(FriendDescription {
        display_name: s(&r.mine.display_name),
        region: s(&r.mine.remark_region),
        phone: s(&r.mine.remark_phone),
        description: s(&r.mine.description),
        image_uri: s(&r.mine.remark_image_uri),
    }))
}

// The answers below borrow from the relationships they show: a list answer writes 50 of them,
// and copying their strings first was a tenth of a cached `/friendship/all` (docs/benchmarks.md).

/// The user object of this API.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FriendUser<'a> {
    /// User id.
    #[schema(value_type = String)]
    id: Decimal,
    /// Nickname.
    nickname: &'a str,
    /// Dialling code, "" unless the phone is visible to the caller.
    region: &'a str,
    /// National number, "" unless the phone is visible to the caller.
    phone: &'a str,
    /// Portrait URL.
    #[serde(rename = "portraitUri")]
    portrait_uri: &'a str,
    /// Gender, `null` when hidden or unset.
    gender: Option<&'a str>,
}

/// The phone shows to friends and to those whose phone book holds it.
fn user_json(r: &Related) -> FriendUser<'_> {
    let visible = r.mine.is_friend() || r.mine.phone_visible;
    let (region, phone) = if visible {
        (r.user.phone.region(), r.user.phone.national())
    } else {
        ("", "")
    };
    FriendUser {
        id: Decimal(r.user.id.get()),
        nickname: &r.user.nickname,
        region,
        phone,
        portrait_uri: &r.user.portrait_uri,
        gender: r.user.shown_gender(),
    }
}

/// One entry of `/friendship/all`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FriendEntry<'a> {
    /// Remark name.
    #[serde(rename = "displayName")]
    display_name: &'a str,
    /// The request's greeting.
    message: &'a str,
    /// 10 requested, 11 requested by them, 20 friends, 21 ignored, 30 deleted.
    status: Option<i32>,
    /// Last change, RFC 3339.
    #[serde(rename = "updatedAt")]
    #[schema(value_type = String)]
    updated_at: Iso8601,
    /// Last change, milliseconds since the epoch, as a string.
    #[serde(rename = "updatedTime")]
    #[schema(value_type = String)]
    updated_time: Decimal,
    /// The other user.
    user: FriendUser<'a>,
}

/// `/friendship/all`'s result.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FriendList<'a>(Vec<FriendEntry<'a>>);

/// `/friendship/{friendId}/profile`'s result.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FriendProfile<'a> {
    /// Remark name.
    #[serde(rename = "displayName")]
    display_name: &'a str,
    /// The friend.
    user: FriendUser<'a>,
}

/// Paging of a SealTalk list (Kith's addition; without it the first page is the whole
/// list up to the server's cap).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page size, at least 1.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 4_294_967_295_u64)]
    limit: Option<u32>,
    /// From the `Link: rel="next"` header of the previous page.
    #[param(pattern = r"^[1-9][0-9]{0,15}$")]
    cursor: Option<String>,
}

/// One page of a list for the SealTalk face.
struct SealPage {
    rows: Vec<Arc<Related>>,
    /// The `Link` to the next page, when the list goes on.
    link: Option<String>,
    /// The id the page starts after (the cursor).
    after: Option<UserId>,
}

/// Reads one page of a list for the SealTalk face; a cut list carries a `Link` to the next page.
async fn page(
    state: &AppState,
    req: &HttpRequest,
    me: UserId,
    filter: SideFilter,
    query: &ListQuery,
) -> Result<SealPage, SealError> {
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
    Ok(SealPage {
        rows: listed.rows,
        link,
        after,
    })
}

fn with_link(mut res: HttpResponse, link: Option<String>) -> HttpResponse {
    if let Some(link) = link {
        if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&link) {
            res.headers_mut().insert(actix_web::http::header::LINK, v);
        }
    }
    res
}

/// The friend list, with pending requests.
#[utoipa::path(
    get,
    path = "/friendship/all",
    tag = "004 SealTalk friendship",
    security(("bearer" = []), ("cookie" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "the list", body = SealAnswer<FriendList>,
         headers(("Link" = String, description = "`<...?limit=N&cursor=C>; rel=\"next\"` when the list goes on")),
         example = json!({"code": 200, "result": [{"displayName": "Martin",
            "message": "你好,我是一杯水", "status": 10, "updatedAt": "2019-06-11T03:07:57.000Z",
            "updatedTime": "1560222477000", "user": {"id": "4503599627370498",
            "nickname": "一杯水", "region": "86", "phone": "13269772766",
            "portraitUri": "http://7xogjk.com1.z0.glb.clouddn.com/Fo6wxS7zzvGpwyAFhlpTUVirpOGh",
            "gender": "male"}}]})),
        SessionFaults,
    )
)]
async fn all(
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Me,
    query: web::Query<ListQuery>,
) -> SealResult {
    let me = me.caller.user_id;
    let page = page(&state, &req, me, SideFilter::Friendship, &query).await?;
    // The hub of a friends list asks for the same page again and again; the store hands out
    // the same shared rows while it is unchanged, and the JSON of 50 entries was two thirds of
    // such a request's instructions (docs/benchmarks.md).
    let key = PageKey {
        route: "/friendship/all",
        owner: me,
        after: page.after,
        limit: query.limit,
    };
    let body = state.rendered.body(key, &page.rows, |rows| {
        let result: Vec<FriendEntry> = rows
            .iter()
            .map(|r| FriendEntry {
                display_name: r.mine.display_name.as_deref().unwrap_or_default(),
                message: r.mine.request_message.as_deref().unwrap_or_default(),
                status: r.mine.friendship.sealtalk_status(),
                updated_at: Iso8601(r.mine.updated_at),
                updated_time: Decimal(r.mine.updated_at),
                user: user_json(r),
            })
            .collect();
        ok_result_body(FriendList(result))
    })?;
    Ok(with_link(ok_body(body), page.link))
}

/// A friend's profile.
#[utoipa::path(
    get,
    path = "/friendship/{friendId}/profile",
    tag = "004 SealTalk friendship",
    security(("bearer" = []), ("cookie" = [])),
    params(("friendId" = String, Path, description = "The friend's id", pattern = r"^[1-9][0-9]{0,15}$", example = "4503599627370498")),
    responses(
        (status = 200, description = "the friend", body = SealAnswer<FriendProfile>, example = json!({"code": 200, "result": {"displayName": "Wee", "user": {"id": "4503599627370498", "nickname": "Tina", "region": "86", "phone": "18221252163", "portraitUri": "http://7xogjk.com1.z0.glb.clouddn.com/FjsNMjYoVKfGmA86SNwnggfKgE6_", "gender": null}}})),
        (status = 403, description = "friendId is not a friend of the caller", body = SealFault),
        (status = 404, description = "no such user", body = SealFault),
        SessionFaults,
    )
)]
async fn profile(state: web::Data<AppState>, me: Me, path: web::Path<String>) -> SealResult {
    let other = UserId::parse(&path.into_inner())?;
    let r = state.relationships.friend(me.caller.user_id, other).await?;
    Ok(ok_result(FriendProfile {
        display_name: r.mine.display_name.as_deref().unwrap_or_default(),
        user: user_json(&r),
    }))
}

/// `get_contacts_info`'s body (`contacstList`, the document's spelling, is read too).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ContactsInfoBody {
    /// Phone numbers from the caller's phone book.
    #[serde(rename = "contactList", alias = "contacstList")]
    #[schema(value_type = Vec<StringOrNumber>)]
    contact_list: Vec<Loose>,
}

/// `get_contacts_info`'s result.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ContactInfoList(Vec<ContactInfo>);

/// One phone of `get_contacts_info`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ContactInfo {
    /// 1 registered, 0 not.
    registered: i32,
    /// 1 friend, 0 not.
    relationship: i32,
    /// SealTalk account name: Kith has none, always "".
    #[serde(rename = "stAccount")]
    st_account: String,
    /// The phone as sent.
    phone: String,
    /// The user's id, only when registered.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    id: Option<String>,
    /// Nickname, "" when not registered.
    nickname: String,
    /// Portrait URL, "" when not registered.
    #[serde(rename = "portraitUri")]
    portrait_uri: String,
}

/// Which phone-book numbers are Kith users, and friends.
#[utoipa::path(
    post,
    path = "/friendship/get_contacts_info",
    tag = "004 SealTalk friendship",
    security(("bearer" = []), ("cookie" = [])),
    request_body(content = ContactsInfoBody, example = json!({"contactList": ["13099990000", "13912349090"]})),
    responses(
        (status = 200, description = "one entry per phone", body = SealAnswer<ContactInfoList>, example = json!({"code": 200, "result": [{"registered": 1, "relationship": 0, "stAccount": "", "phone": "13099990000", "id": "4503599627370498", "nickname": "Tom", "portraitUri": "http://test.com/user/abc123.jpg"}, {"registered": 0, "relationship": 0, "stAccount": "", "phone": "13912349090", "nickname": "", "portraitUri": ""}]})),
        SessionFaults,
    )
)]
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
    let result: Vec<ContactInfo> = infos
        .into_iter()
        .map(|info| match info.user {
            Some(u) => ContactInfo {
                registered: 1,
                relationship: i32::from(info.is_friend),
                st_account: String::new(),
                phone: info.phone,
                id: Some(u.id.to_string()),
                nickname: u.nickname,
                portrait_uri: u.portrait_uri,
            },
            None => ContactInfo {
                registered: 0,
                relationship: 0,
                st_account: String::new(),
                phone: info.phone,
                id: None,
                nickname: String::new(),
                portrait_uri: String::new(),
            },
        })
        .collect();
    Ok(ok_result(ContactInfoList(result)))
}

/// One entry of `/user/blacklist`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BlacklistEntry {
    /// User id.
    id: String,
    /// Nickname.
    nickname: String,
    /// Portrait URL.
    #[serde(rename = "portraitUri")]
    portrait_uri: String,
    /// When blocked, RFC 3339.
    #[serde(rename = "updatedAt")]
    updated_at: String,
}

/// `/user/blacklist`'s result.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BlacklistList(Vec<BlacklistEntry>);

/// The users the caller blocks.
#[utoipa::path(
    method(post, get),
    path = "/user/blacklist",
    tag = "003 SealTalk user",
    security(("bearer" = []), ("cookie" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "the list", body = SealAnswer<BlacklistList>,
         headers(("Link" = String, description = "`<...?limit=N&cursor=C>; rel=\"next\"` when the list goes on")),
         example = json!({"code": 200, "result": [{"id": "4503599627370498", "nickname": "Tom",
            "portraitUri": "http://test.com/user/abc123.jpg",
            "updatedAt": "2019-06-11T03:07:57.000Z"}]})),
        SessionFaults,
    )
)]
async fn blacklist(
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Me,
    query: web::Query<ListQuery>,
) -> SealResult {
    let page = page(
        &state,
        &req,
        me.caller.user_id,
        SideFilter::Blocking,
        &query,
    )
    .await?;
    let result: Vec<BlacklistEntry> = page
        .rows
        .iter()
        .map(|r| BlacklistEntry {
            id: r.user.id.to_string(),
            nickname: r.user.nickname.clone(),
            portrait_uri: r.user.portrait_uri.clone(),
            updated_at: iso8601(r.mine.blocked_at.unwrap_or(r.mine.updated_at)),
        })
        .collect();
    Ok(with_link(ok_result(BlacklistList(result)), page.link))
}

/// Blocks a user (ends any friendship and pending request).
#[utoipa::path(
    post,
    path = "/user/add_to_blacklist",
    tag = "003 SealTalk user",
    security(("bearer" = []), ("cookie" = [])),
    request_body(content = FriendBody, example = json!({"friendId": "4503599627370498"})),
    responses(
        (status = 200, description = "blocked", body = SealDone, example = json!({"code": 200})),
        (status = 404, description = "no such user", body = SealFault),
        SessionFaults,
    )
)]
async fn add_to_blacklist(
    state: web::Data<AppState>,
    me: Me,
    body: web::Json<FriendBody>,
) -> SealResult {
    let other = sealtalk::user_id("friendId", &body.friend_id)?;
    state
        .relationships
        .run(me.caller.user_id, other, Command::Block)
        .await?;
    Ok(ok())
}

/// Unblocks a user.
#[utoipa::path(
    post,
    path = "/user/remove_from_blacklist",
    tag = "003 SealTalk user",
    security(("bearer" = []), ("cookie" = [])),
    request_body(content = FriendBody, example = json!({"friendId": "4503599627370498"})),
    responses(
        (status = 200, description = "unblocked", body = SealDone, example = json!({"code": 200})),
        (status = 404, description = "no such user", body = SealFault),
        SessionFaults,
    )
)]
async fn remove_from_blacklist(
    state: web::Data<AppState>,
    me: Me,
    body: web::Json<FriendBody>,
) -> SealResult {
    let other = sealtalk::user_id("friendId", &body.friend_id)?;
    state
        .relationships
        .run(me.caller.user_id, other, Command::Unblock)
        .await?;
    Ok(ok())
}

/// The friendship calls' part of the OpenAPI document, with the 003 blacklist calls.
pub fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(
        invite,
        agree,
        ignore,
        delete,
        batch_delete,
        set_display_name,
        set_friend_description,
        get_friend_description,
        get_contacts_info,
        all,
        profile,
        blacklist,
        add_to_blacklist,
        remove_from_blacklist
    ))]
    struct Api;
    let mut doc = <Api as utoipa::OpenApi>::openapi();
    doc.merge(sealtalk::openapi());
    doc
}
