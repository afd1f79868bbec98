//! The relationship workloads (issue 3): who the hubs of `friends` are, which pairs
//! `invite-accept` uses, the requests and checks of both, and `kith-bench prepare`, which makes
//! the hubs' friendships through the API.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use hyper::body::Bytes;
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::http::{Conn, Req, Target};
use crate::users::{self, User};
use crate::BoxError;

/// The first `HUBS` seeded users are the hubs of `friends`.
pub const HUBS: usize = 4;
/// Friends each hub gets from `prepare`; `friends` checks that every list has exactly this many.
pub const FRIENDS_PER_HUB: usize = 50;
/// The SealTalk status of an accepted friendship.
const STATUS_FRIENDS: i64 = 20;

/// The users `friends` needs: the hubs plus one distinct friend per slot.
pub fn users_needed_for_friends() -> usize {
    HUBS + FRIENDS_PER_HUB
}

/// The indices (into the users file) of hub `h`'s friends: consecutive non-hubs, the hubs'
/// ranges wrapping round the non-hubs, so with 200 users the four ranges barely overlap.
pub fn hub_friends(users: usize, h: usize) -> Vec<usize> {
    let pool = users.saturating_sub(HUBS);
    if pool == 0 {
        return Vec::new();
    }
    (0..FRIENDS_PER_HUB.min(pool))
        .map(|k| HUBS + (h * FRIENDS_PER_HUB + k) % pool)
        .collect()
}

/// Every unordered pair of non-hub users, each once, as (inviter, invitee) indices into the
/// users file, ordered so that pairs taken at the same moment by different connections share
/// no user, as invites between strangers seldom do. Pairs go by distance (`(i, i+d)` for
/// every `i`, then the next `d`), and within one distance the lower users of the even blocks
/// of `d` come first, then those of the odd blocks: each half is a run of pairs with no user
/// twice (a lower user lies in a block of one parity, every upper user in a block of the
/// other). No pair involves a hub, so the hubs' friendships from `prepare` are never touched.
///
/// (Until 2026-12-05 the pairs of one distance went in plain order, `(i, i+1)` then
/// `(i+1, i+2)`: every pair shared a user with its neighbours, so concurrent transitions
/// queued on each other's users rows; docs/benchmarks.md, "Pairs that share no user".)
pub fn fresh_pairs(users: usize) -> Vec<(usize, usize)> {
    let pool = users.saturating_sub(HUBS);
    let mut pairs = Vec::with_capacity(pool * pool.saturating_sub(1) / 2);
    for d in 1..pool {
        for parity in [0, 1] {
            for i in (0..pool - d).filter(|i| (i / d) % 2 == parity) {
                pairs.push((HUBS + i, HUBS + i + d));
            }
        }
    }
    pairs
}

/// `GET /friendship/all` as hub `n % HUBS`.
pub fn friends_request(users: &[User], n: usize) -> Req {
    let hub = &users[n % HUBS.min(users.len()).max(1)];
    let mut req = Req::get("/friendship/all");
    req.bearer = Some(hub.token.clone());
    req
}

/// `POST /friendship/invite` from `from` to `to`.
pub fn invite_request(from: &User, to: &User) -> Req {
    let mut req = Req::post_json("/friendship/invite", &json!({"friendId": to.id}));
    req.bearer = Some(from.token.clone());
    req
}

/// `POST /friendship/agree` by `by` of the request from `from`.
pub fn agree_request(by: &User, from: &User) -> Req {
    let mut req = Req::post_json("/friendship/agree", &json!({"friendId": from.id}));
    req.bearer = Some(by.token.clone());
    req
}

/// A SealTalk envelope with its result.
#[derive(Deserialize)]
struct Envelope {
    code: i64,
    #[serde(default)]
    result: Value,
}

/// The `result` of a 200 answer with SealTalk code 200, else a short failure kind.
fn result_of(status: StatusCode, body: &Bytes) -> Result<Value, String> {
    if !status.is_success() {
        return Err(format!("http {}", status.as_u16()));
    }
    match serde_json::from_slice::<Envelope>(body) {
        Ok(Envelope { code: 200, result }) => Ok(result),
        Ok(Envelope { code, .. }) => Err(format!("sealtalk code {code}")),
        Err(_) => Err("body is not a SealTalk envelope".to_owned()),
    }
}

