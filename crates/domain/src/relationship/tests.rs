//! Table tests for each relationship rule, and an exhaustive walk of every reachable pair state.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashSet, VecDeque};

use super::*;

const T0: Millis = 1_700_000_000_000;
const HOUR: Millis = 60 * 60 * 1000;

fn rid(n: i64) -> RequestId {
    RequestId::new(n).unwrap()
}

fn ctx(now: Millis) -> Context {
    Context::new(now, rid(7))
}

fn ctx_id(now: Millis, id: i64) -> Context {
    Context::new(now, rid(id))
}

fn invite(message: Option<&str>) -> Command {
    Command::Invite {
        message: message.map(str::to_owned),
    }
}

fn resend(message: Option<&str>) -> Command {
    Command::Resend {
        message: message.map(str::to_owned),
    }
}

/// Applies a command done by `me` and returns the transition, failing the test on error.
fn run(pair: &Pair, cmd: &Command, ctx: &Context) -> Transition {
    apply(pair, cmd, ctx).unwrap_or_else(|e| panic!("{cmd:?} on {pair:?} failed: {e}"))
}

/// Applies a command done by `other`, reported from `me`'s point of view.
fn by_them(pair: &Pair, cmd: &Command, ctx: &Context) -> DomainResult<Transition> {
    apply(&pair.clone().swap(), cmd, ctx).map(|t| Transition {
        pair: t.pair.swap(),
        outcome: t.outcome,
        mine_changed: t.theirs_changed,
        theirs_changed: t.mine_changed,
        events: t.events,
    })
}

fn run_them(pair: &Pair, cmd: &Command, ctx: &Context) -> Transition {
    by_them(pair, cmd, ctx).unwrap_or_else(|e| panic!("their {cmd:?} on {pair:?} failed: {e}"))
}

fn statuses(pair: &Pair) -> (Option<i32>, Option<i32>) {
    (
        pair.mine.friendship.sealtalk_status(),
        pair.theirs.friendship.sealtalk_status(),
    )
}

/// I sent a request at T0 with message "hi".
fn requested() -> Pair {
    run(&Pair::default(), &invite(Some("hi")), &ctx(T0)).pair
}

/// They sent me a request at T0.
fn requested_by() -> Pair {
    requested().swap()
}

fn friends() -> Pair {
    run(&requested_by(), &Command::Accept, &ctx(T0 + HOUR)).pair
}

fn with_block(mut pair: Pair, mine: bool, theirs: bool) -> Pair {
    pair.mine.blocking = mine;
    pair.theirs.blocking = theirs;
    pair
}

// ---- invite ------------------------------------------------------------------------------

#[test]
fn fresh_invite_sends_a_request_with_one_id_on_both_sides() {
    let t = run(&Pair::default(), &invite(Some("hi")), &ctx(T0));
    assert_eq!(t.outcome, Outcome::Invite(InviteOutcome::Sent));
    assert_eq!(statuses(&t.pair), (Some(10), Some(11)));
    assert!(t.mine_changed && t.theirs_changed);
    assert_eq!(t.events, vec![Event::FriendRequested]);
    for side in [&t.pair.mine, &t.pair.theirs] {
        assert_eq!(side.request_id, Some(rid(7)));
        assert_eq!(side.request_message.as_deref(), Some("hi"));
        assert_eq!(side.request_at, Some(T0));
        assert_eq!((side.created_at, side.updated_at), (T0, T0));
    }
    assert!(t.pair.mine.pending_outgoing() && t.pair.theirs.pending_incoming());
    assert_eq!(check_pair(&t.pair), Ok(()));
}

#[test]
fn invite_after_their_request_adds_the_friend() {
    let t = run(&requested_by(), &invite(None), &ctx(T0 + HOUR));
    assert_eq!(t.outcome, Outcome::Invite(InviteOutcome::Added));
    assert_eq!(statuses(&t.pair), (Some(20), Some(20)));
    assert_eq!(t.pair.mine.friends_since, Some(T0 + HOUR));
    assert_eq!(t.pair.mine.request_id, None);
    assert_eq!(t.pair.theirs.request_message, None);
    assert_eq!(t.events, vec![Event::FriendAdded]);

    // An ignored request still counts: inviting back means I changed my mind.
    let ignored = run(&requested_by(), &Command::Ignore, &ctx(T0 + 1)).pair;
    let t = run(&ignored, &invite(None), &ctx(T0 + 2));
    assert_eq!(t.outcome, Outcome::Invite(InviteOutcome::Added));
    assert_eq!(statuses(&t.pair), (Some(20), Some(20)));
    assert_eq!(t.pair.mine.ignored_at, None);
}

