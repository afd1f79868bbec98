//! Relationship storage tests: round trips, change records, lists, and races on one pair.

use std::collections::BTreeSet;
use std::sync::Arc;

use kith_domain::ids::RequestId;
use kith_domain::ports::{Counterpart, Page, Related, RelationshipStore, SideFilter};
use kith_domain::relationship::{
    apply, check_pair, Command, Context, ConvType, Friendship, InviteOutcome, Outcome, Pair,
    RemarkPatch, Side, Transition,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::schema::relationships;

/// Creates placeholder users with these ids (phone numbers derived from the ids).
async fn users(store: &Store, ids: &[i64]) {
    for &id in ids {
        let p = phone(u32::try_from(id).unwrap());
        assert_eq!(
            store.create_placeholder(uid(id), &p, NOW).await,
            Ok(uid(id))
        );
    }
}

/// Runs `cmd` of `me` on `other` through the domain's state machine.
async fn act(store: &Store, me: i64, other: i64, cmd: Command) -> Result<Transition, DomainError> {
    act_with(
        store,
        me,
        other,
        cmd,
        Context::new(NOW, RequestId::from_random(rand::random())),
    )
    .await
}

async fn act_with(
    store: &Store,
    me: i64,
    other: i64,
    cmd: Command,
    ctx: Context,
) -> Result<Transition, DomainError> {
    store
        .transition(
            uid(me),
            uid(other),
            Box::new(move |pair, _| apply(pair, &cmd, &ctx)),
        )
        .await
}

/// A decide that sets both sides outright.
fn set_pair(mine: Side, theirs: Side) -> kith_domain::ports::Decide {
    Box::new(move |before: &Pair, _| {
        Ok(Transition {
            mine_changed: before.mine != mine,
            theirs_changed: before.theirs != theirs,
            pair: Pair {
                mine: mine.clone(),
                theirs: theirs.clone(),
            },
            outcome: Outcome::Done,
            events: Vec::new(),
        })
    })
}

/// Every stored row key, sorted.
async fn row_keys(store: &Store) -> Vec<(i64, i64)> {
    store
        .run(|c| {
            Ok(relationships::table
                .select((relationships::owner, relationships::other))
                .order((relationships::owner, relationships::other))
                .load(c)?)
        })
        .await
        .unwrap()
}

async fn pair_of(store: &Store, me: i64, other: i64) -> Pair {
    store.pair(uid(me), uid(other)).await.unwrap()
}

fn invite() -> Command {
    Command::Invite { message: None }
}

fn page(after: Option<i64>, limit: u32) -> Page {
    Page {
        after: after.map(uid),
        limit,
    }
}

/// A side with every field set to something other than its default.
fn full_side(seed: i64) -> Side {
    Side {
        friendship: Friendship::Requested,
        request_id: Some(RequestId::new(9000 + seed).unwrap()),
        request_message: Some(format!("hello {seed} ✓")),
        request_at: Some(NOW + seed),
        ignored_at: Some(NOW + 1 + seed),
        friends_since: Some(NOW + 2 + seed),
        following: true,
        followed_at: Some(NOW + 3 + seed),
        starred: true,
        blocking: true,
        blocked_at: Some(NOW + 4 + seed),
        display_name: Some(format!("name {seed}")),
        description: Some(format!("it's \"{seed}\"")),
        remark_phone: Some("+8613900000000".to_owned()),
        remark_region: Some("86".to_owned()),
        remark_image_uri: Some("https://example.com/p.png".to_owned()),
        conv_type: ConvType::Archive,
        phone_visible: true,
        created_at: NOW + 5 + seed,
        updated_at: NOW + 6 + seed,
    }
}

// ---------------------------------------------------------------- round trips

both_backends!(every_side_field_round_trips, |store: Store| async move {
    users(&store, &[1, 2]).await;
    assert_eq!(pair_of(&store, 1, 2).await, Pair::default());

    let (mine, theirs) = (full_side(1), full_side(2));
    let t = store
        .transition(uid(1), uid(2), set_pair(mine.clone(), theirs.clone()))
        .await
        .unwrap();
    assert!(t.mine_changed && t.theirs_changed);
    let stored = pair_of(&store, 1, 2).await;
    assert_eq!(stored, Pair { mine, theirs });
    assert_eq!(pair_of(&store, 2, 1).await, stored.clone().swap());

    // Every optional field back to NULL, and every friendship and list name.
    for (i, friendship) in Friendship::ALL.into_iter().enumerate() {
        let conv_type = [ConvType::Normal, ConvType::Sticky, ConvType::Archive][i % 3];
        let mine = Side {
            friendship,
            conv_type,
            starred: i % 2 == 0,
            updated_at: NOW + i as i64,
            ..Side::default()
        };
        let theirs = Side {
            display_name: Some(String::new()),
            ..Side::default()
        };
        store
            .transition(uid(2), uid(1), set_pair(mine.clone(), theirs.clone()))
            .await
            .unwrap();
        assert_eq!(pair_of(&store, 2, 1).await, Pair { mine, theirs });
    }
});

// ---------------------------------------------------------------- writes and change records

both_backends!(
    transition_writes_and_records_only_changed_sides,
    |store: Store| async move {
        users(&store, &[1, 2, 3]).await;

        // A follow changes my row only: their row is not created, their version stays.
        let t = act(&store, 1, 2, Command::Follow).await.unwrap();
        assert!(t.mine_changed && !t.theirs_changed);
        assert_eq!(row_keys(&store).await, vec![(1, 2)]);
        assert_eq!(version_of(&store, uid(1)).await, 1);
        assert_eq!(version_of(&store, uid(2)).await, 0);
        assert_eq!(
            changes_of(&store, uid(1)).await,
            vec![(1, "relationship".to_owned(), Some(2), NOW)]
        );
        assert_eq!(changes_of(&store, uid(2)).await, vec![]);

        // An invite changes both rows; the existing row is updated, the other one created.
        let later = NOW + MINUTE;
        let t = act_with(
            &store,
            1,
            2,
            invite(),
            Context::new(later, RequestId::new(5).unwrap()),
        )
        .await
        .unwrap();
        assert!(t.mine_changed && t.theirs_changed);
        assert_eq!(row_keys(&store).await, vec![(1, 2), (2, 1)]);
        let stored = pair_of(&store, 1, 2).await;
        assert_eq!(stored, t.pair);
        assert!(stored.mine.following);
        assert_eq!(stored.theirs.friendship, Friendship::RequestedBy);
        assert_eq!(
            (
                version_of(&store, uid(1)).await,
                version_of(&store, uid(2)).await
            ),
            (2, 1)
        );
        assert_eq!(
            changes_of(&store, uid(1)).await,
            vec![
                (1, "relationship".to_owned(), Some(2), NOW),
                (2, "relationship".to_owned(), Some(2), later),
            ]
        );
        assert_eq!(
            changes_of(&store, uid(2)).await,
            vec![(1, "relationship".to_owned(), Some(1), later)]
        );

        // A repeat that changes nothing writes nothing and leaves no placeholder rows.
        let t = act(&store, 1, 2, Command::Follow).await.unwrap();
        assert!(!t.changed());
        let t = act(&store, 3, 1, Command::Unfollow).await.unwrap();
        assert!(!t.changed());
        assert_eq!(row_keys(&store).await, vec![(1, 2), (2, 1)]);
        assert_eq!(version_of(&store, uid(1)).await, 2);
        assert_eq!(version_of(&store, uid(3)).await, 0);

        // The other user's change takes the next version of whoever's row changed.
        act(&store, 2, 1, Command::Accept).await.unwrap();
        assert_eq!(
            (
                version_of(&store, uid(1)).await,
                version_of(&store, uid(2)).await
            ),
            (3, 2)
        );
        let versions: Vec<i64> = changes_of(&store, uid(1))
            .await
            .iter()
            .map(|c| c.0)
            .collect();
        assert_eq!(versions, vec![1, 2, 3]);

        // A profile change and a relationship change share one version sequence.
        store
            .update_profile(uid(1), ProfileChange::Nickname("ann".into()), NOW)
            .await
            .unwrap();
        act(&store, 1, 3, Command::Star).await.unwrap();
        let kinds: Vec<(i64, String)> = changes_of(&store, uid(1))
            .await
            .into_iter()
            .map(|c| (c.0, c.1))
            .collect();
        assert_eq!(
            kinds[3..],
            [(4, "user".to_owned()), (5, "relationship".to_owned())]
        );
    }
);

both_backends!(
    refused_transitions_write_nothing,
    |store: Store| async move {
        users(&store, &[1, 2]).await;

        // No request to accept: the domain error comes back and the placeholder rows are gone.
        assert_eq!(
            act(&store, 1, 2, Command::Accept).await.map(|t| t.outcome),
            Err(DomainError::NotFound("friend_request"))
        );
        assert_eq!(row_keys(&store).await, vec![]);
        assert_eq!(version_of(&store, uid(1)).await, 0);
        assert_eq!(version_of(&store, uid(2)).await, 0);

        // With rows in place, a refusal leaves them as they were.
        act(&store, 1, 2, Command::Block).await.unwrap();
        let before = pair_of(&store, 1, 2).await;
        assert_eq!(
            act(&store, 1, 2, Command::Follow).await.map(|t| t.outcome),
            Err(DomainError::Conflict("blocked"))
        );
        assert_eq!(
            act(&store, 2, 1, Command::Follow).await.map(|t| t.outcome),
            Err(DomainError::Forbidden("blocked"))
        );
        assert_eq!(pair_of(&store, 1, 2).await, before);
        assert_eq!(row_keys(&store).await, vec![(1, 2)]);
        assert_eq!(version_of(&store, uid(1)).await, 1);
        assert_eq!(version_of(&store, uid(2)).await, 0);

        // Unknown users and oneself are refused before anything is decided.
        assert_eq!(
            act(&store, 1, 999, Command::Follow)
                .await
                .map(|t| t.outcome),
            Err(DomainError::NotFound("user"))
        );
        assert_eq!(
            act(&store, 999, 1, Command::Follow)
                .await
                .map(|t| t.outcome),
            Err(DomainError::NotFound("user"))
        );
        assert!(matches!(
            act(&store, 1, 1, Command::Follow).await,
            Err(DomainError::Invalid { .. })
        ));
        assert_eq!(row_keys(&store).await, vec![(1, 2)]);
    }
);

// ---------------------------------------------------------------- lists

/// The ids a list answers, read in pages of `limit`.
async fn list_ids(store: &Store, owner: i64, filter: SideFilter, limit: u32) -> Vec<i64> {
    let mut ids = Vec::new();
    let mut after = None;
    loop {
        let rows = store
            .list(uid(owner), filter, page(after, limit))
            .await
            .unwrap();
        assert!(rows.len() <= limit as usize);
        ids.extend(rows.iter().map(|r| r.user.id.get()));
        match rows.last() {
            Some(last) if rows.len() == limit as usize => after = Some(last.user.id.get()),
            _ => return ids,
        }
    }
}

both_backends!(
    lists_for_every_filter_page_by_id,
    |store: Store| async move {
        let owner = 100;
        users(
            &store,
            &[
                owner, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112,
            ],
        )
        .await;
        act(&store, owner, 101, invite()).await.unwrap();
        act(&store, 101, owner, Command::Accept).await.unwrap();
        act(&store, owner, 102, invite()).await.unwrap();
        act(&store, 103, owner, invite()).await.unwrap();
        act(&store, 104, owner, invite()).await.unwrap();
        act(&store, owner, 104, Command::Ignore).await.unwrap();
        act(&store, owner, 105, Command::Follow).await.unwrap();
        act(&store, 106, owner, Command::Follow).await.unwrap();
        act(&store, owner, 107, Command::Block).await.unwrap();
        act(&store, owner, 108, invite()).await.unwrap();
        act(&store, 108, owner, Command::Accept).await.unwrap();
        act(&store, 108, owner, Command::Delete).await.unwrap();
        act(
            &store,
            owner,
            109,
            Command::SetRemark(RemarkPatch {
                display_name: Some("nine".into()),
                ..RemarkPatch::default()
            }),
        )
        .await
        .unwrap();
        act(&store, owner, 110, Command::Follow).await.unwrap();
        act(&store, 110, owner, Command::Follow).await.unwrap();
        // An emptied row is still stored but listed nowhere.
        act(&store, owner, 111, Command::Follow).await.unwrap();
        act(&store, owner, 111, Command::Unfollow).await.unwrap();
        // Rows between other users stay out of the owner's lists.
        act(&store, 112, 101, Command::Follow).await.unwrap();
        act(&store, 101, 112, invite()).await.unwrap();

        let expected: [(SideFilter, &[i64]); 8] = [
            (
                SideFilter::Any,
                &[101, 102, 103, 104, 105, 107, 108, 109, 110],
            ),
            (SideFilter::Friendship, &[101, 102, 103, 104, 108]),
            (SideFilter::Friends, &[101]),
            (SideFilter::Incoming, &[103]),
            (SideFilter::Outgoing, &[102]),
            (SideFilter::Following, &[105, 110]),
            (SideFilter::Followers, &[106, 110]),
            (SideFilter::Blocking, &[107]),
        ];
        for (filter, ids) in expected {
            for limit in [1, 2, 3, 100] {
                assert_eq!(
                    list_ids(&store, owner, filter, limit).await,
                    ids,
                    "{filter:?} in pages of {limit}"
                );
            }
        }

        // `after` skips to the ids above it, whether or not it is in the list itself.
        let after = |id, limit| {
            let store = store.clone();
            async move {
                store
                    .list(uid(owner), SideFilter::Any, page(Some(id), limit))
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.user.id.get())
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(after(104, 2).await, vec![105, 107]);
        assert_eq!(after(106, 100).await, vec![107, 108, 109, 110]);
        assert_eq!(after(110, 100).await, Vec::<i64>::new());
        assert!(store
            .list(uid(owner), SideFilter::Any, page(None, 0))
            .await
            .unwrap()
            .is_empty());

        // Each entry carries the other user and both rows of the pair.
        let pair_in = |filter, id| {
            let store = store.clone();
            async move {
                let rows = store
                    .list(uid(owner), filter, page(None, 100))
                    .await
                    .unwrap();
                rows.into_iter().find(|r| r.user.id == uid(id)).unwrap()
            }
        };
        let friend = pair_in(SideFilter::Friends, 101).await;
        assert_eq!(friend.user.phone, phone(101));
        assert!(!friend.user.registered);
        assert_eq!(
            Pair {
                mine: friend.mine.clone(),
                theirs: friend.theirs.clone()
            },
            pair_of(&store, owner, 101).await
        );
        let incoming = pair_in(SideFilter::Incoming, 103).await;
        assert_eq!(incoming.theirs.friendship, Friendship::Requested);
        let follower = pair_in(SideFilter::Followers, 106).await;
        assert_eq!(follower.mine, Side::default());
        assert!(follower.theirs.following);
        let mutual = pair_in(SideFilter::Followers, 110).await;
        assert!(mutual.mine.following && mutual.theirs.following);
        assert_eq!(
            Pair {
                mine: mutual.mine.clone(),
                theirs: mutual.theirs.clone()
            },
            pair_of(&store, owner, 110).await
        );
        let remarked = pair_in(SideFilter::Any, 109).await;
        assert_eq!(remarked.mine.display_name.as_deref(), Some("nine"));
        assert_eq!(remarked.theirs, Side::default());

        // The other users see their side of the same rows.
        assert_eq!(
            list_ids(&store, 106, SideFilter::Following, 10).await,
            vec![owner]
        );
        assert_eq!(
            list_ids(&store, 105, SideFilter::Followers, 10).await,
            vec![owner]
        );
        assert_eq!(
            list_ids(&store, 101, SideFilter::Friends, 10).await,
            vec![owner]
        );
        assert_eq!(
            list_ids(&store, 101, SideFilter::Outgoing, 10).await,
            vec![112]
        );
        assert_eq!(
            list_ids(&store, 101, SideFilter::Followers, 10).await,
            vec![112]
        );

        // PostgreSQL reads the lists on the worker's own connections; the blocking pool's
        // query must give the same entries.
        let blocking = store.blocking_reads();
        for (filter, _) in expected {
            for who in [owner, 101] {
                let on_worker = store.list(uid(who), filter, page(None, 100)).await;
                let on_pool = blocking.list(uid(who), filter, page(None, 100)).await;
                assert_eq!(on_worker, on_pool, "{filter:?} of {who}");
            }
        }
        for other in 101..=112 {
            assert_eq!(
                store.pair(uid(owner), uid(other)).await,
                blocking.pair(uid(owner), uid(other)).await,
                "pair with {other}"
            );
        }
    }
);

both_backends!(find_request_and_count_incoming, |store: Store| async move {
    users(&store, &[1, 2, 3]).await;
    let rid = |n| RequestId::new(n).unwrap();
    let ctx = |n| Context::new(NOW, rid(n));
    assert_eq!(store.count_incoming(uid(2)).await, Ok(0));
    act_with(&store, 1, 2, invite(), ctx(77)).await.unwrap();
    act_with(&store, 3, 2, invite(), ctx(78)).await.unwrap();

    assert_eq!(store.find_request(uid(1), rid(77)).await, Ok(Some(uid(2))));
    assert_eq!(store.find_request(uid(2), rid(77)).await, Ok(Some(uid(1))));
    assert_eq!(store.find_request(uid(2), rid(78)).await, Ok(Some(uid(3))));
    // Only the two parties find it.
    assert_eq!(store.find_request(uid(3), rid(77)).await, Ok(None));
    assert_eq!(store.find_request(uid(1), rid(79)).await, Ok(None));
    assert_eq!(store.count_incoming(uid(2)).await, Ok(2));
    assert_eq!(store.count_incoming(uid(1)).await, Ok(0));

    // An ignored request is still found by both, but no longer waits for an answer.
    act(&store, 2, 1, Command::Ignore).await.unwrap();
    assert_eq!(store.find_request(uid(2), rid(77)).await, Ok(Some(uid(1))));
    assert_eq!(store.find_request(uid(1), rid(77)).await, Ok(Some(uid(2))));
    assert_eq!(store.count_incoming(uid(2)).await, Ok(1));

    // An answered request is gone.
    act(&store, 2, 3, Command::Accept).await.unwrap();
    assert_eq!(store.find_request(uid(2), rid(78)).await, Ok(None));
    assert_eq!(store.find_request(uid(3), rid(78)).await, Ok(None));
    assert_eq!(store.count_incoming(uid(2)).await, Ok(0));
});

// ---------------------------------------------------------------- users

both_backends!(ensure_user_race_makes_one_user, |store: Store| async move {
    let p = phone(1);
    let users = race(&store, |s, i| {
        let p = p.clone();
        async move { s.ensure_user(&p, uid(700 + i as i64), NOW).await.unwrap() }
    })
    .await;
    assert!(users.iter().all(|u| u == &users[0]), "{users:?}");
    let user = &users[0];
    assert!((700..700 + RACERS as i64).contains(&user.id.get()));
    assert_eq!((user.phone.clone(), user.registered), (p.clone(), false));
    assert_eq!(store.get_user(user.id).await.unwrap().as_ref(), Some(user));

    // A registered user is returned as it is.
    let ann = registered(&store, &phone(2), 42, "ann").await;
    let found = store.ensure_user(&phone(2), uid(800), NOW).await.unwrap();
    assert_eq!(
        (found.id, found.registered, found.nickname.as_str()),
        (ann, true, "ann")
    );
    assert_eq!(store.get_user(uid(800)).await, Ok(None));

    // A candidate id that another phone holds is a conflict, and creates nothing.
    assert_eq!(
        store.ensure_user(&phone(3), ann, NOW).await,
        Err(DomainError::Conflict("user_id"))
    );
    assert_eq!(store.find_by_phone(&phone(3)).await, Ok(None));
});

both_backends!(
    registration_takes_over_a_placeholders_relationships,
    |store: Store| async move {
        let ann = registered(&store, &phone(1), 42, "ann").await;
        let p = phone(5);
        let placeholder = store.ensure_user(&p, uid(500), NOW).await.unwrap().id;
        act(
            &store,
            ann.get(),
            500,
            Command::SetRemark(RemarkPatch {
                display_name: Some("Pete".into()),
                ..RemarkPatch::default()
            }),
        )
        .await
        .unwrap();
        act(&store, ann.get(), 500, Command::Follow).await.unwrap();

        verify(&store, &p, "tok-pete").await;
        assert_eq!(
            store.register("tok-pete", account(777, "pete")).await,
            Ok(placeholder)
        );

        let rows = store
            .list(ann, SideFilter::Following, page(None, 10))
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].user.id, placeholder);
        assert!(rows[0].user.registered);
        assert_eq!(rows[0].user.nickname, "pete");
        assert_eq!(rows[0].mine.display_name.as_deref(), Some("Pete"));
        assert_eq!(store.get_user(uid(777)).await, Ok(None));

        // The new account answers from the taken-over id.
        assert_eq!(
            list_ids(&store, placeholder.get(), SideFilter::Followers, 10).await,
            vec![ann.get()]
        );
        act(&store, 500, ann.get(), Command::Follow).await.unwrap();
        assert!(pair_of(&store, 500, ann.get()).await.mine.following);
    }
);

