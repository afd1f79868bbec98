//! The request mixes `run` can drive, and what each counts as a failure.

use clap::ValueEnum;
use hyper::body::Bytes;
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::json;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::addressbook;
use crate::http::Req;
use crate::relationships;
use crate::social;
use crate::users::User;

/// A named workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// `GET /user/{id}` with a Bearer token: a session lookup plus one profile read.
    Profile,
    /// `POST /user/login` with seeded credentials: dominated by the bcrypt verification.
    Login,
    /// `GET /health`: the HTTP stack and one pooled database round trip.
    Health,
    /// `GET /friendship/all` as one of the hubs, each with 50 friends (run `prepare` first).
    Friends,
    /// A never-used pair of users: `POST /friendship/invite` as one, `/friendship/agree` as
    /// the other; each request counts as one.
    InviteAccept,
    /// `GET /api/v2/contacts?keyword=` as the first user, over a 100,000-contact book (run
    /// `prepare-book` first): selective name, digit and email keywords in turn.
    AddressbookSearch,
    /// `GET /raw` on `kith-bench ceiling`: the HTTP stack alone, Kith's ceiling.
    Raw,
    /// `GET /follows/{id}/follower?limit=50` of the top celebrity (needs a bulk-seeded users
    /// file, whose user 4 is that celebrity).
    Followers,
    /// 001 `POST /follows` then `DELETE /follows/{id}` of distinct pairs (hubs left out); each
    /// request counts as one.
    FollowUnfollow,
    /// `GET /user/sync/{version}` from the version before a few changes the setup makes.
    Sync,
    /// 90% reads (profile, friends, sync in turn), 10% writes (follow-unfollow and
    /// invite-accept in turn); every request counts as one.
    Mixed,
    /// Not a workload: the invite half of a pair, judged on its `action`.
    #[value(skip)]
    Invite,
}

/// What the requests of a run are built from: the users file, and what the setup prepared.
#[derive(Debug, Default)]
pub struct Fixture {
    /// The seeded users.
    pub users: Vec<User>,
    /// `sync`: per user (the first ones), the version to sync from.
    pub since: Vec<u64>,
    /// `invite-accept` pairs for `mixed`'s invites, taken through `next_pair`.
    pub pairs: Vec<(usize, usize)>,
    /// The next unused entry of `pairs`.
    pub next_pair: AtomicUsize,
    /// Tickets of `follow-unfollow` pairs.
    pub next_follow: AtomicUsize,
}

#[cfg(test)]
impl Fixture {
    /// A fixture of users alone.
    pub fn of(users: Vec<User>) -> Self {
        Self {
            users,
            ..Self::default()
        }
    }
}

/// The part of a SealTalk envelope the harness judges.
#[derive(Deserialize)]
struct Envelope {
    code: i64,
}

