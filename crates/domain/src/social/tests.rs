#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use futures_executor::block_on;

use super::*;
use crate::memory::{ManualClock, MemoryAccountStore, MemoryRelationshipStore, SeqRandom};
use crate::ports::{AccountStore, Privacy, ProfileChange};
use crate::relationship::{Friendship, InviteOutcome};

const T0: Millis = 1_700_000_000_000;

struct Fixture {
    svc: RelationshipService,
    accounts: Arc<MemoryAccountStore>,
    clock: Arc<ManualClock>,
}

fn fixture_with(policy: RelationshipPolicy) -> Fixture {
    let accounts = Arc::new(MemoryAccountStore::default());
    let clock = Arc::new(ManualClock::new(T0));
    let svc = RelationshipService::new(
        RelationshipPorts {
            store: Arc::new(MemoryRelationshipStore::new(accounts.clone())),
            accounts: accounts.clone(),
            clock: clock.clone(),
            random: Arc::new(SeqRandom::new(11)),
        },
        policy,
    );
    Fixture {
        svc,
        accounts,
        clock,
    }
}

fn fixture() -> Fixture {
    fixture_with(RelationshipPolicy::default())
}

fn phone(n: u32) -> Phone {
    Phone::parse("86", &format!("139{n:08}")).unwrap()
}

impl Fixture {
    fn user(&self, n: u32) -> UserId {
        let id = UserId::new(i64::from(n) * 1000 + 7).unwrap();
        self.accounts
            .add_user(id, &phone(n), &format!("U{n}"), T0)
            .unwrap();
        id
    }
}

#[test]
fn self_and_unknown_targets_are_refused() {
    let f = fixture();
    let a = f.user(1);
    assert!(matches!(
        block_on(f.svc.run(a, a, Command::Follow)),
        Err(DomainError::Invalid { .. })
    ));
    assert_eq!(
        block_on(f.svc.run(a, UserId::new(99).unwrap(), Command::Follow)).unwrap_err(),
        DomainError::NotFound("user")
    );
}

#[test]
fn invite_honours_friend_verification() {
    let f = fixture();
    let (a, b) = (f.user(1), f.user(2));
    block_on(f.accounts.update_profile(
        b,
        ProfileChange::Privacy(Privacy {
            friend_verification: false,
            ..Privacy::default()
        }),
        T0,
    ))
    .unwrap();
    let t = block_on(f.svc.run(a, b, Command::Invite { message: None })).unwrap();
    assert_eq!(t.outcome, Outcome::Invite(InviteOutcome::AddDirectly));
    let listed = block_on(f.svc.list(b, SideFilter::Friends, None, None)).unwrap();
    assert_eq!(listed.rows.len(), 1);
    assert_eq!(listed.rows[0].user.id, a);
}

#[test]
fn requests_are_answered_by_id_only_by_their_target() {
    let f = fixture();
    let (a, b) = (f.user(1), f.user(2));
    let t = block_on(f.svc.run(a, b, Command::Invite { message: None })).unwrap();
    let id = t.pair.mine.request_id.unwrap();
    assert_eq!(block_on(f.svc.pending_requests(b)).unwrap(), 1);
    assert_eq!(
        block_on(f.svc.run_on_request(a, id, Command::Accept)).unwrap_err(),
        DomainError::NotFound("friend_request"),
        "the sender cannot accept its own request"
    );
    let c = f.user(3);
    assert_eq!(
        block_on(f.svc.run_on_request(c, id, Command::Accept)).unwrap_err(),
        DomainError::NotFound("friend_request")
    );
    block_on(f.svc.run_on_request(b, id, Command::Accept)).unwrap();
    assert_eq!(block_on(f.svc.pending_requests(b)).unwrap(), 0);
    assert!(block_on(f.svc.friend(a, b)).is_ok());
    assert_eq!(
        block_on(f.svc.friend(a, c)).unwrap_err(),
        DomainError::Forbidden("not a friend")
    );
}