// ---------------------------------------------------------------- races

/// The failures a racing command may meet: rule refusals, never the store's own.
fn is_rule_error(err: &DomainError) -> bool {
    !matches!(err, DomainError::Internal(_) | DomainError::Unavailable(_))
}

/// How many rows each ordered pair has: never more than one.
async fn assert_one_row_per_pair(store: &Store) {
    let keys = row_keys(store).await;
    let unique: BTreeSet<_> = keys.iter().collect();
    assert_eq!(unique.len(), keys.len(), "{keys:?}");
}

/// Rounds of pairs whose two users invite each other at the same instant: each pair ends as
/// friends or with one pending request, never with two.
async fn crossed_invites(store: Store) {
    const ROUNDS: i64 = 12;
    const PAIRS: i64 = RACERS as i64 / 2;
    let ids: Vec<i64> = (1..=ROUNDS * PAIRS * 2).collect();
    users(&store, &ids).await;
    for round in 0..ROUNDS {
        // Odd rounds start from stored rows, even rounds from none: either way only the pair
        // lock orders the two invites (without it both read the same state; this fails).
        if round % 2 == 1 {
            for pair in round * PAIRS..(round + 1) * PAIRS {
                act(&store, pair * 2 + 1, pair * 2 + 2, Command::Follow)
                    .await
                    .unwrap();
                act(&store, pair * 2 + 2, pair * 2 + 1, Command::Star)
                    .await
                    .unwrap();
            }
        }
        // PAIRS pairs at once; in each, both users invite the other at the same instant.
        let results = race(&store, move |s, i| async move {
            let pair = round * PAIRS + (i as i64) / 2;
            let (a, b) = (pair * 2 + 1, pair * 2 + 2);
            let (me, other) = if i % 2 == 0 { (a, b) } else { (b, a) };
            act(&s, me, other, invite()).await
        })
        .await;
        for r in &results {
            assert!(r.is_ok(), "{r:?}");
        }
        for pair in round * PAIRS..(round + 1) * PAIRS {
            let p = pair_of(&store, pair * 2 + 1, pair * 2 + 2).await;
            check_pair(&p).unwrap_or_else(|e| panic!("{e}: {p:?}"));
            let friends = p.mine.is_friend() && p.theirs.is_friend();
            let one_pending = p.mine.pending_outgoing() != p.theirs.pending_outgoing();
            assert!(friends || one_pending, "{p:?}");
        }
    }
    assert_one_row_per_pair(&store).await;
}

