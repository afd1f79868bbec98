//! The friends / follows / blocks API (document 001): numeric ids, 201 / 204, bare JSON arrays.

use actix_web::{http::Method, web, HttpRequest, HttpResponse};
use kith_domain::ids::{Millis, RequestId, UserId};
use kith_domain::ports::{Related, SideFilter, UserProfile};
use kith_domain::relationship::{Command, InviteOutcome, Outcome, Transition};
use kith_domain::DomainError;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::common::{iso8601, Authed};
use crate::rest::{self, BodyFaults, ErrorEnvelope, PageQuery, Rest, RestResult, SessionFaults};
use crate::AppState;

type Me = Authed<Rest>;

const TAG: &str = "001 friends";

/// This module's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(
        paths(
            friends,
            request,
            incoming,
            sent,
            accept,
            ignore,
            withdraw,
            sync,
            delete_friend,
            follow,
            followers,
            followees,
            unfollow,
            block,
            blocks,
            unblock
        ),
        components(schemas(
            RequestBody,
            RequestIdBody,
            FollowBody,
            BlockBody,
            RequestCreated,
            RequestAnswered,
            FriendRequestCount,
            Followed,
            Blocked,
            IncomingRequest,
            SentRequest,
            Friend,
            Follower,
            Followee,
            BlockedUser
        ))
    )]
    struct Api;
    <Api as utoipa::OpenApi>::openapi()
}

/// Mounts `/friends`, `/follows` and `/blocks`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/friends")
            .app_data(rest::json_config())
            .app_data(rest::path_config())
            .app_data(rest::query_config())
            .service(rest::resource("", [(Method::GET, web::to(friends))]))
            .service(rest::resource(
                "/request",
                [
                    (Method::POST, web::to(request)),
                    (Method::GET, web::to(incoming)),
                ],
            ))
            .service(rest::resource(
                "/request_sent",
                [(Method::GET, web::to(sent))],
            ))
            .service(rest::resource("/accept", [(Method::POST, web::to(accept))]))
            .service(rest::resource("/ignore", [(Method::POST, web::to(ignore))]))
            .service(rest::resource(
                "/withdraw",
                [(Method::POST, web::to(withdraw))],
            ))
            .service(rest::resource("/sync", [(Method::GET, web::to(sync))]))
            .service(rest::resource(
                "/{user_id}",
                [(Method::DELETE, web::to(delete_friend))],
            ))
            .default_service(web::to(rest::no_route)),
    )
    .service(
        web::scope("/follows")
            .app_data(rest::json_config())
            .app_data(rest::path_config())
            .app_data(rest::query_config())
            .service(rest::resource("", [(Method::POST, web::to(follow))]))
            .service(rest::resource(
                "/{user_id}/follower",
                [(Method::GET, web::to(followers))],
            ))
            .service(rest::resource(
                "/{user_id}/followee",
                [(Method::GET, web::to(followees))],
            ))
            .service(rest::resource(
                "/{followee_id}",
                [(Method::DELETE, web::to(unfollow))],
            ))
            .default_service(web::to(rest::no_route)),
    )
    .service(
        web::scope("/blocks")
            .app_data(rest::json_config())
            .app_data(rest::path_config())
            .app_data(rest::query_config())
            .service(rest::resource(
                "",
                [
                    (Method::POST, web::to(block)),
                    (Method::GET, web::to(blocks)),
                ],
            ))
            .service(rest::resource(
                "/{user_id}",
                [(Method::DELETE, web::to(unblock))],
            ))
            .default_service(web::to(rest::no_route)),
    );
}

/// The JSON keys one list uses for a user, since every 001 list prefixes them differently.
struct Keys {
    id: &'static str,
    name: &'static str,
    nick: &'static str,
    age: &'static str,
    gender: &'static str,
}

