//! The workloads of issue 6 on follows and sync: `followers` (a 001 page of the top
//! celebrity's followers), `follow-unfollow` (001 follow then unfollow of distinct pairs) and
//! `sync` (`/user/sync/{version}` over a few changes made in `run`'s setup).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hyper::body::Bytes;
use hyper::StatusCode;
use serde_json::{json, Value};

use crate::http::{Conn, Req, Target};
use crate::relationships::HUBS;
use crate::users::User;
use crate::BoxError;

/// The users-file index of the top celebrity (the bulk seed puts the celebrities right after
/// the hubs, the first with the most followers).
pub const CELEBRITY: usize = HUBS;
/// Rows per followers page; the top celebrity has many more followers than this.
pub const FOLLOWERS_PAGE: usize = 50;
/// The users `sync` reads as (the first ones of the users file), each set up with changes.
pub const SYNC_USERS: usize = 256;
/// Nickname changes each sync user makes in the setup (non-hubs also follow and unfollow).
const SYNC_RENAMES: usize = 3;
/// Setup tasks in flight.
const SETUP_TASKS: usize = 8;

/// `GET /follows/{celebrity}/follower?limit=50` as user `n`.
pub fn followers_request(users: &[User], n: usize) -> Req {
    let celebrity = &users[CELEBRITY.min(users.len() - 1)];
    let caller = &users[n % users.len()];
    let mut req = Req::get(format!(
        "/follows/{}/follower?limit={FOLLOWERS_PAGE}",
        celebrity.id
    ));
    req.bearer = Some(caller.token.clone());
    req
}

/// A followers page must be a full page of rows, each naming its follower.
pub fn judge_followers(status: StatusCode, body: &Bytes) -> Result<(), String> {
    if status != StatusCode::OK {
        return Err(format!("http {}", status.as_u16()));
    }
    let rows: Value = serde_json::from_slice(body).map_err(|_| "body is not JSON".to_owned())?;
    let rows = rows.as_array().ok_or("followers is not a list")?;
    if rows.len() != FOLLOWERS_PAGE {
        return Err(format!(
            "{} followers, not {FOLLOWERS_PAGE}: is the data set bulk-seeded?",
            rows.len()
        ));
    }
    if rows
        .iter()
        .any(|r| r.get("follower_id").and_then(Value::as_u64).is_none())
    {
        return Err("a follower row without follower_id".to_owned());
    }
    Ok(())
}

/// The follow-unfollow pair for ticket `k` from a counter shared by all connections, as
/// (follower, followee) users-file indices. Hubs are left out so that their friend lists stay
/// exactly their friends. Tickets taken at the same moment have distinct followers.
pub fn follow_pair(users: usize, k: usize) -> (usize, usize) {
    let pool = users.saturating_sub(HUBS).max(2);
    let a = k % pool;
    let b = (a + 1 + (k / pool) % (pool - 1)) % pool;
    (HUBS + a, HUBS + b)
}

/// `POST /follows` from `from` to `to`.
pub fn follow_request(from: &User, to: &User) -> Req {
    let id: i64 = to.id.parse().unwrap_or(0);
    let mut req = Req::post_json("/follows", &json!({ "followee_id": id }));
    req.bearer = Some(from.token.clone());
    req
}

/// `DELETE /follows/{to}` by `from`.
pub fn unfollow_request(from: &User, to: &User) -> Req {
    let mut req = Req::delete(format!("/follows/{}", to.id));
    req.bearer = Some(from.token.clone());
    req
}

/// A follow answers 201 with the followee's id; an unfollow 204.
pub fn judge_follow(status: StatusCode, body: &Bytes) -> Result<(), String> {
    match status {
        StatusCode::CREATED => {
            let v: Value =
                serde_json::from_slice(body).map_err(|_| "follow body is not JSON".to_owned())?;
            match v.get("followee_id").and_then(Value::as_u64) {
                Some(_) => Ok(()),
                None => Err("follow answer without followee_id".to_owned()),
            }
        }
        StatusCode::NO_CONTENT => Ok(()),
        other => Err(format!("http {}", other.as_u16())),
    }
}

/// `GET /user/sync/{since}` as user `n % since.len()`.
pub fn sync_request(users: &[User], since: &[u64], n: usize) -> Req {
    let i = n % since.len().clamp(1, users.len());
    let mut req = Req::get(format!(
        "/user/sync/{}",
        since.get(i).copied().unwrap_or_default()
    ));
    req.bearer = Some(users[i].token.clone());
    req
}

/// A sync answer must be code 200 with a version, the caller's changed profile and the lists.
pub fn judge_sync(status: StatusCode, body: &Bytes) -> Result<(), String> {
    if !status.is_success() {
        return Err(format!("http {}", status.as_u16()));
    }
    let v: Value = serde_json::from_slice(body).map_err(|_| "body is not JSON".to_owned())?;
    match v.get("code").and_then(Value::as_i64) {
        Some(200) => {}
        Some(code) => return Err(format!("sealtalk code {code}")),
        None => return Err("body is not a SealTalk envelope".to_owned()),
    }
    let result = &v["result"];
    if result.get("version").and_then(Value::as_u64).is_none() {
        return Err("sync without result.version".to_owned());
    }
    if !result.get("user").is_some_and(Value::is_object) {
        return Err("sync without the changed profile (result.user)".to_owned());
    }
    if !result.get("friends").is_some_and(Value::is_array) {
        return Err("sync without result.friends".to_owned());
    }
    Ok(())
}