both_backends!(crossed_invites_end_in_a_legal_pair, crossed_invites);

/// The same on PostgreSQL's blocking-pool path (`KITH_DB_WORKER_CONNECTIONS=0`), which the
/// stores above, with worker connections, do not take.
#[tokio::test(flavor = "multi_thread")]
async fn crossed_invites_on_the_blocking_pool_end_in_a_legal_pair() {
    let Some(db) = crate::testing::TestDb::postgres() else {
        return;
    };
    crossed_invites(db.store().blocking_reads()).await;
}

both_backends!(accept_racing_withdraw_is_legal, |store: Store| async move {
    const ROUNDS: i64 = 12;
    let ids: Vec<i64> = (1..=ROUNDS * 2).collect();
    users(&store, &ids).await;
    for round in 0..ROUNDS {
        let (a, b) = (round * 2 + 1, round * 2 + 2);
        act(&store, a, b, invite()).await.unwrap();
        let results = race(&store, move |s, i| async move {
            match i {
                0 => act(&s, b, a, Command::Accept).await,
                1 => act(&s, a, b, Command::Withdraw).await,
                // The others read while the two write.
                _ => s.pair(uid(a), uid(b)).await.map(|pair| Transition {
                    pair,
                    outcome: Outcome::Unchanged,
                    mine_changed: false,
                    theirs_changed: false,
                    events: Vec::new(),
                }),
            }
        })
        .await;
        for r in &results {
            match r {
                Ok(t) => check_pair(&t.pair).unwrap_or_else(|e| panic!("{e}: {t:?}")),
                Err(e) => assert_eq!(e, &DomainError::NotFound("friend_request")),
            }
        }
        // Exactly one of the two writers won.
        assert_eq!(
            results[..2].iter().filter(|r| r.is_ok()).count(),
            1,
            "{results:?}"
        );
        let p = pair_of(&store, a, b).await;
        check_pair(&p).unwrap_or_else(|e| panic!("{e}: {p:?}"));
        let friends = p.mine.is_friend() && p.theirs.is_friend();
        let nothing =
            p.mine.friendship == Friendship::None && p.theirs.friendship == Friendship::None;
        assert!(friends || nothing, "{p:?}");
    }
    assert_one_row_per_pair(&store).await;
});