const REQUEST: Keys = Keys {
    id: "request_user_id",
    name: "request_user_name",
    nick: "request_user_nick_name",
    age: "request_user_age",
    gender: "request_user_gender",
};
const REQUESTED: Keys = Keys {
    id: "requested_user_id",
    name: "requested_user_name",
    nick: "requested_user_nick_name",
    age: "requested_user_age",
    gender: "requested_user_gender",
};
const FRIEND: Keys = Keys {
    id: "friend_id",
    name: "friend_user_name",
    nick: "friend_user_nick_name",
    age: "friend_user_age",
    gender: "friend_user_gender",
};
const FOLLOWER: Keys = Keys {
    id: "follower_id",
    name: "follower_user_name",
    nick: "follower_user_nick_name",
    age: "follower_user_age",
    gender: "follower_user_gender",
};
const FOLLOWEE: Keys = Keys {
    id: "followee_id",
    name: "followee_user_name",
    nick: "followee_user_nick_name",
    age: "followee_user_age",
    gender: "followee_user_gender",
};
// 001 names no block list; its keys follow the request lists' `<role>_user_*` pattern.
const BLOCKED: Keys = Keys {
    id: "blocked_user_id",
    name: "blocked_user_name",
    nick: "blocked_user_nick_name",
    age: "blocked_user_age",
    gender: "blocked_user_gender",
};

/// One user as a list row, with the fields their privacy settings hide set to null.
fn person(keys: &Keys, user: &UserProfile, now: Millis) -> Map<String, Value> {
    let mut row = Map::new();
    row.insert(keys.id.into(), json!(user.id.get()));
    row.insert(keys.name.into(), json!(user.shown_user_name()));
    row.insert(keys.nick.into(), json!(user.nickname));
    row.insert(keys.age.into(), json!(user.shown_age(now)));
    row.insert(keys.gender.into(), json!(user.shown_gender()));
    row
}

/// A request row: the other user plus the request's id, their email and when it was (re)sent.
fn request_row(keys: &Keys, email_key: &str, r: &Related, now: Millis) -> Map<String, Value> {
    let mut row = person(keys, &r.user, now);
    row.insert(
        "friend_request_id".into(),
        json!(r.mine.request_id.map(RequestId::get)),
    );
    row.insert(email_key.into(), json!(r.user.email));
    let at = r.mine.request_at.unwrap_or(r.mine.created_at);
    row.insert("created_at".into(), json!(iso8601(at)));
    row
}

/// One page of `owner`'s rows matching `filter`, each turned into JSON by `row`.
async fn page(
    state: &AppState,
    req: &HttpRequest,
    owner: UserId,
    filter: SideFilter,
    query: &PageQuery,
    row: impl Fn(&Related, Millis) -> Map<String, Value>,
) -> RestResult {
    let paging = query.check(state.relationships.policy().list_cap)?;
    let listed = state
        .relationships
        .list(owner, filter, Some(paging.limit), paging.after)
        .await?;
    // Ages follow the domain's clock, so tests that set it see the ages they expect.
    let now = state.accounts.ports().clock.now();
    // Phone-book placeholders are not users in this API: nothing here can address them.
    let rows: Vec<Value> = listed
        .rows
        .iter()
        .filter(|r| r.user.registered)
        .map(|r| Value::Object(row(r, now)))
        .collect();
    let mut res = HttpResponse::Ok();
    rest::link_next(&mut res, req, paging, listed.next);
    Ok(res.json(rows))
}

/// A user whose lists `me` may read: myself, or a user who exists and does not block me.
async fn visible_owner(state: &AppState, me: UserId, raw: &str) -> Result<UserId, DomainError> {
    let owner = rest::path_user_id("user_id", raw)?;
    if owner != me {
        state.relationships.get(me, owner).await?;
    }
    Ok(owner)
}

/// Runs `cmd` on `other`, naming a bad target after the request's `field`.
async fn run(
    state: &AppState,
    me: UserId,
    other: UserId,
    cmd: Command,
    field: &'static str,
) -> Result<Transition, DomainError> {
    state
        .relationships
        .run(me, other, cmd)
        .await
        .map_err(|e| rename_target(e, field))
}

fn rename_target(err: DomainError, field: &'static str) -> DomainError {
    rest::rename(err, "id", field)
}

/// `POST /friends/request`'s body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct RequestBody {
    /// The user asked to be a friend.
    #[schema(minimum = 1, maximum = 9_007_199_254_740_991_i64)]
    requested_user_id: i64,
    /// Push the pending request to them again (a first request when none is pending).
    #[serde(default)]
    resend: bool,
}