impl Scenario {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Profile => "profile",
            Self::Login => "login",
            Self::Health => "health",
            Self::Friends => "friends",
            Self::InviteAccept => "invite-accept",
            Self::AddressbookSearch => "addressbook-search",
            Self::Raw => "raw",
            Self::Followers => "followers",
            Self::FollowUnfollow => "follow-unfollow",
            Self::Sync => "sync",
            Self::Mixed => "mixed",
            Self::Invite => "invite",
        }
    }

    /// Whether the scenario needs a seeded users file.
    pub fn needs_users(self) -> bool {
        !matches!(self, Self::Health | Self::Raw)
    }

    /// Whether `run` must prepare sync versions first.
    pub fn needs_sync_setup(self) -> bool {
        matches!(self, Self::Sync | Self::Mixed)
    }

    /// The requests of step `n`, each with the scenario whose `judge` applies: one request,
    /// or two for a follow-unfollow or an invite-accept pair. `n` walks the users so that load
    /// spreads over all of them. A `mixed` invite whose pairs ran out becomes a profile read.
    pub fn steps(self, fx: &Fixture, n: usize) -> Vec<(Req, Scenario)> {
        let users = &fx.users;
        match self {
            Self::FollowUnfollow if users.len() > relationships::HUBS + 1 => {
                let k = fx.next_follow.fetch_add(1, Ordering::Relaxed);
                let (a, b) = social::follow_pair(users.len(), k);
                vec![
                    (social::follow_request(&users[a], &users[b]), self),
                    (social::unfollow_request(&users[a], &users[b]), self),
                ]
            }
            Self::Mixed => {
                let pick = match n % 10 {
                    9 if (n / 10).is_multiple_of(2) => Self::FollowUnfollow,
                    9 => match fx.pairs.get(fx.next_pair.fetch_add(1, Ordering::Relaxed)) {
                        Some(&(i, j)) if i.max(j) < users.len() => {
                            let (from, to) = (&users[i], &users[j]);
                            return vec![
                                (relationships::invite_request(from, to), Self::Invite),
                                (relationships::agree_request(to, from), Self::InviteAccept),
                            ];
                        }
                        _ => Self::Profile,
                    },
                    r => [Self::Profile, Self::Friends, Self::Sync][r % 3],
                };
                pick.steps(fx, n / 10 * 9 + n % 10)
            }
            other => vec![(other.request(fx, n), other)],
        }
    }

    /// The `n`th request of a one-request scenario.
    pub fn request(self, fx: &Fixture, n: usize) -> Req {
        let users = &fx.users;
        match (self, users.len()) {
            // invite-accept is a pair of requests, driven by `run` itself, never from here.
            (Self::Raw, _) => Req::get("/raw"),
            (
                Self::Health
                | Self::InviteAccept
                | Self::Invite
                | Self::FollowUnfollow
                | Self::Mixed,
                _,
            )
            | (_, 0) => Req::get("/health"),
            (Self::Followers, _) => social::followers_request(users, n),
            (Self::Sync, _) => social::sync_request(users, &fx.since, n),
            (Self::Friends, _) => relationships::friends_request(users, n),
            (Self::AddressbookSearch, _) => addressbook::search_request(users, n),
            (Self::Profile, len) => {
                let caller = &users[n % len];
                // A different user's profile than the caller's own, so reads are not all
                // self-lookups; 7919 is prime, which keeps the pairing spread for any len.
                let target = &users[(n.wrapping_mul(7919).wrapping_add(1)) % len];
                let mut req = Req::get(format!("/user/{}", target.id));
                req.bearer = Some(caller.token.clone());
                req
            }
            (Self::Login, len) => {
                let user = &users[n % len];
                Req::post_json(
                    "/user/login",
                    &json!({"region": 86, "phone": user.phone, "password": user.password}),
                )
            }
        }
    }

    /// `Ok` for an expected answer, else a short failure kind for the report.
    pub fn judge(self, status: StatusCode, body: &Bytes) -> Result<(), String> {
        if !status.is_success() {
            return Err(format!("http {}", status.as_u16()));
        }
        match self {
            Self::Health | Self::Raw => Ok(()),
            Self::Friends => relationships::judge_friends(status, body),
            Self::InviteAccept => relationships::judge_agree(status, body),
            Self::Invite => relationships::judge_invite(status, body),
            Self::Followers => social::judge_followers(status, body),
            Self::FollowUnfollow => social::judge_follow(status, body),
            Self::Sync => social::judge_sync(status, body),
            // Never judged itself: its steps are judged by the scenario each one names.
            Self::Mixed => Err("mixed is judged per step".to_owned()),
            Self::AddressbookSearch => addressbook::judge_search(status, body),
            Self::Profile | Self::Login => match serde_json::from_slice::<Envelope>(body) {
                Ok(Envelope { code: 200 }) => Ok(()),
                Ok(Envelope { code }) => Err(format!("sealtalk code {code}")),
                Err(_) => Err("body is not a SealTalk envelope".to_owned()),
            },
        }
    }
}

/// How many passing answers a connection remembers: `friends` cycles through `HUBS` distinct
/// lists, and a few more slots cover `mixed`.
const JUDGED_SLOTS: usize = 8;

/// A connection's memory of the answers it judged good lately. A verdict depends only on the
/// scenario, the status and the body, so an answer equal byte for byte to a remembered one has
/// already passed; only answers not seen before are parsed. Why: on a 2-CPU machine the load
/// generator shares the cores with the server, and parsing every 50-row `friends` list took
/// about a fifth of the machine's CPU (perf, docs/benchmarks.md, "The load generator's own
/// CPU"), which pgbench's references do not pay. Every answer is still judged.
#[derive(Debug, Default)]
pub struct Judged {
    passed: VecDeque<(Scenario, StatusCode, Bytes)>,
}