/// A random command for the chaos test.
fn random_command(rng: &mut StdRng) -> Command {
    match rng.random_range(0..14) {
        0 | 1 => invite(),
        2 => Command::Resend {
            message: Some("again".into()),
        },
        3 => Command::Accept,
        4 => Command::Ignore,
        5 => Command::Withdraw,
        6 => Command::Delete,
        7 => Command::Follow,
        8 => Command::Unfollow,
        9 => Command::Star,
        10 => Command::Block,
        11 => Command::Unblock,
        12 => Command::SetRemark(RemarkPatch {
            display_name: Some(format!("n{}", rng.random_range(0..3))),
            ..RemarkPatch::default()
        }),
        _ => Command::SetConvType(ConvType::Sticky),
    }
}

both_backends!(
    random_commands_keep_every_pair_legal,
    |store: Store| async move {
        const USERS: i64 = 4;
        const STEPS: usize = 30;
        let ids: Vec<i64> = (1..=USERS).collect();
        users(&store, &ids).await;
        let outcomes = race(&store, |s, i| async move {
            let mut rng = StdRng::seed_from_u64(i as u64);
            let mut refused = 0;
            for _ in 0..STEPS {
                let me = rng.random_range(1..=USERS);
                let other = (me + rng.random_range(0..USERS - 1)) % USERS + 1;
                let ctx = Context {
                    they_require_verification: rng.random_bool(0.8),
                    ..Context::new(NOW, RequestId::from_random(rng.random()))
                };
                match act_with(&s, me, other, random_command(&mut rng), ctx).await {
                    Ok(t) => check_pair(&t.pair).unwrap_or_else(|e| panic!("{e}: {t:?}")),
                    Err(e) => {
                        assert!(is_rule_error(&e), "{e:?}");
                        refused += 1;
                    }
                }
            }
            refused
        })
        .await;
        // Some commands were refused and some were not.
        let refused: usize = outcomes.iter().sum();
        assert!(refused > 0 && refused < RACERS * STEPS, "{refused}");

        for a in 1..=USERS {
            for b in a + 1..=USERS {
                let p = pair_of(&store, a, b).await;
                check_pair(&p).unwrap_or_else(|e| panic!("{a}-{b}: {e}: {p:?}"));
            }
            // Every version bump was logged, one entry per version.
            let versions: Vec<i64> = changes_of(&store, uid(a))
                .await
                .iter()
                .map(|c| c.0)
                .collect();
            let expected: Vec<i64> = (1..=version_of(&store, uid(a)).await).collect();
            assert_eq!(versions, expected);
        }
        assert_one_row_per_pair(&store).await;
    }
);