/// Sends a friend request (`resend`: pushes a pending one again).
#[utoipa::path(
    post,
    operation_id = "friends_request",
    path = "/friends/request",
    tag = TAG,
    security(("bearer" = []), ("cookie" = [])),
    request_body(content = RequestBody, example = json!({"requested_user_id": 2_918_372_541_u64, "resend": false})),
    responses(
        (status = 201, description = "requested; `is_friend` is true when they had asked the caller first",
         body = RequestCreated,
         example = json!({"friend_request_id": 81_726_354, "requested_user_id": 2_918_372_541_u64, "is_friend": false})),
        (status = 400, description = "`invalid`: a malformed body or `requested_user_id` (also the caller's own id)", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`: a block between the two users refuses it", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: no such user", body = ErrorEnvelope),
        (status = 409, description = "`already_friends`, or `conflict`", body = ErrorEnvelope),
        BodyFaults,
        SessionFaults,
    )
)]
async fn request(state: web::Data<AppState>, me: Me, body: web::Json<RequestBody>) -> RestResult {
    let field = "requested_user_id";
    let other = rest::user_id(field, body.requested_user_id)?;
    let me = me.caller.user_id;
    let invite = Command::Invite { message: None };
    let t = if body.resend {
        let resend = Command::Resend { message: None };
        match run(&state, me, other, resend, field).await {
            // Nothing pending to push again: a resend of a first request is just a request.
            Err(DomainError::NotFound("friend_request")) => {
                run(&state, me, other, invite, field).await
            }
            done => done,
        }
    } else {
        run(&state, me, other, invite, field).await
    }?;
    // The domain answers a blocked requester with "nothing sent"; 001 has no "nothing" status.
    if t.outcome == Outcome::Invite(InviteOutcome::None) && t.pair.theirs.blocking {
        return Err(DomainError::Forbidden("blocked").into());
    }
    Ok(HttpResponse::Created().json(json!({
        "friend_request_id": t.pair.mine.request_id.map(RequestId::get),
        "requested_user_id": other.get(),
        "is_friend": t.pair.mine.is_friend(),
    })))
}

/// The body of accept, ignore and withdraw.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct RequestIdBody {
    /// The request's id, from `GET /friends/request` or `POST /friends/request`.
    #[schema(minimum = 1, maximum = 9_007_199_254_740_991_i64)]
    friend_request_id: i64,
}

/// Accepts, ignores or withdraws the request `body` names; not taking part in it is a 404.
async fn answer(state: &AppState, me: Me, body: &RequestIdBody, cmd: Command) -> RestResult {
    let id = RequestId::new(body.friend_request_id)?;
    let t = state
        .relationships
        .run_on_request(me.caller.user_id, id, cmd)
        .await?;
    Ok(HttpResponse::Created().json(json!({
        "friend_request_id": id.get(),
        "is_friend": t.pair.mine.is_friend(),
    })))
}

/// Accepts a friend request the caller received: both become friends.
#[utoipa::path(
    post,
    operation_id = "friends_accept",
    path = "/friends/accept",
    tag = TAG,
    security(("bearer" = []), ("cookie" = [])),
    request_body(content = RequestIdBody, example = json!({"friend_request_id": 81_726_354})),
    responses(
        (status = 201, description = "done; `is_friend` tells the relationship afterwards",
         body = RequestAnswered, example = json!({"friend_request_id": 81_726_354, "is_friend": true})),
        (status = 400, description = "`invalid`: a malformed body or `friend_request_id`", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`: the rules refuse it (for example, a block)", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: no such pending request sent to the caller", body = ErrorEnvelope),
        (status = 409, description = "`conflict` or `already_friends`: the request is no longer pending", body = ErrorEnvelope),
        BodyFaults,
        SessionFaults,
    )
)]
async fn accept(state: web::Data<AppState>, me: Me, body: web::Json<RequestIdBody>) -> RestResult {
    answer(&state, me, &body, Command::Accept).await
}