impl Judged {
    /// The verdict of [`Scenario::judge`] on this answer, parsed only if no remembered passing
    /// answer is equal to it.
    pub fn judge(
        &mut self,
        kind: Scenario,
        status: StatusCode,
        body: &Bytes,
    ) -> Result<(), String> {
        let seen = self
            .passed
            .iter()
            .any(|(k, s, b)| *k == kind && *s == status && b == body);
        if seen {
            return Ok(());
        }
        kind.judge(status, body)?;
        if self.passed.len() == JUDGED_SLOTS {
            self.passed.pop_front();
        }
        self.passed.push_back((kind, status, body.clone()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn users() -> Vec<User> {
        (0..3)
            .map(|i| User {
                id: format!("{}", 100 + i),
                token: format!("t{i}"),
                phone: format!("1390000000{i}"),
                password: "secret-pw".into(),
            })
            .collect()
    }

    #[test]
    fn profile_sends_a_bearer_token_and_a_seeded_id() {
        let fx = Fixture::of(users());
        let req = Scenario::Profile.request(&fx, 4);
        assert_eq!(req.bearer.as_deref(), Some("t1"));
        assert!(fx
            .users
            .iter()
            .any(|u| req.path == format!("/user/{}", u.id)));
    }

    #[test]
    fn login_posts_the_seeded_credentials() {
        let fx = Fixture::of(users());
        let req = Scenario::Login.request(&fx, 2);
        assert_eq!(req.path, "/user/login");
        let body: serde_json::Value =
            serde_json::from_slice(req.json.as_deref().unwrap_or_default()).unwrap();
        assert_eq!(body["phone"], "13900000002");
        assert_eq!(body["region"], 86);
    }

    fn many(n: usize) -> Vec<User> {
        (0..n)
            .map(|i| User {
                id: format!("{}", 100 + i),
                token: format!("t{i}"),
                phone: format!("1390000{i:04}"),
                password: "secret-pw".into(),
            })
            .collect()
    }

    #[test]
    fn follow_unfollow_is_a_follow_then_an_unfollow_of_one_pair() {
        let fx = Fixture::of(many(20));
        let steps = Scenario::FollowUnfollow.steps(&fx, 0);
        assert_eq!(steps.len(), 2);
        let (follow, unfollow) = (&steps[0].0, &steps[1].0);
        assert_eq!(follow.path, "/follows");
        assert_eq!(follow.method, hyper::Method::POST);
        assert_eq!(unfollow.method, hyper::Method::DELETE);
        assert_eq!(follow.bearer, unfollow.bearer);
        let body: serde_json::Value =
            serde_json::from_slice(follow.json.as_deref().unwrap()).unwrap();
        assert_eq!(unfollow.path, format!("/follows/{}", body["followee_id"]));
        // The next step takes the next ticket: another follower.
        let next = Scenario::FollowUnfollow.steps(&fx, 1);
        assert_ne!(next[0].0.bearer, follow.bearer);
    }

    #[test]
    fn mixed_is_nine_reads_then_a_write() {
        let mut fx = Fixture::of(many(20));
        fx.since = vec![5; 20];
        fx.pairs = relationships::fresh_pairs(20);
        let mut reads = 0;
        let mut writes = 0;
        for n in 0..100 {
            let steps = Scenario::Mixed.steps(&fx, n);
            match steps[0].1 {
                Scenario::Profile | Scenario::Friends | Scenario::Sync => {
                    assert_eq!(steps.len(), 1);
                    assert_eq!(steps[0].0.method, hyper::Method::GET);
                    reads += 1;
                }
                Scenario::FollowUnfollow | Scenario::Invite => {
                    assert_eq!(steps.len(), 2);
                    writes += 1;
                }
                other => panic!("unexpected step {other:?}"),
            }
        }
        assert_eq!((reads, writes), (90, 10));
        // Five invites used five fresh pairs.
        assert_eq!(fx.next_pair.load(Ordering::Relaxed), 5);
        let sync = Scenario::Mixed.steps(&fx, 2);
        assert_eq!(sync[0].1, Scenario::Sync);
        assert!(sync[0].0.path.starts_with("/user/sync/5"));
    }

    #[test]
    fn a_sealtalk_code_other_than_200_is_an_error() {
        let ok = Bytes::from_static(br#"{"code":200,"result":{}}"#);
        let wrong = Bytes::from_static(br#"{"code":1000}"#);
        assert_eq!(Scenario::Login.judge(StatusCode::OK, &ok), Ok(()));
        assert_eq!(
            Scenario::Login.judge(StatusCode::OK, &wrong),
            Err("sealtalk code 1000".into())
        );
        assert_eq!(
            Scenario::Health.judge(StatusCode::SERVICE_UNAVAILABLE, &ok),
            Err("http 503".into())
        );
    }

    #[test]
    fn a_remembered_answer_passes_and_any_other_is_judged_again() {
        let mut judged = Judged::default();
        let ok = Bytes::from_static(br#"{"code":200,"result":{}}"#);
        // As long as `ok`, and only a byte apart: a memory keyed on length would pass it.
        let wrong = Bytes::from_static(br#"{"code":201,"result":{}}"#);
        assert_eq!(judged.judge(Scenario::Login, StatusCode::OK, &ok), Ok(()));
        assert_eq!(judged.judge(Scenario::Login, StatusCode::OK, &ok), Ok(()));
        assert_eq!(
            judged.judge(Scenario::Login, StatusCode::OK, &wrong),
            Err("sealtalk code 201".into())
        );
        // The same body under another status or scenario is judged afresh.
        assert_eq!(
            judged.judge(Scenario::Login, StatusCode::SERVICE_UNAVAILABLE, &ok),
            Err("http 503".into())
        );
        assert_eq!(
            judged.judge(Scenario::Friends, StatusCode::OK, &ok),
            Err("body is not a SealTalk friends list".into())
        );
        // A failure is never remembered as a pass.
        assert!(judged
            .judge(Scenario::Login, StatusCode::OK, &wrong)
            .is_err());
    }

    #[test]
    fn the_memory_keeps_the_newest_answers_only() {
        let mut judged = Judged::default();
        let bodies: Vec<Bytes> = (0..JUDGED_SLOTS + 3)
            .map(|i| Bytes::from(format!(r#"{{"code":200,"result":{{"n":{i}}}}}"#)))
            .collect();
        for b in &bodies {
            assert_eq!(judged.judge(Scenario::Profile, StatusCode::OK, b), Ok(()));
        }
        assert_eq!(judged.passed.len(), JUDGED_SLOTS);
        assert!(!judged.passed.iter().any(|(_, _, b)| *b == bodies[0]));
        assert!(judged
            .passed
            .iter()
            .any(|(_, _, b)| b == bodies.last().unwrap()));
    }
}
