//! Random command sequences among a few users: the cross-side invariants hold after every step.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

const USERS: usize = 5;
const DAY: Millis = 24 * 60 * 60 * 1000;

fn command() -> impl Strategy<Value = Command> {
    let message = prop_oneof![
        Just(None),
        Just(Some("hi".to_owned())),
        Just(Some(String::new())),
        Just(Some("m".repeat(65))),
    ];
    prop_oneof![
        4 => message.clone().prop_map(|message| Command::Invite { message }),
        2 => message.prop_map(|message| Command::Resend { message }),
        3 => Just(Command::Accept),
        2 => Just(Command::Ignore),
        2 => Just(Command::Withdraw),
        2 => Just(Command::Delete),
        2 => Just(Command::Follow),
        1 => Just(Command::Unfollow),
        1 => Just(Command::Star),
        1 => Just(Command::Unstar),
        2 => Just(Command::Block),
        2 => Just(Command::Unblock),
        1 => prop_oneof![Just(""), Just("Bob"), Just("a name far too long for a display name")]
            .prop_map(|n| Command::SetRemark(RemarkPatch {
                display_name: Some(n.to_owned()),
                ..RemarkPatch::default()
            })),
        1 => prop_oneof![Just(ConvType::Normal), Just(ConvType::Sticky), Just(ConvType::Archive)]
            .prop_map(Command::SetConvType),
        1 => any::<bool>().prop_map(Command::SetPhoneVisible),
    ]
}

fn advance() -> impl Strategy<Value = Millis> {
    prop_oneof![Just(0), 1..DAY / 2, Just(DAY), Just(3 * DAY), DAY..4 * DAY,]
}

/// One step: `actor` does `command` to `target` after `advance` milliseconds.
fn step() -> impl Strategy<Value = (usize, usize, Command, Millis)> {
    (0..USERS, 0..USERS, command(), advance())
}

/// The rows of every ordered pair of users, keyed (owner, other).
#[derive(Debug, Default)]
struct World {
    sides: HashMap<(usize, usize), Side>,
}

impl World {
    fn pair(&self, a: usize, b: usize) -> Pair {
        Pair {
            mine: self.sides.get(&(a, b)).cloned().unwrap_or_default(),
            theirs: self.sides.get(&(b, a)).cloned().unwrap_or_default(),
        }
    }

    fn store(&mut self, a: usize, b: usize, t: &Transition) {
        if t.mine_changed {
            self.sides.insert((a, b), t.pair.mine.clone());
        }
        if t.theirs_changed {
            self.sides.insert((b, a), t.pair.theirs.clone());
        }
    }

    fn check(&self) -> Result<(), String> {
        for a in 0..USERS {
            for b in a + 1..USERS {
                let p = self.pair(a, b);
                check_pair(&p).map_err(|e| format!("({a}, {b}): {e}: {p:?}"))?;
                let (m, t) = (&p.mine, &p.theirs);
                if m.is_friend() != t.is_friend() {
                    return Err(format!("({a}, {b}) friendship is one-sided"));
                }
                let pending = m.friendship.has_request() || t.friendship.has_request();
                if pending && (m.blocking || t.blocking) {
                    return Err(format!("({a}, {b}) request across a block"));
                }
                if m.pending_outgoing() && t.pending_outgoing() {
                    return Err(format!("({a}, {b}) two requests at once"));
                }
                if pending && (m.request_id.is_none() || m.request_id != t.request_id) {
                    return Err(format!("({a}, {b}) request ids differ"));
                }
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_sequences_keep_every_pair_consistent(
        verification in proptest::collection::vec(any::<bool>(), USERS),
        steps in proptest::collection::vec(step(), 1..80),
    ) {
        let mut world = World::default();
        let mut now: Millis = 1_700_000_000_000;
        for (i, (actor, target, cmd, adv)) in steps.into_iter().enumerate() {
            if actor == target {
                continue;
            }
            now += adv;
            let ctx = Context {
                now,
                new_request_id: RequestId::new(i as i64 + 1).unwrap(),
                policy: Policy::default(),
                they_require_verification: verification[target],
            };
            let before = world.pair(actor, target);
            if let Ok(t) = apply(&before, &cmd, &ctx) {
                if !t.changed() {
                    prop_assert_eq!(&t.pair, &before);
                }
                world.store(actor, target, &t);
            }
            if let Err(e) = world.check() {
                return Err(TestCaseError::fail(format!("after {actor} {cmd:?} {target}: {e}")));
            }
        }
    }
}
