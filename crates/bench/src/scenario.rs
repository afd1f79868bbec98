//! The request mixes `run` can drive, and what each counts as a failure.

use clap::ValueEnum;
use hyper::body::Bytes;
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::json;

use crate::addressbook;
use crate::http::Req;
use crate::relationships;
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
        }
    }

    /// Whether the scenario needs a seeded users file.
    pub fn needs_users(self) -> bool {
        !matches!(self, Self::Health | Self::Raw)
    }

    /// The `n`th request; `n` walks the users so that load spreads over all of them.
    pub fn request(self, users: &[User], n: usize) -> Req {
        match (self, users.len()) {
            // invite-accept is a pair of requests, driven by `run` itself, never from here.
            (Self::Raw, _) => Req::get("/raw"),
            (Self::Health | Self::InviteAccept, _) | (_, 0) => Req::get("/health"),
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
            Self::AddressbookSearch => addressbook::judge_search(status, body),
            Self::Profile | Self::Login => match serde_json::from_slice::<Envelope>(body) {
                Ok(Envelope { code: 200 }) => Ok(()),
                Ok(Envelope { code }) => Err(format!("sealtalk code {code}")),
                Err(_) => Err("body is not a SealTalk envelope".to_owned()),
            },
        }
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
        let users = users();
        let req = Scenario::Profile.request(&users, 4);
        assert_eq!(req.bearer.as_deref(), Some("t1"));
        assert!(users.iter().any(|u| req.path == format!("/user/{}", u.id)));
    }

    #[test]
    fn login_posts_the_seeded_credentials() {
        let users = users();
        let req = Scenario::Login.request(&users, 2);
        assert_eq!(req.path, "/user/login");
        let body: serde_json::Value =
            serde_json::from_slice(req.json.as_deref().unwrap_or_default()).unwrap();
        assert_eq!(body["phone"], "13900000002");
        assert_eq!(body["region"], 86);
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
}