/// Ignores a friend request the caller received.
#[utoipa::path(
    post,
    operation_id = "friends_ignore",
    path = "/friends/ignore",
    tag = TAG,
    security(("bearer" = []), ("cookie" = [])),
    request_body(content = RequestIdBody, example = json!({"friend_request_id": 81_726_354})),
    responses(
        (status = 201, description = "done; `is_friend` tells the relationship afterwards",
         body = RequestAnswered, example = json!({"friend_request_id": 81_726_354, "is_friend": false})),
        (status = 400, description = "`invalid`: a malformed body or `friend_request_id`", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`: the rules refuse it (for example, a block)", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: no such pending request sent to the caller", body = ErrorEnvelope),
        (status = 409, description = "`conflict` or `already_friends`: the request is no longer pending", body = ErrorEnvelope),
        BodyFaults,
        SessionFaults,
    )
)]
async fn ignore(state: web::Data<AppState>, me: Me, body: web::Json<RequestIdBody>) -> RestResult {
    answer(&state, me, &body, Command::Ignore).await
}

/// Withdraws a friend request the caller sent; the other side gets no push.
#[utoipa::path(
    post,
    operation_id = "friends_withdraw",
    path = "/friends/withdraw",
    tag = TAG,
    security(("bearer" = []), ("cookie" = [])),
    request_body(content = RequestIdBody, example = json!({"friend_request_id": 81_726_354})),
    responses(
        (status = 201, description = "done; `is_friend` tells the relationship afterwards",
         body = RequestAnswered, example = json!({"friend_request_id": 81_726_354, "is_friend": false})),
        (status = 400, description = "`invalid`: a malformed body or `friend_request_id`", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`: the rules refuse it (for example, a block)", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: no such pending request sent by the caller", body = ErrorEnvelope),
        (status = 409, description = "`conflict` or `already_friends`: the request is no longer pending", body = ErrorEnvelope),
        BodyFaults,
        SessionFaults,
    )
)]
async fn withdraw(
    state: web::Data<AppState>,
    me: Me,
    body: web::Json<RequestIdBody>,
) -> RestResult {
    answer(&state, me, &body, Command::Withdraw).await
}

/// Ends a friendship, on both sides.
#[utoipa::path(
    delete,
    operation_id = "friends_delete_friend",
    path = "/friends/{user_id}",
    tag = TAG,
    security(("bearer" = []), ("cookie" = [])),
    params(("user_id" = String, Path, description = "the other user's id", pattern = r"^[1-9][0-9]{0,15}$")),
    responses(
        (status = 204, description = "done"),
        (status = 400, description = "`invalid`: a bad `user_id`", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: no such user", body = ErrorEnvelope),
        (status = 409, description = "`conflict`: nothing to undo", body = ErrorEnvelope),
        SessionFaults,
    )
)]
async fn delete_friend(state: web::Data<AppState>, me: Me, path: web::Path<String>) -> RestResult {
    let other = rest::path_user_id("user_id", &path)?;
    run(&state, me.caller.user_id, other, Command::Delete, "user_id").await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Lists the friend requests the caller received and has not answered.
#[utoipa::path(
    get,
    operation_id = "friends_incoming",
    path = "/friends/request",
    tag = TAG,
    security(("bearer" = []), ("cookie" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "one page of friend requests received and pending; `Link: <...>; rel=\"next\"` when cut",
         body = Vec<IncomingRequest>),
        (status = 400, description = "`invalid`: a bad `limit` or `cursor`",
         body = ErrorEnvelope),

        SessionFaults,
    )
)]
async fn incoming(
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Me,
    query: web::Query<PageQuery>,
) -> RestResult {
    page(
        &state,
        &req,
        me.caller.user_id,
        SideFilter::Incoming,
        &query,
        |r, now| request_row(&REQUEST, "request_email", r, now),
    )
    .await
}

/// Lists the friend requests the caller sent that are still pending.
#[utoipa::path(
    get,
    operation_id = "friends_sent",
    path = "/friends/request_sent",
    tag = TAG,
    security(("bearer" = []), ("cookie" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "one page of friend requests sent and pending; `Link: <...>; rel=\"next\"` when cut",
         body = Vec<SentRequest>),
        (status = 400, description = "`invalid`: a bad `limit` or `cursor`",
         body = ErrorEnvelope),

        SessionFaults,
    )
)]
async fn sent(
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Me,
    query: web::Query<PageQuery>,
) -> RestResult {
    page(
        &state,
        &req,
        me.caller.user_id,
        SideFilter::Outgoing,
        &query,
        |r, now| request_row(&REQUESTED, "requested_email", r, now),
    )
    .await
}