#[test]
fn lists_are_capped_and_paged() {
    let f = fixture_with(RelationshipPolicy {
        list_cap: 3,
        ..RelationshipPolicy::default()
    });
    let hub = f.user(1);
    let fans: Vec<UserId> = (2..9).map(|n| f.user(n)).collect();
    for fan in &fans {
        block_on(f.svc.run(*fan, hub, Command::Follow)).unwrap();
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = block_on(f.svc.list(hub, SideFilter::Followers, Some(100), after)).unwrap();
        assert!(
            page.rows.len() <= 3,
            "the cap holds whatever the client asks"
        );
        seen.extend(page.rows.iter().map(|r| r.user.id));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let mut expected = fans.clone();
    expected.sort();
    assert_eq!(seen, expected);
}

#[test]
fn a_blocker_is_invisible_to_the_blocked() {
    let f = fixture();
    let (a, b) = (f.user(1), f.user(2));
    block_on(f.svc.run(b, a, Command::Block)).unwrap();
    assert_eq!(
        block_on(f.svc.get(a, b)).unwrap_err(),
        DomainError::NotFound("user")
    );
    let info = block_on(
        f.svc
            .contacts_info(a, "86", vec![phone(2).e164().to_owned()]),
    )
    .unwrap();
    assert!(info[0].user.is_none());
    assert!(block_on(f.svc.get(b, a)).unwrap().mine.blocking);
    block_on(f.svc.run(a, b, Command::Star)).unwrap();
    let any = block_on(f.svc.list(a, SideFilter::Any, None, None)).unwrap();
    assert!(any.rows.is_empty(), "nor in my contact list");
}

#[test]
fn upload_makes_followed_contacts_and_placeholders() {
    let f = fixture();
    let (a, b) = (f.user(1), f.user(2));
    let entries = vec![
        UploadEntry {
            phone: "139 0000 0002".into(),
            display_name: Some("Bob from work".into()),
        },
        UploadEntry {
            phone: "not a phone".into(),
            display_name: None,
        },
        UploadEntry {
            phone: "+86 139 0000 0077".into(),
            display_name: None,
        },
        UploadEntry {
            phone: "13900000001".into(),
            display_name: None,
        },
    ];
    let results = block_on(f.svc.upload(a, "86", entries)).unwrap();
    assert!(
        matches!(&results[0], UploadResult::Ok { user_id, registered: true, .. } if *user_id == b)
    );
    assert!(matches!(
        &results[1],
        UploadResult::Err(DomainError::Invalid { .. })
    ));
    let UploadResult::Ok {
        user_id: placeholder,
        registered: false,
        ..
    } = results[2].clone()
    else {
        panic!("{:?}", results[2]);
    };
    assert!(
        matches!(&results[3], UploadResult::Err(DomainError::Invalid { .. })),
        "own number"
    );
    let r = block_on(f.svc.get(a, b)).unwrap();
    assert!(r.mine.following && r.mine.phone_visible);
    assert_eq!(r.mine.display_name.as_deref(), Some("Bob from work"));
    assert_eq!(r.mine.friendship, Friendship::None);
    // I see the placeholder I uploaded; nobody can act on it until it registers.
    assert!(!block_on(f.svc.get(a, placeholder)).unwrap().user.registered);
    assert_eq!(
        block_on(f.svc.get(b, placeholder)).unwrap_err(),
        DomainError::NotFound("user")
    );
    assert_eq!(
        block_on(f.svc.run(a, placeholder, Command::Star)).unwrap_err(),
        DomainError::NotFound("user")
    );
    let too_many = (0..1001)
        .map(|i| UploadEntry {
            phone: format!("139{i:08}"),
            display_name: None,
        })
        .collect();
    assert!(matches!(
        block_on(f.svc.upload(a, "86", too_many)),
        Err(DomainError::Invalid { .. })
    ));
}

#[test]
fn the_daily_phone_quota_holds() {
    let f = fixture_with(RelationshipPolicy {
        phones_per_day: 2,
        ..RelationshipPolicy::default()
    });
    let a = f.user(1);
    let phones = |n: u32| {
        (0..n)
            .map(|i| format!("1390000{:04}", 50 + i))
            .collect::<Vec<_>>()
    };
    assert!(block_on(f.svc.contacts_info(a, "86", phones(2))).is_ok());
    assert!(matches!(
        block_on(f.svc.contacts_info(a, "86", phones(1))),
        Err(DomainError::RateLimited { .. })
    ));
    f.clock.advance(DAY);
    assert!(block_on(f.svc.contacts_info(a, "86", phones(1))).is_ok());
}