#[test]
fn invite_without_verification_adds_directly() {
    let c = Context {
        they_require_verification: false,
        ..ctx(T0)
    };
    let t = run(&Pair::default(), &invite(Some("yo")), &c);
    assert_eq!(t.outcome, Outcome::Invite(InviteOutcome::AddDirectly));
    assert_eq!(statuses(&t.pair), (Some(20), Some(20)));
    assert_eq!(t.pair.theirs.friends_since, Some(T0));
    assert_eq!(t.pair.mine.request_message, None);

    // A pending request of mine is completed too.
    let t = run(&requested(), &invite(None), &Context { now: T0 + 1, ..c });
    assert_eq!(t.outcome, Outcome::Invite(InviteOutcome::AddDirectly));
    assert_eq!(check_pair(&t.pair), Ok(()));
}

#[test]
fn invite_when_they_block_me_shows_nothing_and_changes_nothing() {
    for base in [Pair::default(), friends(), {
        let mut p = Pair::default();
        p.mine.friendship = Friendship::Deleted;
        p.theirs.friendship = Friendship::Deleted;
        p
    }] {
        let pair = with_block(base, false, true);
        for verification in [true, false] {
            let c = Context {
                they_require_verification: verification,
                ..ctx(T0)
            };
            let t = run(&pair, &invite(Some("hi")), &c);
            assert_eq!(t.outcome, Outcome::Invite(InviteOutcome::None));
            assert_eq!(t.pair, pair);
            assert!(!t.changed() && t.events.is_empty());
        }
    }
    // Even when both block, the blocked side learns nothing.
    let both = with_block(Pair::default(), true, true);
    assert_eq!(
        run(&both, &invite(None), &ctx(T0)).outcome,
        Outcome::Invite(InviteOutcome::None)
    );
}

#[test]
fn invite_when_i_block_them_is_a_conflict() {
    let pair = with_block(Pair::default(), true, false);
    assert_eq!(
        apply(&pair, &invite(None), &ctx(T0)),
        Err(DomainError::Conflict("blocked"))
    );
}

#[test]
fn invite_between_friends_is_refused() {
    assert_eq!(
        apply(&friends(), &invite(None), &ctx(T0)),
        Err(DomainError::AlreadyFriends)
    );
    // Blocking never ends a friendship, so my block is reported before the friendship.
    assert_eq!(
        apply(&with_block(friends(), true, false), &invite(None), &ctx(T0)),
        Err(DomainError::Conflict("blocked"))
    );
}

#[test]
fn invite_message_is_at_most_64_characters() {
    let long = "m".repeat(65);
    let err = apply(&Pair::default(), &invite(Some(&long)), &ctx(T0)).unwrap_err();
    assert!(matches!(
        err,
        DomainError::Invalid {
            field: "message",
            ..
        }
    ));
    let ok = "名".repeat(64);
    let t = run(&Pair::default(), &invite(Some(&ok)), &ctx(T0));
    assert_eq!(t.pair.theirs.request_message, Some(ok));
    // An empty message is no message.
    let t = run(&Pair::default(), &invite(Some("")), &ctx(T0));
    assert_eq!(t.pair.theirs.request_message, None);
}

#[test]
fn pending_request_is_not_resent_before_the_cooldown() {
    let pair = requested();
    let cd = Policy::default().pending_cooldown_ms;
    for now in [T0, T0 + 1, T0 + cd - 1, T0 - HOUR] {
        let t = run(&pair, &invite(Some("again")), &ctx_id(now, 99));
        assert_eq!(t.outcome, Outcome::Invite(InviteOutcome::None), "at {now}");
        assert_eq!(t.pair, pair);
        assert!(!t.changed());
    }
    let t = run(&pair, &invite(Some("again")), &ctx_id(T0 + cd, 99));
    assert_eq!(t.outcome, Outcome::Invite(InviteOutcome::Sent));
    assert_eq!(statuses(&t.pair), (Some(10), Some(11)));
    for side in [&t.pair.mine, &t.pair.theirs] {
        assert_eq!(side.request_id, Some(rid(7)), "the id is kept");
        assert_eq!(side.request_at, Some(T0 + cd));
        assert_eq!(side.request_message.as_deref(), Some("again"));
        assert_eq!(side.created_at, T0);
        assert_eq!(side.updated_at, T0 + cd);
    }
    // Re-sending without a message keeps the earlier one.
    let t = run(&pair, &invite(None), &ctx(T0 + cd));
    assert_eq!(t.pair.theirs.request_message.as_deref(), Some("hi"));
}