/// A friends-list answer as the judge reads it: each row's `status`, every other field skipped
/// without building a value for it. A `serde_json::Value` of all 50 rows cost the load
/// generator ~90 µs a response, most of a CPU at 9,000 responses/s on the 2 CPUs it shares
/// with the server and the database.
#[derive(Deserialize)]
struct FriendsAnswer {
    code: i64,
    #[serde(default)]
    result: Option<Vec<FriendRow>>,
}

#[derive(Deserialize)]
struct FriendRow {
    status: Option<i64>,
}

/// A friends list must hold exactly `FRIENDS_PER_HUB` accepted friendships.
pub fn judge_friends(status: StatusCode, body: &Bytes) -> Result<(), String> {
    if !status.is_success() {
        return Err(format!("http {}", status.as_u16()));
    }
    let rows = match serde_json::from_slice::<FriendsAnswer>(body) {
        Ok(FriendsAnswer {
            code: 200,
            result: Some(rows),
        }) => rows,
        Ok(FriendsAnswer { code: 200, .. }) => return Err("result is not a list".to_owned()),
        Ok(FriendsAnswer { code, .. }) => return Err(format!("sealtalk code {code}")),
        Err(_) => return Err("body is not a SealTalk friends list".to_owned()),
    };
    if rows.len() != FRIENDS_PER_HUB {
        return Err(format!("{} rows, not {FRIENDS_PER_HUB}", rows.len()));
    }
    if rows.iter().any(|r| r.status != Some(STATUS_FRIENDS)) {
        return Err(format!("a row whose status is not {STATUS_FRIENDS}"));
    }
    Ok(())
}

/// An invite to a user never invited before must answer `action: "Sent"`.
pub fn judge_invite(status: StatusCode, body: &Bytes) -> Result<(), String> {
    let result = result_of(status, body)?;
    match result.get("action").and_then(Value::as_str) {
        Some("Sent") => Ok(()),
        Some(other) => Err(format!("invite action {other}")),
        None => Err("invite without result.action".to_owned()),
    }
}

/// An agree must answer code 200.
pub fn judge_agree(status: StatusCode, body: &Bytes) -> Result<(), String> {
    result_of(status, body).map(drop)
}

/// Arguments of `kith-bench prepare`.
#[derive(Debug, Args)]
pub struct PrepareArgs {
    /// The server, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    url: String,
    /// The users file written by `kith-bench seed`.
    #[arg(long)]
    tokens: PathBuf,
}

async fn send(conn: &mut Conn, req: &Req) -> Result<(StatusCode, Bytes), BoxError> {
    conn.send(req)
        .await
        .map_err(|e| format!("{}: {e}", req.path).into())
}

/// Makes hub `h` friends with its `FRIENDS_PER_HUB` users, unless it already has them.
async fn prepare_hub(target: Arc<Target>, users: Arc<Vec<User>>, h: usize) -> Result<(), BoxError> {
    let mut conn = Conn::new(target);
    let hub = &users[h];
    let (status, body) = send(&mut conn, &friends_request(&users, h)).await?;
    if judge_friends(status, &body).is_ok() {
        return Ok(());
    }
    for f in hub_friends(users.len(), h) {
        let friend = &users[f];
        let (status, body) = send(&mut conn, &invite_request(hub, friend)).await?;
        judge_invite(status, &body).map_err(|e| {
            format!(
                "hub {h} invite {f}: {e}: {}; prepare needs freshly seeded users",
                String::from_utf8_lossy(&body)
            )
        })?;
        let (status, body) = send(&mut conn, &agree_request(friend, hub)).await?;
        judge_agree(status, &body).map_err(|e| {
            format!(
                "user {f} agree hub {h}: {e}: {}",
                String::from_utf8_lossy(&body)
            )
        })?;
    }
    let (status, body) = send(&mut conn, &friends_request(&users, h)).await?;
    judge_friends(status, &body).map_err(|e| format!("hub {h} after prepare: {e}").into())
}