/// Lists the caller's friends.
#[utoipa::path(
    get,
    operation_id = "friends_friends",
    path = "/friends",
    tag = TAG,
    security(("bearer" = []), ("cookie" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "one page of friends; `Link: <...>; rel=\"next\"` when cut",
         body = Vec<Friend>),
        (status = 400, description = "`invalid`: a bad `limit` or `cursor`",
         body = ErrorEnvelope),

        SessionFaults,
    )
)]
async fn friends(
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Me,
    query: web::Query<PageQuery>,
) -> RestResult {
    page(
        &state,
        &req,
        me.caller.user_id,
        SideFilter::Friends,
        &query,
        |r, now| person(&FRIEND, &r.user, now),
    )
    .await
}

/// `GET /friends/sync`: the count 001's request list refers to, `{"friend_request": N}`.
#[utoipa::path(
    get,
    operation_id = "friends_sync",
    path = "/friends/sync",
    tag = TAG,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "the number of pending friend requests the caller received",
         body = FriendRequestCount, example = json!({"friend_request": 2})),
        SessionFaults,
    )
)]
async fn sync(state: web::Data<AppState>, me: Me) -> RestResult {
    let n = state
        .relationships
        .pending_requests(me.caller.user_id)
        .await?;
    Ok(HttpResponse::Ok().json(json!({"friend_request": n})))
}

/// `POST /follows`'s body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct FollowBody {
    /// The user to follow.
    #[schema(minimum = 1, maximum = 9_007_199_254_740_991_i64)]
    followee_id: i64,
}

/// Follows a user.
#[utoipa::path(
    post,
    operation_id = "friends_follow",
    path = "/follows",
    tag = TAG,
    security(("bearer" = []), ("cookie" = [])),
    request_body(content = FollowBody, example = json!({"followee_id": 2_918_372_541_u64})),
    responses(
        (status = 201, description = "followed", body = Followed,
         example = json!({"followee_id": 2_918_372_541_u64})),
        (status = 400, description = "`invalid`: a malformed body or `followee_id` (also the caller's own id)", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`: a block between the two users refuses it", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: no such user", body = ErrorEnvelope),
        (status = 409, description = "`conflict`", body = ErrorEnvelope),
        BodyFaults,
        SessionFaults,
    )
)]
async fn follow(state: web::Data<AppState>, me: Me, body: web::Json<FollowBody>) -> RestResult {
    let other = rest::user_id("followee_id", body.followee_id)?;
    run(
        &state,
        me.caller.user_id,
        other,
        Command::Follow,
        "followee_id",
    )
    .await?;
    Ok(HttpResponse::Created().json(json!({"followee_id": other.get()})))
}

/// Stops following a user.
#[utoipa::path(
    delete,
    operation_id = "friends_unfollow",
    path = "/follows/{followee_id}",
    tag = TAG,
    security(("bearer" = []), ("cookie" = [])),
    params(("followee_id" = String, Path, description = "the other user's id", pattern = r"^[1-9][0-9]{0,15}$")),
    responses(
        (status = 204, description = "done"),
        (status = 400, description = "`invalid`: a bad `followee_id`", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: no such user", body = ErrorEnvelope),
        (status = 409, description = "`conflict`: nothing to undo", body = ErrorEnvelope),
        SessionFaults,
    )
)]
async fn unfollow(state: web::Data<AppState>, me: Me, path: web::Path<String>) -> RestResult {
    let other = rest::path_user_id("followee_id", &path)?;
    let cmd = Command::Unfollow;
    run(&state, me.caller.user_id, other, cmd, "followee_id").await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Lists the users who follow `user_id`.
#[utoipa::path(
    get,
    operation_id = "friends_followers",
    path = "/follows/{user_id}/follower",
    tag = TAG,
    security(("bearer" = []), ("cookie" = [])),
    params(("user_id" = String, Path, description = "whose list: a user id (the caller's own or another's)", pattern = r"^[1-9][0-9]{0,15}$"), PageQuery),
    responses(
        (status = 200, description = "one page of followers; `Link: <...>; rel=\"next\"` when cut",
         body = Vec<Follower>),
        (status = 400, description = "`invalid`: a bad `limit` or `cursor`, or a bad `user_id`",
         body = ErrorEnvelope),
        (status = 404, description = "`not_found`: no such user, or one who blocks the caller", body = ErrorEnvelope),
        SessionFaults,
    )
)]
async fn followers(
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Me,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> RestResult {
    let owner = visible_owner(&state, me.caller.user_id, &path).await?;
    page(
        &state,
        &req,
        owner,
        SideFilter::Followers,
        &query,
        |r, now| person(&FOLLOWER, &r.user, now),
    )
    .await
}

/// Lists the users `user_id` follows.
#[utoipa::path(
    get,
    operation_id = "friends_followees",
    path = "/follows/{user_id}/followee",
    tag = TAG,
    security(("bearer" = []), ("cookie" = [])),
    params(("user_id" = String, Path, description = "whose list: a user id (the caller's own or another's)", pattern = r"^[1-9][0-9]{0,15}$"), PageQuery),
    responses(
        (status = 200, description = "one page of users followed; `Link: <...>; rel=\"next\"` when cut",
         body = Vec<Followee>),
        (status = 400, description = "`invalid`: a bad `limit` or `cursor`, or a bad `user_id`",
         body = ErrorEnvelope),
        (status = 404, description = "`not_found`: no such user, or one who blocks the caller", body = ErrorEnvelope),
        SessionFaults,
    )
)]
async fn followees(
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Me,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> RestResult {
    let owner = visible_owner(&state, me.caller.user_id, &path).await?;
    page(
        &state,
        &req,
        owner,
        SideFilter::Following,
        &query,
        |r, now| person(&FOLLOWEE, &r.user, now),
    )
    .await
}

/// `POST /blocks`'s body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct BlockBody {
    /// The user to block.
    #[schema(minimum = 1, maximum = 9_007_199_254_740_991_i64)]
    user_id: i64,
}