#[test]
fn ignored_request_is_resent_only_after_both_cooldowns() {
    let policy = Policy::default();
    let (pending, ignored) = (policy.pending_cooldown_ms, policy.ignored_cooldown_ms);

    // Ignored late: the ignore cooldown outlasts the pending one.
    let ignore_at = T0 + pending - HOUR;
    let pair = run_them(&requested(), &Command::Ignore, &ctx(ignore_at)).pair;
    assert_eq!(statuses(&pair), (Some(10), Some(21)));
    for now in [T0 + pending, ignore_at + ignored - 1] {
        let t = run(&pair, &invite(None), &ctx(now));
        assert_eq!(t.outcome, Outcome::Invite(InviteOutcome::None), "at {now}");
        assert_eq!(t.pair, pair);
    }
    let t = run(&pair, &invite(Some("please")), &ctx(ignore_at + ignored));
    assert_eq!(t.outcome, Outcome::Invite(InviteOutcome::Sent));
    assert_eq!(statuses(&t.pair), (Some(10), Some(11)));
    assert_eq!(t.pair.theirs.ignored_at, None);
    assert_eq!(t.pair.theirs.request_id, Some(rid(7)));
    assert_eq!(t.pair.theirs.request_message.as_deref(), Some("please"));
    assert_eq!(check_pair(&t.pair), Ok(()));

    // Ignored at once: the pending cooldown still holds after the ignore cooldown.
    let pair = run_them(&requested(), &Command::Ignore, &ctx(T0)).pair;
    let t = run(&pair, &invite(None), &ctx(T0 + ignored));
    assert_eq!(t.outcome, Outcome::Invite(InviteOutcome::None));
    let t = run(&pair, &invite(None), &ctx(T0 + pending));
    assert_eq!(t.outcome, Outcome::Invite(InviteOutcome::Sent));
}

#[test]
fn invite_after_delete_or_withdraw_is_a_fresh_request() {
    let deleted = run(&friends(), &Command::Delete, &ctx(T0 + 2 * HOUR)).pair;
    let t = run(&deleted, &invite(None), &ctx_id(T0 + 3 * HOUR, 42));
    assert_eq!(t.outcome, Outcome::Invite(InviteOutcome::Sent));
    assert_eq!(statuses(&t.pair), (Some(10), Some(11)));
    assert_eq!(t.pair.mine.request_id, Some(rid(42)));

    let withdrawn = run(&requested(), &Command::Withdraw, &ctx(T0 + 1)).pair;
    let t = run(&withdrawn, &invite(None), &ctx_id(T0 + 2, 43));
    assert_eq!(t.outcome, Outcome::Invite(InviteOutcome::Sent));
    assert_eq!(t.pair.theirs.request_id, Some(rid(43)));
}

// ---- resend, accept, ignore, withdraw, delete ----------------------------------------------

#[test]
fn resend_refreshes_without_duplicating_and_without_cooldown() {
    let pair = requested();
    let t = run(&pair, &resend(Some("hello?")), &ctx_id(T0 + 1, 99));
    assert_eq!(t.outcome, Outcome::Done);
    assert_eq!(t.events, vec![Event::FriendRequested]);
    for side in [&t.pair.mine, &t.pair.theirs] {
        assert_eq!(side.request_id, Some(rid(7)));
        assert_eq!(side.request_at, Some(T0 + 1));
        assert_eq!(side.request_message.as_deref(), Some("hello?"));
    }
    let t = run(&t.pair, &resend(None), &ctx(T0 + 2));
    assert_eq!(t.pair.theirs.request_message.as_deref(), Some("hello?"));
    assert_eq!(check_pair(&t.pair), Ok(()));
}

#[test]
fn resend_needs_my_pending_request() {
    for pair in [Pair::default(), requested_by(), friends()] {
        assert_eq!(
            apply(&pair, &resend(None), &ctx(T0)),
            Err(DomainError::NotFound("friend_request"))
        );
    }
}

#[test]
fn resend_of_an_ignored_request_succeeds_silently() {
    let pair = run_them(&requested(), &Command::Ignore, &ctx(T0 + 1)).pair;
    let t = run(&pair, &resend(Some("x")), &ctx(T0 + 2));
    assert_eq!(t.outcome, Outcome::Unchanged);
    assert_eq!(t.pair, pair);
}

#[test]
fn accept_makes_friends_and_spends_the_request() {
    let t = run(&requested_by(), &Command::Accept, &ctx(T0 + HOUR));
    assert_eq!(t.outcome, Outcome::Done);
    assert_eq!(statuses(&t.pair), (Some(20), Some(20)));
    assert!(t.pair.mine.is_friend() && t.pair.theirs.is_friend());
    for side in [&t.pair.mine, &t.pair.theirs] {
        assert_eq!(side.friends_since, Some(T0 + HOUR));
        assert_eq!(
            (&side.request_id, &side.request_message, side.request_at),
            (&None, &None, None)
        );
    }
    let ignored = run(&requested_by(), &Command::Ignore, &ctx(T0 + 1)).pair;
    let t = run(&ignored, &Command::Accept, &ctx(T0 + 2));
    assert_eq!(statuses(&t.pair), (Some(20), Some(20)));
}