/// Sends `req` and returns the SealTalk `result`, or an error naming the step.
async fn sealtalk(conn: &mut Conn, req: &Req) -> Result<Value, BoxError> {
    let (status, body) = conn.send(req).await?;
    let v: Value =
        serde_json::from_slice(&body).map_err(|e| format!("{}: http {status}: {e}", req.path))?;
    if !status.is_success() || v.get("code").and_then(Value::as_i64) != Some(200) {
        return Err(format!("{}: http {status}: {v}", req.path).into());
    }
    Ok(v.get("result").cloned().unwrap_or(Value::Null))
}

/// One sync user's setup: its current version, then a few changes after it.
async fn prepare_sync_user(
    conn: &mut Conn,
    users: &[User],
    i: usize,
    round: u64,
) -> Result<u64, BoxError> {
    let me = &users[i];
    let mut req = Req::get("/user/sync/0");
    req.bearer = Some(me.token.clone());
    let version = sealtalk(conn, &req)
        .await?
        .get("version")
        .and_then(Value::as_u64)
        .ok_or("sync/0 without version")?;
    for k in 0..SYNC_RENAMES {
        let mut req = Req::post_json(
            "/user/set_nickname",
            &json!({ "nickname": format!("sync {i} {round}-{k}") }),
        );
        req.bearer = Some(me.token.clone());
        sealtalk(conn, &req).await?;
    }
    if i >= HUBS && users.len() > HUBS + 1 {
        let (_, other) = follow_pair(users.len(), i - HUBS);
        for req in [
            follow_request(me, &users[other]),
            unfollow_request(me, &users[other]),
        ] {
            let (status, body) = conn.send(&req).await?;
            judge_follow(status, &body).map_err(|e| format!("sync setup {}: {e}", req.path))?;
        }
    }
    Ok(version)
}

/// `sync`'s setup: the first `SYNC_USERS` users each make a few changes; returns, per user, the
/// version before them, which the scenario then syncs from.
pub async fn prepare_sync(
    target: Arc<Target>,
    users: Arc<Vec<User>>,
) -> Result<Vec<u64>, BoxError> {
    let count = SYNC_USERS.min(users.len());
    let next = Arc::new(AtomicUsize::new(0));
    // Distinct nicknames per run, so each rename really is a change.
    let round = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut tasks = Vec::new();
    for _ in 0..SETUP_TASKS.min(count.max(1)) {
        let (target, users, next) = (target.clone(), users.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(target);
            let mut got = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let v = prepare_sync_user(&mut conn, &users, i, round)
                    .await
                    .map_err(|e| format!("sync setup of user {i}: {e}"))?;
                got.push((i, v));
            }
            Ok::<_, BoxError>(got)
        }));
    }
    let mut since = vec![0; count];
    for task in tasks {
        for (i, v) in task.await?? {
            since[i] = v;
        }
    }
    Ok(since)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::collections::HashSet;

    use super::*;

    fn users(n: usize) -> Vec<User> {
        (0..n)
            .map(|i| User {
                id: format!("{}", 1000 + i),
                token: format!("t{i}"),
                phone: format!("1390000{i:04}"),
                password: "pw-pw-pw".into(),
            })
            .collect()
    }

    #[test]
    fn follow_pairs_avoid_hubs_and_self_and_differ_at_once() {
        let mut followers = HashSet::new();
        for k in 0..64 {
            let (a, b) = follow_pair(1000, k);
            assert!(a >= HUBS && b >= HUBS && a != b && a < 1000 && b < 1000);
            assert!(followers.insert(a), "ticket {k}: follower {a} twice");
        }
        for k in 0..100_000 {
            let (a, b) = follow_pair(10, k);
            assert!(a >= HUBS && b >= HUBS && a != b && b < 10);
        }
    }

    #[test]
    fn requests_name_the_celebrity_the_followee_and_the_version() {
        let users = users(10);
        let req = followers_request(&users, 7);
        assert_eq!(req.path, "/follows/1004/follower?limit=50");
        assert_eq!(req.bearer.as_deref(), Some("t7"));
        let follow = follow_request(&users[5], &users[6]);
        let body: Value = serde_json::from_slice(follow.json.as_deref().unwrap()).unwrap();
        assert_eq!(body, json!({"followee_id": 1006}));
        let unfollow = unfollow_request(&users[5], &users[6]);
        assert_eq!(unfollow.method, hyper::Method::DELETE);
        assert_eq!(unfollow.path, "/follows/1006");
        let sync = sync_request(&users, &[3, 9], 3);
        assert_eq!(sync.path, "/user/sync/9");
        assert_eq!(sync.bearer.as_deref(), Some("t1"));
    }

    #[test]
    fn judges_check_shapes() {
        let row = json!({"follower_id": 12});
        let page = Bytes::from(json!(vec![row; FOLLOWERS_PAGE]).to_string());
        assert_eq!(judge_followers(StatusCode::OK, &page), Ok(()));
        let short = Bytes::from(json!([{"follower_id": 1}]).to_string());
        assert!(judge_followers(StatusCode::OK, &short).is_err());
        let created = Bytes::from_static(br#"{"followee_id":5}"#);
        assert_eq!(judge_follow(StatusCode::CREATED, &created), Ok(()));
        assert_eq!(judge_follow(StatusCode::NO_CONTENT, &Bytes::new()), Ok(()));
        assert!(judge_follow(StatusCode::CONFLICT, &Bytes::new()).is_err());
        let synced = Bytes::from_static(
            br#"{"code":200,"result":{"version":9,"user":{"id":"1"},"friends":[]}}"#,
        );
        assert_eq!(judge_sync(StatusCode::OK, &synced), Ok(()));
        let no_user = Bytes::from_static(br#"{"code":200,"result":{"version":9,"friends":[]}}"#);
        assert!(judge_sync(StatusCode::OK, &no_user).is_err());
    }
}