/// Every user's cached lists through `store` and through the same store without the cache,
/// which must agree.
async fn assert_lists_fresh(store: &Store, ids: &[i64], step: &str) {
    let uncached = store.uncached_lists();
    let filters = [
        SideFilter::Friendship,
        SideFilter::Friends,
        SideFilter::Incoming,
        SideFilter::Outgoing,
    ];
    for &owner in ids {
        for filter in filters {
            for p in [page(None, 100), page(None, 2), page(Some(ids[2]), 100)] {
                let cached = store.list(uid(owner), filter, p).await.unwrap();
                let fresh = uncached.list(uid(owner), filter, p).await.unwrap();
                assert_eq!(cached, fresh, "{owner}'s {filter:?} ({p:?}) after {step}");
            }
        }
    }
}

both_backends!(
    a_cached_friend_list_is_served_until_its_owner_is_restamped,
    |store: Store| async move {
        users(&store, &[300, 301]).await;
        act(&store, 300, 301, invite()).await.unwrap();
        act(&store, 301, 300, Command::Accept).await.unwrap();
        let nickname = |store: Store| async move {
            store
                .list(uid(300), SideFilter::Friendship, page(None, 100))
                .await
                .unwrap()[0]
                .user
                .nickname
                .clone()
        };
        let before = nickname(store.clone()).await;
        // Behind the store's back, with no stamp moved: the cached page is what is served,
        // which is what shows that it is served at all.
        store
            .serial_write(|c| {
                diesel::update(users::table.find(301))
                    .set(users::nickname.eq("behind"))
                    .execute(c)?;
                Ok(())
            })
            .await
            .unwrap();
        assert_eq!(nickname(store.clone()).await, before);
        assert_eq!(nickname(store.uncached_lists()).await, "behind");
        // Either half of the stamp makes the page be read again.
        store
            .serial_write(|c| {
                diesel::update(users::table.find(300))
                    .set(users::list_stamp.eq(users::list_stamp + 1))
                    .execute(c)?;
                Ok(())
            })
            .await
            .unwrap();
        assert_eq!(nickname(store.clone()).await, "behind");
        store
            .serial_write(|c| {
                diesel::update(users::table.find(301))
                    .set(users::nickname.eq("again"))
                    .execute(c)?;
                diesel::update(users::table.find(300))
                    .set(users::version.eq(users::version + 1))
                    .execute(c)?;
                Ok(())
            })
            .await
            .unwrap();
        assert_eq!(nickname(store.clone()).await, "again");
    }
);

both_backends!(
    cached_friend_lists_show_every_change,
    |store: Store| async move {
        let ids = [400, 401, 402, 403, 404, 405];
        users(&store, &ids).await;
        assert_lists_fresh(&store, &ids, "nothing").await;
        // Each change that moves what a friend list shows, one at a time.
        act(&store, 400, 401, invite()).await.unwrap();
        act(&store, 401, 400, Command::Accept).await.unwrap();
        act(&store, 400, 402, invite()).await.unwrap();
        act(&store, 402, 400, Command::Accept).await.unwrap();
        act(&store, 402, 400, Command::Delete).await.unwrap();
        act(&store, 403, 400, invite()).await.unwrap();
        assert_lists_fresh(&store, &ids, "the friendships").await;
        let remark = |name: &str| {
            Command::SetRemark(RemarkPatch {
                display_name: Some(name.into()),
                ..RemarkPatch::default()
            })
        };
        // (what, who, a command of theirs on another user, a change of their profile)
        type Step<'a> = (&'a str, i64, Option<(i64, Command)>, Option<ProfileChange>);
        let steps: Vec<Step> = vec![
            (
                "a friend's nickname",
                401,
                None,
                Some(ProfileChange::Nickname("n1".into())),
            ),
            (
                "a friend's portrait",
                401,
                None,
                Some(ProfileChange::PortraitUri("p1".into())),
            ),
            (
                "a friend's gender",
                401,
                None,
                Some(ProfileChange::Details {
                    user_name: Some(Some("u1".into())),
                    gender: Some(Some("female".into())),
                    birth_date: None,
                    email: None,
                }),
            ),
            (
                "a friend's privacy",
                401,
                None,
                Some(ProfileChange::Privacy(Privacy {
                    show_gender: false,
                    ..Privacy::default()
                })),
            ),
            (
                "a deleted friend's nickname",
                402,
                None,
                Some(ProfileChange::Nickname("n2".into())),
            ),
            (
                "a requester's nickname",
                403,
                None,
                Some(ProfileChange::Nickname("n3".into())),
            ),
            (
                "a friend's remark on the owner",
                401,
                Some((400, remark("boss"))),
                None,
            ),
            (
                "a friend following the owner",
                401,
                Some((400, Command::Follow)),
                None,
            ),
            (
                "a friend starring the owner",
                401,
                Some((400, Command::Star)),
                None,
            ),
            (
                "a deleted friend's remark",
                402,
                Some((400, remark("ex"))),
                None,
            ),
            ("the owner's remark", 400, Some((401, remark("pal"))), None),
            (
                "the owner pinning",
                400,
                Some((401, Command::SetConvType(ConvType::Sticky))),
                None,
            ),
            ("an accept", 400, Some((403, Command::Accept)), None),
            ("a block", 401, Some((400, Command::Block)), None),
        ];
        for (what, who, cmd, change) in steps {
            if let Some((other, cmd)) = cmd {
                act(&store, who, other, cmd).await.unwrap();
            }
            if let Some(change) = change {
                store
                    .update_profile(uid(who), change, NOW + 1)
                    .await
                    .unwrap();
            }
            assert_lists_fresh(&store, &ids, what).await;
        }
    }
);