#[test]
fn accept_ignore_withdraw_of_what_is_not_mine_is_not_found() {
    let nf = Err(DomainError::NotFound("friend_request"));
    // I cannot accept or ignore my own request.
    for cmd in [Command::Accept, Command::Ignore] {
        for pair in [Pair::default(), requested(), friends()] {
            assert_eq!(apply(&pair, &cmd, &ctx(T0)), nf, "{cmd:?} on {pair:?}");
        }
    }
    // I cannot withdraw their request.
    for pair in [Pair::default(), requested_by(), friends()] {
        assert_eq!(apply(&pair, &Command::Withdraw, &ctx(T0)), nf);
    }
    let ignored = run(&requested_by(), &Command::Ignore, &ctx(T0)).pair;
    assert_eq!(apply(&ignored, &Command::Withdraw, &ctx(T0)), nf);
}

#[test]
fn ignore_is_hidden_from_the_requester_and_idempotent() {
    let t = run(&requested_by(), &Command::Ignore, &ctx(T0 + 5));
    assert_eq!(statuses(&t.pair), (Some(21), Some(10)));
    assert!(t.mine_changed && !t.theirs_changed);
    assert_eq!(t.pair.mine.ignored_at, Some(T0 + 5));
    assert!(!t.pair.mine.pending_incoming());
    assert!(t.pair.theirs.pending_outgoing());

    let again = run(&t.pair, &Command::Ignore, &ctx(T0 + 9));
    assert_eq!(again.outcome, Outcome::Unchanged);
    assert_eq!(again.pair.mine.ignored_at, Some(T0 + 5));
}

#[test]
fn withdraw_clears_the_request_on_both_sides() {
    for pair in [
        requested(),
        run_them(&requested(), &Command::Ignore, &ctx(T0)).pair,
    ] {
        let t = run(&pair, &Command::Withdraw, &ctx(T0 + 1));
        assert_eq!(statuses(&t.pair), (None, None));
        assert_eq!(t.events, vec![Event::RequestWithdrawn]);
        assert_eq!(t.pair.mine.request_id, None);
        assert_eq!(t.pair.theirs.ignored_at, None);
        assert!(t.pair.mine.is_empty() && t.pair.theirs.is_empty());
    }
}

#[test]
fn delete_marks_both_sides_30_and_keeps_remarks() {
    let mut pair = friends();
    pair.mine.display_name = Some("Bob".into());
    pair.mine.starred = true;
    let t = run(&pair, &Command::Delete, &ctx(T0 + 2 * HOUR));
    assert_eq!(statuses(&t.pair), (Some(30), Some(30)));
    assert_eq!(t.pair.mine.display_name.as_deref(), Some("Bob"));
    assert!(t.pair.mine.starred);
    assert_eq!(t.pair.mine.friends_since, None);
    assert!(t.mine_changed && t.theirs_changed);

    for pair in [Pair::default(), requested(), requested_by(), t.pair] {
        assert_eq!(
            apply(&pair, &Command::Delete, &ctx(T0)),
            Err(DomainError::NotFound("friend"))
        );
    }
}

#[test]
fn either_friend_may_delete() {
    let t = run_them(&friends(), &Command::Delete, &ctx(T0 + 2 * HOUR));
    assert_eq!(statuses(&t.pair), (Some(30), Some(30)));
}

// ---- follow, star, block ---------------------------------------------------------------

#[test]
fn follow_is_one_way_and_idempotent() {
    let t = run(&Pair::default(), &Command::Follow, &ctx(T0));
    assert!(t.pair.mine.following && !t.pair.theirs.following);
    assert!(t.mine_changed && !t.theirs_changed);
    assert_eq!(t.pair.mine.followed_at, Some(T0));
    let again = run(&t.pair, &Command::Follow, &ctx(T0 + 1));
    assert_eq!(again.outcome, Outcome::Unchanged);
    assert_eq!(again.pair.mine.followed_at, Some(T0));

    let off = run(&t.pair, &Command::Unfollow, &ctx(T0 + 2));
    assert_eq!(off.events, vec![Event::Unfollowed]);
    assert!(off.pair.mine.is_empty());
    let again = run(&off.pair, &Command::Unfollow, &ctx(T0 + 3));
    assert_eq!(again.outcome, Outcome::Unchanged);
}

#[test]
fn blocked_users_cannot_follow() {
    assert_eq!(
        apply(
            &with_block(Pair::default(), false, true),
            &Command::Follow,
            &ctx(T0)
        ),
        Err(DomainError::Forbidden("blocked"))
    );
    assert_eq!(
        apply(
            &with_block(Pair::default(), true, false),
            &Command::Follow,
            &ctx(T0)
        ),
        Err(DomainError::Conflict("blocked"))
    );
}

