//! The friends / follows / blocks API (document 001): numeric ids, 201 / 204, bare JSON arrays.

use actix_web::{web, HttpRequest, HttpResponse};
use kith_domain::ids::{Millis, RequestId, UserId};
use kith_domain::ports::{Related, SideFilter, UserProfile};
use kith_domain::relationship::{Command, InviteOutcome, Outcome, Transition};
use kith_domain::DomainError;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::common::{iso8601, Authed};
use crate::rest::{self, PageQuery, Rest, RestResult};
use crate::AppState;

type Me = Authed<Rest>;

/// Mounts `/friends`, `/follows` and `/blocks`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/friends")
            .app_data(rest::json_config())
            .app_data(rest::path_config())
            .app_data(rest::query_config())
            .route("", web::get().to(friends))
            .route("/request", web::post().to(request))
            .route("/request", web::get().to(incoming))
            .route("/request_sent", web::get().to(sent))
            .route("/accept", web::post().to(accept))
            .route("/ignore", web::post().to(ignore))
            .route("/withdraw", web::post().to(withdraw))
            .route("/sync", web::get().to(sync))
            .route("/{user_id}", web::delete().to(delete_friend))
            .default_service(web::to(rest::no_route)),
    )
    .service(
        web::scope("/follows")
            .app_data(rest::json_config())
            .app_data(rest::path_config())
            .app_data(rest::query_config())
            .route("", web::post().to(follow))
            .route("/{user_id}/follower", web::get().to(followers))
            .route("/{user_id}/followee", web::get().to(followees))
            .route("/{followee_id}", web::delete().to(unfollow))
            .default_service(web::to(rest::no_route)),
    )
    .service(
        web::scope("/blocks")
            .app_data(rest::json_config())
            .app_data(rest::path_config())
            .app_data(rest::query_config())
            .route("", web::post().to(block))
            .route("", web::get().to(blocks))
            .route("/{user_id}", web::delete().to(unblock))
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

#[derive(Debug, Deserialize)]
struct RequestBody {
    requested_user_id: i64,
    #[serde(default)]
    resend: bool,
}

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

#[derive(Debug, Deserialize)]
struct RequestIdBody {
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

async fn accept(state: web::Data<AppState>, me: Me, body: web::Json<RequestIdBody>) -> RestResult {
    answer(&state, me, &body, Command::Accept).await
}

async fn ignore(state: web::Data<AppState>, me: Me, body: web::Json<RequestIdBody>) -> RestResult {
    answer(&state, me, &body, Command::Ignore).await
}

async fn withdraw(
    state: web::Data<AppState>,
    me: Me,
    body: web::Json<RequestIdBody>,
) -> RestResult {
    answer(&state, me, &body, Command::Withdraw).await
}

async fn delete_friend(state: web::Data<AppState>, me: Me, path: web::Path<String>) -> RestResult {
    let other = rest::path_user_id("user_id", &path)?;
    run(&state, me.caller.user_id, other, Command::Delete, "user_id").await?;
    Ok(HttpResponse::NoContent().finish())
}

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
async fn sync(state: web::Data<AppState>, me: Me) -> RestResult {
    let n = state
        .relationships
        .pending_requests(me.caller.user_id)
        .await?;
    Ok(HttpResponse::Ok().json(json!({"friend_request": n})))
}

#[derive(Debug, Deserialize)]
struct FollowBody {
    followee_id: i64,
}

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

async fn unfollow(state: web::Data<AppState>, me: Me, path: web::Path<String>) -> RestResult {
    let other = rest::path_user_id("followee_id", &path)?;
    let cmd = Command::Unfollow;
    run(&state, me.caller.user_id, other, cmd, "followee_id").await?;
    Ok(HttpResponse::NoContent().finish())
}

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

#[derive(Debug, Deserialize)]
struct BlockBody {
    user_id: i64,
}

async fn block(state: web::Data<AppState>, me: Me, body: web::Json<BlockBody>) -> RestResult {
    let other = rest::user_id("user_id", body.user_id)?;
    run(&state, me.caller.user_id, other, Command::Block, "user_id").await?;
    Ok(HttpResponse::Created().json(json!({"user_id": other.get()})))
}

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