both_backends!(
    cached_friend_lists_stay_fresh_through_random_changes,
    |store: Store| async move {
        let ids = [500, 501, 502, 503, 504];
        users(&store, &ids).await;
        let mut rng = StdRng::seed_from_u64(7);
        for step in 0..120 {
            let who = ids[rng.random_range(0..ids.len())];
            let other = ids[rng.random_range(0..ids.len())];
            let what = match rng.random_range(0..16) {
                0..=2 => invite(),
                3..=4 => Command::Accept,
                5 => Command::Ignore,
                6 => Command::Withdraw,
                7 => Command::Delete,
                8 => Command::Follow,
                9 => Command::Star,
                10 => Command::Block,
                11 => Command::Unblock,
                12 => Command::SetRemark(RemarkPatch {
                    display_name: Some(format!("r{step}")),
                    ..RemarkPatch::default()
                }),
                13 => Command::SetConvType(ConvType::Sticky),
                _ => {
                    let change = if rng.random_bool(0.5) {
                        ProfileChange::Nickname(format!("n{step}"))
                    } else {
                        ProfileChange::Details {
                            user_name: None,
                            gender: Some(Some(format!("g{step}"))),
                            birth_date: None,
                            email: None,
                        }
                    };
                    store.update_profile(uid(who), change, NOW).await.unwrap();
                    assert_lists_fresh(&store, &ids, &format!("step {step}, a profile")).await;
                    continue;
                }
            };
            if who != other {
                // Refused commands are part of the walk: they must change nothing.
                let _ = act(&store, who, other, what.clone()).await;
            }
            assert_lists_fresh(&store, &ids, &format!("step {step}, {what:?}")).await;
        }
    }
);

/// A racer that reads `owner`'s friend list a few times, refilling its cached page meanwhile.
async fn read_friend_list(s: &Store, owner: i64) -> Result<(), DomainError> {
    for _ in 0..4 {
        s.list(uid(owner), SideFilter::Friendship, page(None, 100))
            .await?;
    }
    Ok(())
}

/// After a race: no racer failed, and `owner`'s cached friend list equals the one read
/// without the cache; that list.
async fn fresh_after_race(
    store: &Store,
    uncached: &Store,
    owner: i64,
    results: &[Result<(), DomainError>],
    round: impl std::fmt::Display,
) -> Vec<Arc<Related>> {
    for r in results {
        assert!(r.is_ok(), "round {round}: {r:?}");
    }
    let page = page(None, 100);
    let cached = store.list(uid(owner), SideFilter::Friendship, page);
    let cached = cached.await.unwrap();
    let fresh = uncached.list(uid(owner), SideFilter::Friendship, page);
    let fresh = fresh.await.unwrap();
    assert_eq!(cached, fresh, "round {round}");
    fresh
}

both_backends!(
    a_profile_change_racing_a_new_friendship_leaves_no_stale_cached_list,
    |store: Store| async move {
        const ROUNDS: i64 = 40;
        let ids: Vec<i64> = (0..ROUNDS * 2).map(|i| 700 + i).collect();
        users(&store, &ids).await;
        let uncached = store.uncached_lists();
        for round in 0..ROUNDS {
            let (owner, other) = (700 + 2 * round, 701 + 2 * round);
            // In each round the owner's list gains `other` while `other` renames, and readers
            // fill the owner's cached page meanwhile: a rename that missed the new lister would
            // leave the old name cached under a stamp that no longer moves.
            let results = race(&store, move |s, i| async move {
                match i {
                    0 => act(&s, owner, other, invite()).await.map(|_| ()),
                    1 => {
                        let name = ProfileChange::Nickname(format!("renamed {round}"));
                        s.update_profile(uid(other), name, NOW).await
                    }
                    _ => read_friend_list(&s, owner).await,
                }
            })
            .await;
            let fresh = fresh_after_race(&store, &uncached, owner, &results, round).await;
            assert_eq!(fresh[0].user.nickname, format!("renamed {round}"));
        }
    }
);

both_backends!(
    two_profile_changes_at_once_leave_no_stale_cached_list,
    |store: Store| async move {
        const ROUNDS: usize = 30;
        let (owner, a, b) = (950, 951, 952);
        users(&store, &[owner, a, b]).await;
        for friend in [a, b] {
            act(&store, owner, friend, invite()).await.unwrap();
            act(&store, friend, owner, Command::Accept).await.unwrap();
        }
        let uncached = store.uncached_lists();
        for round in 0..ROUNDS {
            // Both of the owner's friends rename at once while readers refill the owner's
            // cached page: each rename must move the owner's stamp past what the other's did.
            let results = race(&store, move |s, i| async move {
                match i {
                    0 | 1 => {
                        let who = [a, b][i];
                        let name = ProfileChange::Nickname(format!("{who} renamed {round}"));
                        s.update_profile(uid(who), name, NOW).await
                    }
                    _ => read_friend_list(&s, owner).await,
                }
            })
            .await;
            let fresh = fresh_after_race(&store, &uncached, owner, &results, round).await;
            let names: Vec<&str> = fresh.iter().map(|r| r.user.nickname.as_str()).collect();
            let a_name = format!("{a} renamed {round}");
            let b_name = format!("{b} renamed {round}");
            assert_eq!(names, [a_name.as_str(), b_name.as_str()], "round {round}");
        }
    }
);