#[test]
fn star_and_unstar_are_idempotent() {
    let t = run(&Pair::default(), &Command::Star, &ctx(T0));
    assert!(t.pair.mine.starred);
    assert_eq!(t.events, vec![Event::Starred]);
    assert_eq!(
        run(&t.pair, &Command::Star, &ctx(T0)).outcome,
        Outcome::Unchanged
    );
    let off = run(&t.pair, &Command::Unstar, &ctx(T0));
    assert!(!off.pair.mine.starred);
    assert_eq!(
        run(&off.pair, &Command::Unstar, &ctx(T0)).outcome,
        Outcome::Unchanged
    );
}

#[test]
fn block_dissolves_requests_in_both_directions() {
    let ignored = run_them(&requested(), &Command::Ignore, &ctx(T0)).pair;
    let i_ignored = ignored.clone().swap();
    for pair in [requested(), requested_by(), ignored, i_ignored] {
        let t = run(&pair, &Command::Block, &ctx(T0 + HOUR));
        assert_eq!(statuses(&t.pair), (None, None), "{pair:?}");
        assert!(t.pair.mine.blocking);
        assert_eq!(t.pair.mine.blocked_at, Some(T0 + HOUR));
        assert_eq!(t.events, vec![Event::Blocked, Event::RequestDissolved]);
        for side in [&t.pair.mine, &t.pair.theirs] {
            assert_eq!(side.request_id, None);
            assert_eq!(side.ignored_at, None);
        }
        assert_eq!(check_pair(&t.pair), Ok(()));
        // The blocked user's side also dissolves when they are the one who blocks.
        let t = run_them(&pair, &Command::Block, &ctx(T0 + HOUR));
        assert_eq!(statuses(&t.pair), (None, None));
        assert!(t.pair.theirs.blocking && !t.pair.mine.blocking);
    }
}

#[test]
fn block_keeps_friendship_and_drops_follows() {
    let mut pair = friends();
    pair.mine.following = true;
    pair.theirs.following = true;
    let t = run(&pair, &Command::Block, &ctx(T0 + HOUR));
    assert_eq!(statuses(&t.pair), (Some(20), Some(20)));
    assert!(!t.pair.mine.following && !t.pair.theirs.following);
    assert_eq!(
        t.events,
        vec![Event::Blocked, Event::Unfollowed, Event::FollowerDropped]
    );
    assert!(t.mine_changed && t.theirs_changed);

    let again = run(&t.pair, &Command::Block, &ctx(T0 + 2 * HOUR));
    assert_eq!(again.outcome, Outcome::Unchanged);
    assert_eq!(again.pair.mine.blocked_at, Some(T0 + HOUR));

    // Blocked friends may still unfriend each other.
    let t = run_them(&t.pair, &Command::Delete, &ctx(T0 + 3 * HOUR));
    assert_eq!(statuses(&t.pair), (Some(30), Some(30)));
}

#[test]
fn block_of_a_stranger_writes_only_my_row() {
    let t = run(&Pair::default(), &Command::Block, &ctx(T0));
    assert!(t.mine_changed && !t.theirs_changed);
    assert_eq!(t.pair.mine.created_at, T0);
    let t = run(&t.pair, &Command::Unblock, &ctx(T0 + 1));
    assert_eq!(t.events, vec![Event::Unblocked]);
    assert!(t.pair.mine.is_empty());
    assert_eq!(
        run(&t.pair, &Command::Unblock, &ctx(T0 + 2)).outcome,
        Outcome::Unchanged
    );
}

#[test]
fn unblock_does_not_restore_anything() {
    let blocked = run(&requested(), &Command::Block, &ctx(T0)).pair;
    let t = run(&blocked, &Command::Unblock, &ctx(T0 + 1));
    assert_eq!(statuses(&t.pair), (None, None));
    assert!(!t.theirs_changed);
}

// ---- remarks and settings -------------------------------------------------------------

#[test]
fn remark_patch_leaves_sets_and_clears() {
    let patch = RemarkPatch {
        display_name: Some("Bob".into()),
        description: Some("met at work".into()),
        phone: Some("13912345678".into()),
        region: Some("86".into()),
        image_uri: Some("https://img.example/b.png".into()),
    };
    let t = run(&Pair::default(), &Command::SetRemark(patch), &ctx(T0));
    assert_eq!(t.events, vec![Event::RemarkChanged]);
    assert!(t.mine_changed && !t.theirs_changed);
    let s = &t.pair.mine;
    assert_eq!(s.display_name.as_deref(), Some("Bob"));
    assert_eq!(s.description.as_deref(), Some("met at work"));
    assert_eq!(s.remark_phone.as_deref(), Some("13912345678"));
    assert_eq!(s.remark_region.as_deref(), Some("86"));
    assert_eq!(
        s.remark_image_uri.as_deref(),
        Some("https://img.example/b.png")
    );

    // Only the given fields move; "" clears.
    let patch = RemarkPatch {
        display_name: Some(String::new()),
        region: Some("1".into()),
        ..RemarkPatch::default()
    };
    let t = run(&t.pair, &Command::SetRemark(patch), &ctx(T0 + 1));
    let s = &t.pair.mine;
    assert_eq!(s.display_name, None);
    assert_eq!(s.remark_region.as_deref(), Some("1"));
    assert_eq!(s.description.as_deref(), Some("met at work"));

    // An empty patch, or setting what is there, changes nothing.
    let same = run(
        &t.pair,
        &Command::SetRemark(RemarkPatch::default()),
        &ctx(T0 + 2),
    );
    assert_eq!(same.outcome, Outcome::Unchanged);
    let same = run(
        &t.pair,
        &Command::SetRemark(RemarkPatch {
            region: Some("1".into()),
            ..RemarkPatch::default()
        }),
        &ctx(T0 + 2),
    );
    assert_eq!(same.outcome, Outcome::Unchanged);
}