/// Blocks a user: pending requests between the two go; a friendship stays (document 001).
#[utoipa::path(
    post,
    operation_id = "friends_block",
    path = "/blocks",
    tag = TAG,
    security(("bearer" = []), ("cookie" = [])),
    request_body(content = BlockBody, example = json!({"user_id": 2_918_372_541_u64})),
    responses(
        (status = 201, description = "blocked", body = Blocked,
         example = json!({"user_id": 2_918_372_541_u64})),
        (status = 400, description = "`invalid`: a malformed body or `user_id` (also the caller's own id)", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: no such user", body = ErrorEnvelope),
        (status = 409, description = "`conflict`", body = ErrorEnvelope),
        BodyFaults,
        SessionFaults,
    )
)]
async fn block(state: web::Data<AppState>, me: Me, body: web::Json<BlockBody>) -> RestResult {
    let other = rest::user_id("user_id", body.user_id)?;
    run(&state, me.caller.user_id, other, Command::Block, "user_id").await?;
    Ok(HttpResponse::Created().json(json!({"user_id": other.get()})))
}

/// Unblocks a user.
#[utoipa::path(
    delete,
    operation_id = "friends_unblock",
    path = "/blocks/{user_id}",
    tag = TAG,
    security(("bearer" = []), ("cookie" = [])),
    params(("user_id" = String, Path, description = "the other user's id", pattern = r"^[1-9][0-9]{0,15}$")),
    responses(
        (status = 204, description = "done"),
        (status = 400, description = "`invalid`: a bad `user_id`", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: no such user", body = ErrorEnvelope),
        (status = 409, description = "`conflict`: nothing to undo", body = ErrorEnvelope),
        SessionFaults,
    )
)]
async fn unblock(state: web::Data<AppState>, me: Me, path: web::Path<String>) -> RestResult {
    let other = rest::path_user_id("user_id", &path)?;
    run(
        &state,
        me.caller.user_id,
        other,
        Command::Unblock,
        "user_id",
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Lists the users the caller blocks (001 names no list; Kith adds it).
#[utoipa::path(
    get,
    operation_id = "friends_blocks",
    path = "/blocks",
    tag = TAG,
    security(("bearer" = []), ("cookie" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "one page of users the caller blocks; `Link: <...>; rel=\"next\"` when cut",
         body = Vec<BlockedUser>),
        (status = 400, description = "`invalid`: a bad `limit` or `cursor`",
         body = ErrorEnvelope),

        SessionFaults,
    )
)]
async fn blocks(
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Me,
    query: web::Query<PageQuery>,
) -> RestResult {
    page(
        &state,
        &req,
        me.caller.user_id,
        SideFilter::Blocking,
        &query,
        |r, now| person(&BLOCKED, &r.user, now),
    )
    .await
}

// The answer shapes below exist for the OpenAPI document only: the handlers build the same keys
// with `json!` (see `Keys`), so a change to one must be made to the other.