both_backends!(
    a_takeover_racing_a_new_friendship_leaves_no_stale_cached_list,
    |store: Store| async move {
        const ROUNDS: i64 = 30;
        let ids: Vec<i64> = (0..ROUNDS * 2).map(|i| 1000 + i).collect();
        users(&store, &ids).await;
        let uncached = store.uncached_lists();
        for round in 0..ROUNDS {
            let (owner, other) = (1000 + 2 * round, 1001 + 2 * round);
            let tok = format!("tok-{round}");
            verify(&store, &phone(u32::try_from(other).unwrap()), &tok).await;
            // The owner invites a placeholder while its phone's owner signs up and takes it
            // over: the takeover renames a user the owner's list may just have gained.
            let results = race(&store, move |s, i| {
                let tok = tok.clone();
                async move {
                    match i {
                        0 => act(&s, owner, other, invite()).await.map(|_| ()),
                        1 => {
                            let account = account(5000 + round, &format!("taken {round}"));
                            let id = s.register(&tok, account).await?;
                            assert_eq!(id, uid(other));
                            Ok(())
                        }
                        _ => read_friend_list(&s, owner).await,
                    }
                }
            })
            .await;
            let fresh = fresh_after_race(&store, &uncached, owner, &results, round).await;
            assert_eq!(fresh.len(), 1, "round {round}");
            assert_eq!(fresh[0].user.nickname, format!("taken {round}"));
            assert!(fresh[0].user.registered);
        }
    }
);

// ---------------------------------------------------------------- transitions committed together

/// A store on `db` that commits transitions together, one transaction at a time: transitions
/// asked for while one commits wait, and share the next.
fn one_batch_at_a_time(db: &crate::testing::TestDb) -> Store {
    Store::open(
        db.url(),
        StoreOptions {
            pool_size: 2,
            connect_timeout: Duration::from_secs(10),
            worker_connections: 2,
            transition_batches: Some(1),
            ..StoreOptions::default()
        },
    )
    .unwrap()
}

/// `$body` (an async closure of a store) as a test on each backend, with
/// [`one_batch_at_a_time`]'s store.
macro_rules! batched_on_both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread")]
            async fn sqlite() {
                let db = crate::testing::TestDb::sqlite();
                ($body)(one_batch_at_a_time(&db)).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn postgres() {
                let Some(db) = crate::testing::TestDb::postgres() else {
                    return;
                };
                ($body)(one_batch_at_a_time(&db)).await;
            }
        }
    };
}

crate::both_backends!(
    transition_batches_default_to_the_backends_own,
    |store: Store| async move {
        let expected = match store.backend() {
            "postgres" => crate::DEFAULT_TRANSITION_BATCHES_POSTGRES,
            _ => crate::DEFAULT_TRANSITION_BATCHES_SQLITE,
        };
        assert_eq!(store.transition_drainers(), Some(expected));
    }
);

/// Starts an invite from `me` to `other` whose decision takes 300 ms: it holds the only batch
/// while the transitions asked for after it queue.
fn slow_invite(store: &Store, me: i64, other: i64) -> tokio::task::JoinHandle<Transition> {
    let s = store.clone();
    let ctx = Context::new(NOW, RequestId::from_random(rand::random()));
    tokio::spawn(async move {
        s.transition(
            uid(me),
            uid(other),
            Box::new(move |pair, _| {
                std::thread::sleep(Duration::from_millis(300));
                apply(pair, &invite(), &ctx)
            }),
        )
        .await
        .unwrap()
    })
}