#[test]
fn bad_remark_fields_are_refused_whole() {
    let cases = [
        (
            RemarkPatch {
                display_name: Some("n".repeat(33)),
                ..RemarkPatch::default()
            },
            "displayName",
        ),
        (
            RemarkPatch {
                description: Some("d".repeat(501)),
                ..RemarkPatch::default()
            },
            "description",
        ),
        (
            RemarkPatch {
                phone: Some("1".repeat(33)),
                ..RemarkPatch::default()
            },
            "phone",
        ),
        (
            RemarkPatch {
                region: Some("8\u{0}6".into()),
                ..RemarkPatch::default()
            },
            "region",
        ),
        (
            RemarkPatch {
                display_name: Some("fine".into()),
                image_uri: Some("ftp://x/y".into()),
                ..RemarkPatch::default()
            },
            "imageUri",
        ),
    ];
    for (patch, field) in cases {
        match apply(&friends(), &Command::SetRemark(patch), &ctx(T0)) {
            Err(DomainError::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    let ok = RemarkPatch {
        display_name: Some("名".repeat(32)),
        description: Some("d".repeat(500)),
        ..RemarkPatch::default()
    };
    assert!(apply(&friends(), &Command::SetRemark(ok), &ctx(T0)).is_ok());
}

#[test]
fn conv_type_and_phone_visibility() {
    for ct in [ConvType::Normal, ConvType::Sticky, ConvType::Archive] {
        assert_eq!(ConvType::parse(ct.as_str()), Ok(ct));
    }
    assert!(matches!(
        ConvType::parse("Sticky"),
        Err(DomainError::Invalid {
            field: "conv_type",
            ..
        })
    ));
    let t = run(
        &Pair::default(),
        &Command::SetConvType(ConvType::Sticky),
        &ctx(T0),
    );
    assert_eq!(t.pair.mine.conv_type, ConvType::Sticky);
    assert_eq!(t.events, vec![Event::ConvTypeChanged]);
    let t = run(&t.pair, &Command::SetConvType(ConvType::Normal), &ctx(T0));
    assert!(t.pair.mine.is_empty());

    let t = run(&Pair::default(), &Command::SetPhoneVisible(true), &ctx(T0));
    assert!(t.pair.mine.phone_visible && !t.theirs_changed);
    assert_eq!(
        run(&t.pair, &Command::SetPhoneVisible(true), &ctx(T0)).outcome,
        Outcome::Unchanged
    );
}

// ---- helpers --------------------------------------------------------------------------

#[test]
fn statuses_and_names() {
    let expected = [None, Some(10), Some(11), Some(20), Some(21), Some(30)];
    for (f, status) in Friendship::ALL.into_iter().zip(expected) {
        assert_eq!(f.sealtalk_status(), status);
        assert_eq!(Friendship::parse(f.as_str()), Some(f));
    }
    assert_eq!(Friendship::parse("Friends"), None);
    let names: Vec<_> = [
        InviteOutcome::Added,
        InviteOutcome::None,
        InviteOutcome::Sent,
        InviteOutcome::AddDirectly,
    ]
    .iter()
    .map(InviteOutcome::as_str)
    .collect();
    assert_eq!(names, ["Added", "None", "Sent", "AddDirectly"]);
}

#[test]
fn empty_side_and_swap() {
    assert!(Side::empty().is_empty());
    assert_eq!(Side::empty(), Side::default());
    let mut s = Side::empty();
    s.friendship = Friendship::Deleted;
    assert!(!s.is_empty(), "a deleted friendship is still listed (30)");
    let mut s = Side::empty();
    s.updated_at = 5;
    assert!(s.is_empty());

    let pair = requested();
    let swapped = pair.clone().swap();
    assert_eq!(swapped.mine, pair.theirs);
    assert_eq!(swapped.swap(), pair);
}

#[test]
fn check_pair_names_broken_invariants() {
    let mut p = friends();
    p.theirs.friendship = Friendship::None;
    assert!(check_pair(&p).is_err());

    let mut p = requested();
    p.theirs.friendship = Friendship::Requested;
    assert!(check_pair(&p).is_err(), "both requested");

    let mut p = requested();
    p.theirs.request_id = Some(rid(8));
    assert!(check_pair(&p).is_err());

    let mut p = requested();
    p.theirs.request_id = None;
    assert!(check_pair(&p).is_err());

    let p = with_block(requested(), false, true);
    assert!(check_pair(&p).is_err());

    let mut p = with_block(Pair::default(), true, false);
    p.theirs.following = true;
    assert!(check_pair(&p).is_err());

    let mut p = Pair::default();
    p.mine.friendship = Friendship::Deleted;
    assert_eq!(check_pair(&p), Ok(()));
    p.theirs.friendship = Friendship::Friends;
    assert!(check_pair(&p).is_err());

    assert_eq!(check_pair(&with_block(friends(), true, true)), Ok(()));
}

// ---- exhaustive ---------------------------------------------------------------------------

/// Every command, with valid and invalid inputs.
fn all_commands() -> Vec<Command> {
    let mut cmds = vec![
        invite(None),
        invite(Some("hi")),
        invite(Some(&"m".repeat(65))),
        resend(None),
        resend(Some("again")),
        resend(Some(&"m".repeat(65))),
        Command::Accept,
        Command::Ignore,
        Command::Withdraw,
        Command::Delete,
        Command::Follow,
        Command::Unfollow,
        Command::Star,
        Command::Unstar,
        Command::Block,
        Command::Unblock,
        Command::SetConvType(ConvType::Sticky),
        Command::SetConvType(ConvType::Normal),
        Command::SetPhoneVisible(true),
        Command::SetPhoneVisible(false),
    ];
    for patch in [
        RemarkPatch {
            display_name: Some("Bob".into()),
            image_uri: Some("http://x.y/z".into()),
            ..RemarkPatch::default()
        },
        RemarkPatch {
            display_name: Some(String::new()),
            image_uri: Some(String::new()),
            ..RemarkPatch::default()
        },
        RemarkPatch {
            description: Some("d".repeat(501)),
            ..RemarkPatch::default()
        },
    ] {
        cmds.push(Command::SetRemark(patch));
    }
    cmds
}

/// The commands whose results the walk explores further; the rest are orthogonal to the
/// relationship itself and are only checked on each state.
fn explores(cmd: &Command) -> bool {
    !matches!(
        cmd,
        Command::SetRemark(_) | Command::SetConvType(_) | Command::SetPhoneVisible(_)
    )
}

/// The pair with every instant and id reduced to whether it is set: the walk's state key.
fn shape(pair: &Pair) -> Pair {
    let flat = |s: &Side| Side {
        request_id: s.request_id.map(|_| rid(1)),
        request_at: s.request_at.map(|_| 0),
        ignored_at: s.ignored_at.map(|_| 0),
        friends_since: s.friends_since.map(|_| 0),
        followed_at: s.followed_at.map(|_| 0),
        blocked_at: s.blocked_at.map(|_| 0),
        created_at: 0,
        updated_at: 0,
        ..s.clone()
    };
    Pair {
        mine: flat(&pair.mine),
        theirs: flat(&pair.theirs),
    }
}

/// The checks every single application must pass, from any valid state.
fn check_step(before: &Pair, cmd: &Command, c: &Context, result: &DomainResult<Transition>) {
    let Ok(t) = result else { return };
    let what = || format!("{cmd:?} at {} on {before:?} gave {t:?}", c.now);
    assert_eq!(check_pair(&t.pair), Ok(()), "{}", what());
    assert_eq!(t.mine_changed, t.pair.mine != before.mine, "{}", what());
    assert_eq!(
        t.theirs_changed,
        t.pair.theirs != before.theirs,
        "{}",
        what()
    );
    if t.changed() {
        assert!(!matches!(
            t.outcome,
            Outcome::Unchanged | Outcome::Invite(InviteOutcome::None)
        ));
        assert!(!t.events.is_empty(), "{}", what());
    } else {
        assert_eq!(&t.pair, before, "{}", what());
        assert!(t.events.is_empty(), "{}", what());
        assert_ne!(t.outcome, Outcome::Done, "{}", what());
    }
    for (changed, side) in [
        (t.mine_changed, &t.pair.mine),
        (t.theirs_changed, &t.pair.theirs),
    ] {
        if changed {
            assert_eq!(side.updated_at, c.now, "{}", what());
        }
    }
    if matches!(cmd, Command::Invite { .. }) {
        assert!(matches!(t.outcome, Outcome::Invite(_)), "{}", what());
    }
    if before.theirs.blocking
        && matches!(cmd, Command::Invite { message } if message.as_deref() != Some(&"m".repeat(65)))
    {
        assert_eq!(
            t.outcome,
            Outcome::Invite(InviteOutcome::None),
            "{}",
            what()
        );
    }
    // A row leaves friendship `none` only in a step that changes the other row too. The store
    // relies on it: a user's profile fan-out reaches every friend list that shows them, because
    // a new entry in one bumps the listed user's version, which waits for that user's lock.
    let enters =
        |b: &Side, a: &Side| b.friendship == Friendship::None && a.friendship != Friendship::None;
    if enters(&before.mine, &t.pair.mine) || enters(&before.theirs, &t.pair.theirs) {
        assert!(t.mine_changed && t.theirs_changed, "{}", what());
    }
    // A block can never make or end a friendship.
    if matches!(cmd, Command::Block | Command::Unblock) {
        assert_eq!(
            t.pair.mine.is_friend(),
            before.mine.is_friend(),
            "{}",
            what()
        );
    }
}

#[test]
fn every_reachable_state_keeps_the_invariants() {
    let policy = Policy::default();
    let advances = [
        0,
        1,
        policy.ignored_cooldown_ms,
        policy.pending_cooldown_ms,
        policy.pending_cooldown_ms + policy.ignored_cooldown_ms,
    ];
    let cmds = all_commands();
    let mut seen = HashSet::new();
    let mut queue = VecDeque::new();
    let start = (Pair::default(), T0);
    seen.insert(shape(&start.0));
    queue.push_back(start);
    let mut next_id = 100;
    let mut applied = 0usize;
    let mut friendships = HashSet::new();

    while let Some((pair, now)) = queue.pop_front() {
        assert_eq!(check_pair(&pair), Ok(()), "{pair:?}");
        friendships.insert((pair.mine.friendship, pair.theirs.friendship));
        for adv in advances {
            for verification in [true, false] {
                next_id += 1;
                let c = Context {
                    now: now + adv,
                    new_request_id: rid(next_id),
                    policy,
                    they_require_verification: verification,
                };
                for cmd in &cmds {
                    // Each user acts in turn; `view` is the pair as the actor sees it.
                    for view in [pair.clone(), pair.clone().swap()] {
                        let snapshot = view.clone();
                        let result = apply(&view, cmd, &c);
                        applied += 1;
                        assert_eq!(view, snapshot);
                        check_step(&view, cmd, &c, &result);
                        if let Ok(t) = result {
                            if explores(cmd) && seen.insert(shape(&t.pair)) {
                                queue.push_back((t.pair, c.now));
                            }
                        }
                    }
                }
            }
        }
    }

    use Friendship as F;
    for expected in [
        (F::None, F::None),
        (F::Requested, F::RequestedBy),
        (F::RequestedBy, F::Requested),
        (F::Requested, F::Ignored),
        (F::Ignored, F::Requested),
        (F::Friends, F::Friends),
        (F::Deleted, F::Deleted),
    ] {
        assert!(
            friendships.contains(&expected),
            "{expected:?} never reached"
        );
    }
    assert!(seen.len() > 100, "only {} states", seen.len());
    assert!(applied > 10_000);
}

/// Arbitrary pairs, valid or not, with extreme instants: nothing may panic or overflow.
#[test]
fn apply_is_total_on_arbitrary_pairs() {
    let cmds = all_commands();
    let extremes = [Millis::MIN, -1, 0, Millis::MAX];
    let policies = [
        Policy::default(),
        Policy {
            pending_cooldown_ms: Millis::MAX,
            ignored_cooldown_ms: Millis::MIN,
        },
    ];
    let mut count = 0usize;
    for fm in Friendship::ALL {
        for ft in Friendship::ALL {
            for bits in 0u8..32 {
                let mut pair = Pair::default();
                pair.mine.friendship = fm;
                pair.theirs.friendship = ft;
                pair.mine.blocking = bits & 1 != 0;
                pair.theirs.blocking = bits & 2 != 0;
                pair.mine.following = bits & 4 != 0;
                pair.theirs.following = bits & 8 != 0;
                if bits & 16 != 0 {
                    pair.mine.request_id = Some(rid(1));
                    pair.theirs.request_id = Some(rid(2));
                    pair.mine.request_at = Some(Millis::MAX);
                    pair.theirs.request_at = Some(Millis::MIN);
                    pair.theirs.ignored_at = Some(Millis::MIN);
                    pair.mine.ignored_at = Some(Millis::MAX);
                }
                for now in extremes {
                    for policy in policies {
                        let c = Context { policy, ..ctx(now) };
                        for cmd in &cmds {
                            let snapshot = pair.clone();
                            if let Ok(t) = apply(&pair, cmd, &c) {
                                if !t.changed() {
                                    assert_eq!(t.pair, pair);
                                }
                                // Whatever the input, a block leaves no request across it.
                                if matches!(cmd, Command::Block) {
                                    assert!(!t.pair.mine.friendship.has_request());
                                    assert!(!t.pair.theirs.friendship.has_request());
                                }
                            }
                            assert_eq!(pair, snapshot);
                            count += 1;
                        }
                    }
                }
            }
        }
    }
    assert!(count > 1000);
}