/// `kith-bench prepare`: gives the `HUBS` hubs `FRIENDS_PER_HUB` friends each, one hub per task.
pub async fn prepare(args: PrepareArgs) -> Result<(), BoxError> {
    let users = users::load(&args.tokens)?;
    if users.len() < users_needed_for_friends() {
        return Err(format!(
            "prepare needs at least {} seeded users, the file has {}",
            users_needed_for_friends(),
            users.len()
        )
        .into());
    }
    let users = Arc::new(users);
    let target = Arc::new(Target::parse(&args.url)?);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for h in 0..HUBS {
        tasks.push(tokio::spawn(prepare_hub(target.clone(), users.clone(), h)));
    }
    for task in tasks {
        task.await??;
    }
    println!(
        "prepared {HUBS} hubs with {FRIENDS_PER_HUB} friends each in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn hubs_get_distinct_non_hub_friends() {
        for h in 0..HUBS {
            let friends = hub_friends(200, h);
            assert_eq!(friends.len(), FRIENDS_PER_HUB);
            assert!(friends.iter().all(|&f| (HUBS..200).contains(&f)));
            assert_eq!(
                friends.iter().collect::<HashSet<_>>().len(),
                FRIENDS_PER_HUB
            );
        }
    }

    #[test]
    fn pairs_are_distinct_and_avoid_hubs() {
        let pairs = fresh_pairs(200);
        assert_eq!(pairs.len(), 196 * 195 / 2);
        let mut seen = HashSet::new();
        for &(i, j) in &pairs {
            assert!(i >= HUBS && j >= HUBS && i != j && j < 200);
            assert!(seen.insert((i.min(j), i.max(j))));
        }
        assert_eq!(&pairs[..2], &[(4, 5), (6, 7)]);
    }

    #[test]
    fn pairs_taken_together_share_no_user() {
        let pairs = fresh_pairs(500);
        // 64 pairs in a row (the connections of one run) name 128 distinct users, but for the
        // windows that straddle the end of a half-run of one distance (in plain order, every
        // window would share users).
        let windows = pairs.windows(64);
        let total = windows.len();
        let straddling = windows
            .filter(|w| {
                w.iter()
                    .flat_map(|&(i, j)| [i, j])
                    .collect::<HashSet<_>>()
                    .len()
                    < 128
            })
            .count();
        assert!(
            straddling * 10 < total,
            "{straddling} of {total} windows share a user"
        );
        // Within the first half-run of each distance, no user comes twice.
        for d in [1, 7, 64, 200] {
            let run: Vec<_> = pairs.iter().filter(|&&(i, j)| j - i == d).collect();
            let half = run
                .iter()
                .take_while(|&&&(i, _)| ((i - HUBS) / d).is_multiple_of(2));
            let mut seen = HashSet::new();
            for &&(i, j) in half {
                assert!(
                    seen.insert(i) && seen.insert(j),
                    "distance {d}: user {i} or {j} again"
                );
            }
        }
    }

    #[test]
    fn judges_check_rows_and_action() {
        let row = json!({"status": 20});
        let fifty = json!({"code": 200, "result": vec![row; FRIENDS_PER_HUB]}).to_string();
        assert_eq!(judge_friends(StatusCode::OK, &Bytes::from(fifty)), Ok(()));
        let short = Bytes::from_static(br#"{"code":200,"result":[{"status":20}]}"#);
        assert_eq!(
            judge_friends(StatusCode::OK, &short),
            Err("1 rows, not 50".into())
        );
        let pending = json!({"code": 200, "result": vec![json!({"status": 10}); FRIENDS_PER_HUB]});
        assert_eq!(
            judge_friends(StatusCode::OK, &Bytes::from(pending.to_string())),
            Err("a row whose status is not 20".into())
        );
        for (body, err) in [
            (r#"{"code":1000}"#, "sealtalk code 1000"),
            (r#"{"code":200}"#, "result is not a list"),
            (
                r#"{"code":200,"result":{"a":1}}"#,
                "body is not a SealTalk friends list",
            ),
        ] {
            assert_eq!(
                judge_friends(StatusCode::OK, &Bytes::from(body)),
                Err(err.into()),
                "{body}"
            );
        }
        let sent = Bytes::from_static(br#"{"code":200,"result":{"action":"Sent"}}"#);
        let none = Bytes::from_static(br#"{"code":200,"result":{"action":"None"}}"#);
        assert_eq!(judge_invite(StatusCode::OK, &sent), Ok(()));
        assert_eq!(
            judge_invite(StatusCode::OK, &none),
            Err("invite action None".into())
        );
        assert!(judge_agree(StatusCode::OK, &Bytes::from_static(br#"{"code":1000}"#)).is_err());
    }
}