/// Runs each `(me, other, cmd)` at once; their answers in the same order.
async fn all_at_once(
    store: &Store,
    commands: Vec<(i64, i64, Command)>,
) -> Vec<Result<Transition, DomainError>> {
    let tasks: Vec<_> = commands
        .into_iter()
        .map(|(me, other, cmd)| {
            let s = store.clone();
            tokio::spawn(async move { act(&s, me, other, cmd).await })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

/// Every user's change log holds one entry per version, 1 to the version, and the database
/// keeps every invariant.
async fn assert_logs_whole(store: &Store, ids: &[i64]) {
    for &id in ids {
        let versions: Vec<i64> = changes_of(store, uid(id))
            .await
            .iter()
            .map(|c| c.0)
            .collect();
        let expected: Vec<i64> = (1..=version_of(store, uid(id)).await).collect();
        assert_eq!(versions, expected, "user {id}");
    }
    let report = crate::invariants::check(store).await.unwrap();
    assert!(report.is_clean(), "{report:?}");
}

batched_on_both_backends!(
    transitions_asked_for_at_once_commit_together_each_with_its_own_answer,
    |store: Store| async move {
        let ids: Vec<i64> = (1..=40).collect();
        users(&store, &ids).await;
        act(&store, 5, 6, Command::Follow).await.unwrap();

        let slow = slow_invite(&store, 1, 2);
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Twelve new requests; one refused by a rule (no request to accept); 5 follows 6 already,
        // and 6 now invites 5; two crossed invites on one pair, which cannot share a transaction.
        let mut commands: Vec<(i64, i64, Command)> = (0..12)
            .map(|i| (11 + 2 * i, 12 + 2 * i, invite()))
            .collect();
        commands.push((7, 8, Command::Accept));
        commands.push((6, 5, invite()));
        commands.push((3, 4, invite()));
        commands.push((4, 3, invite()));
        let answers = all_at_once(&store, commands).await;
        assert_eq!(
            slow.await.unwrap().outcome,
            Outcome::Invite(InviteOutcome::Sent)
        );

        for (i, answer) in answers[..12].iter().enumerate() {
            let t = answer.as_ref().unwrap();
            assert_eq!(t.outcome, Outcome::Invite(InviteOutcome::Sent), "{i}");
            let (me, other) = (11 + 2 * i as i64, 12 + 2 * i as i64);
            let p = pair_of(&store, me, other).await;
            assert_eq!(p.mine.friendship, Friendship::Requested);
            assert_eq!(p, t.pair, "the answer is the stored pair");
        }
        assert_eq!(answers[12], Err(DomainError::NotFound("friend_request")));
        assert_eq!(pair_of(&store, 7, 8).await, Pair::default());
        let p = pair_of(&store, 6, 5).await;
        assert!(p.mine.pending_outgoing() && p.theirs.following, "{p:?}");
        // The second invite on (3, 4) saw the first's request, and accepted it.
        assert!(answers[14].is_ok() && answers[15].is_ok(), "{answers:?}");
        assert!(pair_of(&store, 3, 4).await.mine.is_friend());

        let batcher = store.batcher().unwrap();
        assert!(
            batcher.largest_committed() > 1,
            "the queued transitions shared a transaction"
        );
        assert_logs_whole(&store, &ids).await;
    }
);

batched_on_both_backends!(
    a_transition_that_breaks_its_batch_fails_alone,
    |store: Store| async move {
        let ids: Vec<i64> = (1..=20).collect();
        users(&store, &ids).await;

        let slow = slow_invite(&store, 1, 2);
        tokio::time::sleep(Duration::from_millis(100)).await;
        // User 999 does not exist: the batch's upsert fails on the foreign key, for all of them.
        let mut commands: Vec<(i64, i64, Command)> =
            (0..6).map(|i| (3 + 2 * i, 4 + 2 * i, invite())).collect();
        commands.insert(3, (15, 999, invite()));
        let answers = all_at_once(&store, commands).await;
        slow.await.unwrap();

        assert_eq!(
            answers[3].as_ref().unwrap_err(),
            &DomainError::NotFound("user")
        );
        for (i, answer) in answers.iter().enumerate().filter(|(i, _)| *i != 3) {
            assert_eq!(
                answer.as_ref().unwrap().outcome,
                Outcome::Invite(InviteOutcome::Sent),
                "{i}"
            );
        }
        for i in 0..6 {
            let p = pair_of(&store, 3 + 2 * i, 4 + 2 * i).await;
            assert_eq!(p.mine.friendship, Friendship::Requested, "{i}");
        }
        assert_logs_whole(&store, &ids).await;
    }
);

/// Users 1–4 for the counterpart tests: 2 registered without friend verification, 3
/// registered with it, 1 and 4 placeholders.
async fn counterpart_users(store: &Store) {
    users(store, &[1, 2, 3, 4]).await;
    store
        .serial_write(|c| {
            for (id, verification) in [(2, false), (3, true)] {
                diesel::update(users::table.find(id))
                    .set((
                        users::registered.eq(true),
                        users::friend_verification.eq(verification),
                    ))
                    .execute(c)?;
            }
            Ok(())
        })
        .await
        .unwrap();
}

/// Which other user each decision was given, by the id it was asked about.
type Seen = Arc<std::sync::Mutex<Vec<(i64, Option<Counterpart>)>>>;

/// A follow of user 1 on `other` that records the counterpart its decision was given, and is
/// refused (writing nothing) when there is none.
async fn follow_seeing(store: &Store, other: i64, seen: Seen) -> Result<Transition, DomainError> {
    let ctx = Context::new(NOW, RequestId::from_random(rand::random()));
    store
        .transition(
            uid(1),
            uid(other),
            Box::new(move |pair, them| {
                seen.lock().unwrap().push((other, them));
                match them {
                    Some(_) => apply(pair, &Command::Follow, &ctx),
                    None => Err(DomainError::NotFound("user")),
                }
            }),
        )
        .await
}

/// What each decision of user 1's follows of 2, 3, 4 and 999 (unknown) was given, and that
/// only the unknown one was refused.
async fn assert_counterparts(
    store: &Store,
    seen: &std::sync::Mutex<Vec<(i64, Option<Counterpart>)>>,
    answers: &[Result<Transition, DomainError>],
) {
    let registered = |friend_verification| {
        Some(Counterpart {
            registered: true,
            friend_verification,
        })
    };
    let placeholder = Some(Counterpart {
        registered: false,
        friend_verification: true,
    });
    let mut seen: Vec<_> = seen.lock().unwrap().clone();
    seen.sort_by_key(|&(other, _)| other);
    seen.dedup();
    assert_eq!(
        seen,
        [
            (2, registered(false)),
            (3, registered(true)),
            (4, placeholder),
            (999, None)
        ]
    );
    for (answer, other) in answers.iter().zip([2, 3, 4]) {
        assert!(answer.as_ref().unwrap().mine_changed, "{other}");
        assert!(pair_of(store, 1, other).await.mine.following, "{other}");
    }
    assert_eq!(answers[3], Err(DomainError::NotFound("user")));
    assert_eq!(row_keys(store).await, [(1, 2), (1, 3), (1, 4)]);
}

/// A transition alone, on each of the ways a store runs one: the blocking pool (SQLite, and
/// PostgreSQL without worker connections) and a worker's own PostgreSQL connection.
#[tokio::test(flavor = "multi_thread")]
async fn a_decision_is_given_the_other_user_as_its_transaction_reads_them() {
    let mut dbs = vec![("sqlite", crate::testing::TestDb::sqlite())];
    if let Some(db) = crate::testing::TestDb::postgres() {
        dbs.push(("postgres", db));
    }
    for (backend, db) in &dbs {
        for worker_connections in [0, 2] {
            let store = Store::open(
                db.url(),
                StoreOptions {
                    pool_size: 2,
                    worker_connections,
                    transition_batches: Some(0),
                    ..StoreOptions::default()
                },
            )
            .unwrap();
            store
                .serial_write(|c| {
                    // The last round's users, rows and change logs.
                    diesel::delete(relationships::table).execute(c)?;
                    diesel::delete(changes::table).execute(c)?;
                    diesel::delete(users::table).execute(c)?;
                    Ok(())
                })
                .await
                .unwrap();
            counterpart_users(&store).await;
            let seen = Arc::default();
            let mut answers = Vec::new();
            for other in [2, 3, 4, 999] {
                answers.push(follow_seeing(&store, other, Arc::clone(&seen)).await);
            }
            eprintln!("{backend}, {worker_connections} worker connections");
            assert_counterparts(&store, &seen, &answers).await;
        }
    }
}

batched_on_both_backends!(
    a_batch_gives_each_decision_its_own_other_user,
    |store: Store| async move {
        counterpart_users(&store).await;
        users(&store, &[5, 6]).await;
        let slow = slow_invite(&store, 5, 6);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let seen = Arc::default();
        let tasks: Vec<_> = [2, 3, 4, 999]
            .into_iter()
            .map(|other| {
                let (s, seen) = (store.clone(), Arc::clone(&seen));
                tokio::spawn(async move { follow_seeing(&s, other, seen).await })
            })
            .collect();
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.unwrap());
        }
        slow.await.unwrap();
        assert!(
            store.batcher().unwrap().largest_committed() > 1,
            "the follows shared a transaction"
        );
        // The slow invite's rows are there too.
        store
            .serial_write(|c| {
                diesel::delete(relationships::table.filter(relationships::owner.gt(4)))
                    .execute(c)?;
                Ok(())
            })
            .await
            .unwrap();
        assert_counterparts(&store, &seen, &answers).await;
    }
);