/// `POST /friends/request`'s answer.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
struct RequestCreated {
    /// The pending request's id; null when the two became friends at once.
    friend_request_id: Option<u64>,
    /// The user asked.
    requested_user_id: u64,
    /// Whether the two are friends now (they had asked the caller first).
    is_friend: bool,
}

/// The answer of accept, ignore and withdraw.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
struct RequestAnswered {
    /// The request answered.
    friend_request_id: u64,
    /// Whether the two are friends now.
    is_friend: bool,
}

/// `GET /friends/sync`'s answer.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
struct FriendRequestCount {
    /// Pending friend requests the caller received.
    friend_request: u64,
}

/// `POST /follows`'s answer.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
struct Followed {
    /// The user now followed.
    followee_id: u64,
}

/// `POST /blocks`'s answer.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
struct Blocked {
    /// The user now blocked.
    user_id: u64,
}

/// One row of `GET /friends/request`.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
struct IncomingRequest {
    /// The request's id.
    friend_request_id: u64,
    /// The user's id.
    request_user_id: u64,
    /// Their user name; null unless their `show_user_name` is on.
    request_user_name: Option<String>,
    /// Their nickname.
    request_user_nick_name: String,
    /// Their age in years; null unless their `show_age` is on.
    request_user_age: Option<u32>,
    /// Their gender; null unless their `show_gender` is on.
    request_user_gender: Option<String>,
    /// Their email, when they gave one.
    request_email: Option<String>,
    /// When the request was (re)sent, RFC 3339 UTC.
    #[schema(example = "2019-06-11T03:07:57.000Z")]
    created_at: String,
}

/// One row of `GET /friends/request_sent`.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
struct SentRequest {
    /// The request's id.
    friend_request_id: u64,
    /// The user's id.
    requested_user_id: u64,
    /// Their user name; null unless their `show_user_name` is on.
    requested_user_name: Option<String>,
    /// Their nickname.
    requested_user_nick_name: String,
    /// Their age in years; null unless their `show_age` is on.
    requested_user_age: Option<u32>,
    /// Their gender; null unless their `show_gender` is on.
    requested_user_gender: Option<String>,
    /// Their email, when they gave one.
    requested_email: Option<String>,
    /// When the request was (re)sent, RFC 3339 UTC.
    #[schema(example = "2019-06-11T03:07:57.000Z")]
    created_at: String,
}

/// One row of `GET /friends`.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
struct Friend {
    /// The user's id.
    friend_id: u64,
    /// Their user name; null unless their `show_user_name` is on.
    friend_user_name: Option<String>,
    /// Their nickname.
    friend_user_nick_name: String,
    /// Their age in years; null unless their `show_age` is on.
    friend_user_age: Option<u32>,
    /// Their gender; null unless their `show_gender` is on.
    friend_user_gender: Option<String>,
}

/// One row of `GET /follows/{user_id}/follower`.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
struct Follower {
    /// The user's id.
    follower_id: u64,
    /// Their user name; null unless their `show_user_name` is on.
    follower_user_name: Option<String>,
    /// Their nickname.
    follower_user_nick_name: String,
    /// Their age in years; null unless their `show_age` is on.
    follower_user_age: Option<u32>,
    /// Their gender; null unless their `show_gender` is on.
    follower_user_gender: Option<String>,
}

/// One row of `GET /follows/{user_id}/followee`.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
struct Followee {
    /// The user's id.
    followee_id: u64,
    /// Their user name; null unless their `show_user_name` is on.
    followee_user_name: Option<String>,
    /// Their nickname.
    followee_user_nick_name: String,
    /// Their age in years; null unless their `show_age` is on.
    followee_user_age: Option<u32>,
    /// Their gender; null unless their `show_gender` is on.
    followee_user_gender: Option<String>,
}

/// One row of `GET /blocks`.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
struct BlockedUser {
    /// The user's id.
    blocked_user_id: u64,
    /// Their user name; null unless their `show_user_name` is on.
    blocked_user_name: Option<String>,
    /// Their nickname.
    blocked_user_nick_name: String,
    /// Their age in years; null unless their `show_age` is on.
    blocked_user_age: Option<u32>,
    /// Their gender; null unless their `show_gender` is on.
    blocked_user_gender: Option<String>,
}
