#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use futures_executor::block_on;

use super::*;
use crate::memory::{
    ManualClock, MemoryAccountStore, MemoryGroupStore, MemoryRelationshipStore, SeqRandom,
};
use crate::phone::Phone;
use crate::ports::{Privacy, ProfileChange};
use crate::relationship::{Friendship, Outcome, Pair, Side, Transition};

const T0: Millis = 1_700_000_000_000;

struct Fixture {
    svc: GroupService,
    accounts: Arc<MemoryAccountStore>,
    rels: Arc<MemoryRelationshipStore>,
    groups: Arc<MemoryGroupStore>,
    clock: Arc<ManualClock>,
}

fn uid(n: i64) -> UserId {
    UserId::new(n).unwrap()
}

fn ids(ns: &[i64]) -> MemberIds {
    MemberIds::new(ns.iter().map(|&n| uid(n)), &GroupPolicy::default(), true).unwrap()
}

fn name(s: &str) -> GroupName {
    GroupName::new(s, &GroupPolicy::default()).unwrap()
}

/// Users 1..=users, all registered.
fn fixture_with(policy: GroupPolicy, users: i64) -> Fixture {
    let accounts = Arc::new(MemoryAccountStore::default());
    for n in 1..=users {
        let phone = Phone::parse("86", &format!("139{n:08}")).unwrap();
        accounts
            .add_user(uid(n), &phone, &format!("u{n}"), T0)
            .unwrap();
    }
    let rels = Arc::new(MemoryRelationshipStore::new(accounts.clone()));
    let groups = Arc::new(MemoryGroupStore::new(accounts.clone()));
    let clock = Arc::new(ManualClock::new(T0));
    let svc = GroupService::new(
        GroupPorts {
            store: groups.clone(),
            relationships: rels.clone(),
            accounts: accounts.clone(),
            clock: clock.clone(),
            random: Arc::new(SeqRandom::new(3)),
        },
        policy,
    );
    Fixture {
        svc,
        accounts,
        rels,
        groups,
        clock,
    }
}

fn fixture() -> Fixture {
    fixture_with(GroupPolicy::default(), 9)
}

impl Fixture {
    /// Sets both rows of (a, b) outright.
    fn set_pair(&self, a: i64, b: i64, mine: Side, theirs: Side) {
        block_on(self.rels.transition(
            uid(a),
            uid(b),
            Box::new(move |_: &Pair, _| {
                Ok(Transition {
                    pair: Pair {
                        mine: mine.clone(),
                        theirs: theirs.clone(),
                    },
                    outcome: Outcome::Done,
                    mine_changed: true,
                    theirs_changed: true,
                    events: Vec::new(),
                })
            }),
        ))
        .unwrap();
    }

    fn befriend(&self, a: i64, b: i64) {
        let friend = Side {
            friendship: Friendship::Friends,
            ..Side::default()
        };
        self.set_pair(a, b, friend.clone(), friend);
    }

    /// `a` is friends with every other of `others`.
    fn befriend_all(&self, a: i64, others: &[i64]) {
        for &b in others {
            self.befriend(a, b);
        }
    }

    fn create(&self, me: i64, members: &[i64]) -> GroupId {
        block_on(self.svc.create(uid(me), name("Team"), ids(members))).unwrap()
    }

    fn state(&self, g: GroupId) -> GroupState {
        block_on(self.groups.state(g)).unwrap().unwrap()
    }

    fn roles(&self, g: GroupId) -> Vec<(i64, GroupRole)> {
        self.state(g)
            .members
            .iter()
            .map(|(u, m)| (u.get(), m.role))
            .collect()
    }

    fn allow_invites(&self, user: i64) {
        let privacy = Privacy {
            allow_group_invites: true,
            ..Privacy::default()
        };
        block_on(
            self.accounts
                .update_profile(uid(user), ProfileChange::Privacy(privacy), T0),
        )
        .unwrap();
    }
}

#[test]
fn roles_have_sealtalks_numbers() {
    for role in [GroupRole::Creator, GroupRole::Member, GroupRole::Manager] {
        assert_eq!(GroupRole::from_code(role.code()), Some(role));
    }
    assert_eq!(GroupRole::Creator.code(), 0);
    assert_eq!(GroupRole::Member.code(), 1);
    assert_eq!(GroupRole::Manager.code(), 2);
    assert_eq!(GroupRole::from_code(3), None);
    assert!(GroupRole::Manager.manages() && !GroupRole::Member.manages());
}

#[test]
fn names_bulletins_and_id_lists_follow_the_policy() {
    let p = GroupPolicy::default();
    assert!(GroupName::new("a", &p).is_err());
    assert!(GroupName::new("ab", &p).is_ok());
    assert!(GroupName::new("群".repeat(32), &p).is_ok());
    assert!(GroupName::new("群".repeat(33), &p).is_err());
    assert!(GroupName::new("   ", &p).is_err());
    assert!(GroupName::new("a\u{0}b", &p).is_err());
    let tight = GroupPolicy {
        name_min_chars: 4,
        name_max_chars: 5,
        bulletin_max_chars: 3,
        ..p
    };
    assert!(GroupName::new("abc", &tight).is_err());
    assert!(GroupName::new("abcdef", &tight).is_err());
    assert!(Bulletin::new("", &p).is_ok());
    assert!(Bulletin::new("line\nline", &p).is_ok());
    assert!(Bulletin::new("x".repeat(1024), &p).is_ok());
    assert!(Bulletin::new("x".repeat(1025), &p).is_err());
    assert!(Bulletin::new("abcd", &tight).is_err());

    let list = MemberIds::new([uid(3), uid(1), uid(3)], &p, false).unwrap();
    assert_eq!(list.ids(), &[uid(1), uid(3)]);
    assert!(MemberIds::new([], &p, false).is_err());
    assert!(MemberIds::new([], &p, true).is_ok());
    let small = GroupPolicy {
        max_members: 2,
        ..p
    };
    assert!(MemberIds::new([uid(1), uid(2), uid(3)], &small, false).is_err());
}

#[test]
fn member_lists_parse_from_client_text() {
    let small = GroupPolicy {
        max_members: 2,
        ..GroupPolicy::default()
    };
    let (a, b) = (uid(1).to_string(), uid(2).to_string());
    let list = MemberIds::parse([&b, &a, &b], &GroupPolicy::default(), false).unwrap();
    assert_eq!(list.ids(), &[uid(1), uid(2)]);
    assert_eq!(
        MemberIds::parse(["12x"], &small, false),
        Err(DomainError::invalid("memberIds", "is not a user id"))
    );
    // Too long is refused before any id is read, duplicates and bad ids included.
    assert_eq!(
        MemberIds::parse([a.as_str(), "bad", "bad"], &small, false),
        Err(DomainError::invalid(
            "memberIds",
            "must name at most 2 users"
        ))
    );
}

#[test]
fn create_makes_the_caller_creator_of_friends() {
    let f = fixture();
    f.befriend_all(1, &[2, 3]);
    let g = f.create(1, &[1, 2, 3, 2]);
    assert_eq!(
        f.roles(g),
        vec![
            (1, GroupRole::Creator),
            (2, GroupRole::Member),
            (3, GroupRole::Member)
        ]
    );
    let s = f.state(g);
    assert_eq!(s.group.creator, uid(1));
    assert_eq!(s.group.name, "Team");
    assert_eq!(s.group.stamp, T0);
    let mine = block_on(f.svc.my_groups(uid(2))).unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].info.member_count, 3);
    assert_eq!(mine[0].role, GroupRole::Member);
    // A group of one is allowed.
    let solo = f.create(4, &[]);
    assert_eq!(f.roles(solo), vec![(4, GroupRole::Creator)]);
}

#[test]
fn only_friends_or_willing_users_can_be_added_and_never_a_blocker() {
    let f = fixture();
    f.befriend(1, 2);
    // 3 is a stranger.
    let err = block_on(f.svc.create(uid(1), name("Team"), ids(&[2, 3]))).unwrap_err();
    assert!(matches!(err, DomainError::Forbidden(_)), "{err:?}");
    assert!(block_on(f.svc.my_groups(uid(1))).unwrap().is_empty());
    // ... until 3 allows group invites.
    f.allow_invites(3);
    let g = f.create(1, &[2, 3]);
    assert_eq!(f.state(g).members.len(), 3);

    // 4 allows invites but blocks 1; 5 is a friend who blocks 1: neither can be added.
    f.allow_invites(4);
    let blocking = Side {
        blocking: true,
        ..Side::default()
    };
    f.set_pair(4, 1, blocking.clone(), Side::default());
    f.set_pair(
        5,
        1,
        Side {
            friendship: Friendship::Friends,
            blocking: true,
            ..Side::default()
        },
        Side {
            friendship: Friendship::Friends,
            ..Side::default()
        },
    );
    for who in [4, 5] {
        let err = block_on(f.svc.add(uid(1), g, ids(&[who]))).unwrap_err();
        assert_eq!(
            err,
            DomainError::Forbidden("a user who blocked you cannot be added"),
            "user {who}"
        );
    }
    // Unknown users are not found.
    let err = block_on(f.svc.add(uid(1), g, ids(&[77]))).unwrap_err();
    assert_eq!(err, DomainError::NotFound("user"));
    assert_eq!(f.state(g).members.len(), 3);
}

#[test]
fn strangers_see_nothing_and_unknown_groups_are_not_found() {
    let f = fixture();
    f.befriend(1, 2);
    let g = f.create(1, &[2]);
    let err = block_on(f.svc.group(uid(3), g)).unwrap_err();
    assert!(matches!(err, DomainError::Forbidden(_)));
    assert!(matches!(
        block_on(f.svc.members(uid(3), g)),
        Err(DomainError::Forbidden(_))
    ));
    assert!(matches!(
        block_on(f.svc.bulletin(uid(3), g)),
        Err(DomainError::Forbidden(_))
    ));
    assert!(matches!(
        block_on(
            f.svc
                .set_display_name(uid(3), g, DisplayName::new("displayName", "x").unwrap())
        ),
        Err(DomainError::Forbidden(_))
    ));
    let nowhere = GroupId::new(42).unwrap();
    assert_eq!(
        block_on(f.svc.group(uid(1), nowhere)).unwrap_err(),
        DomainError::NotFound("group")
    );
    assert_eq!(
        block_on(f.svc.quit(uid(1), nowhere)).unwrap_err(),
        DomainError::NotFound("group")
    );
    let members = block_on(f.svc.members(uid(2), g)).unwrap();
    assert_eq!(
        members
            .iter()
            .map(|m| m.nickname.as_str())
            .collect::<Vec<_>>(),
        ["u1", "u2"]
    );
}

#[test]
fn members_may_not_do_what_their_role_may_not_and_nothing_changes() {
    let f = fixture();
    f.befriend_all(1, &[2, 3, 4]);
    f.befriend_all(2, &[5]);
    let g = f.create(1, &[2, 3]);
    let before = f.state(g);
    let version = f.accounts.version(uid(3));
    let forbidden = |r: DomainResult<()>| {
        assert!(matches!(r, Err(DomainError::Forbidden(_))), "{r:?}");
    };
    forbidden(block_on(f.svc.add(uid(2), g, ids(&[5]))));
    forbidden(block_on(f.svc.kick(uid(2), g, ids(&[3]))));
    forbidden(block_on(f.svc.dismiss(uid(2), g)));
    forbidden(block_on(f.svc.transfer(uid(2), g, uid(3))));
    forbidden(block_on(f.svc.rename(uid(2), g, name("Mine"))));
    forbidden(block_on(f.svc.set_bulletin(
        uid(2),
        g,
        Bulletin::new("hi", f.svc.policy()).unwrap(),
    )));
    forbidden(block_on(f.svc.set_portrait_uri(uid(2), g, None)));
    forbidden(block_on(f.svc.set_managers(uid(2), g, ids(&[3]), true)));
    assert_eq!(f.state(g), before);
    assert_eq!(f.accounts.version(uid(3)), version);
}

#[test]
fn managers_add_and_kick_members_but_not_managers_or_the_creator() {
    let f = fixture();
    f.befriend_all(1, &[2, 3, 4]);
    f.befriend_all(2, &[5]);
    let g = f.create(1, &[2, 3, 4]);
    block_on(f.svc.set_managers(uid(1), g, ids(&[2, 4]), true)).unwrap();
    block_on(f.svc.add(uid(2), g, ids(&[5]))).unwrap();
    block_on(f.svc.kick(uid(2), g, ids(&[3]))).unwrap();
    assert!(matches!(
        block_on(f.svc.kick(uid(2), g, ids(&[4]))),
        Err(DomainError::Forbidden(_))
    ));
    assert!(matches!(
        block_on(f.svc.kick(uid(2), g, ids(&[1]))),
        Err(DomainError::Forbidden(_))
    ));
    assert!(matches!(
        block_on(f.svc.kick(uid(2), g, ids(&[2]))),
        Err(DomainError::Invalid { .. })
    ));
    block_on(f.svc.rename(uid(2), g, name("Renamed"))).unwrap();
    // The creator demotes a manager and kicks the other.
    block_on(f.svc.set_managers(uid(1), g, ids(&[2]), false)).unwrap();
    block_on(f.svc.kick(uid(1), g, ids(&[4]))).unwrap();
    assert_eq!(
        f.roles(g),
        vec![
            (1, GroupRole::Creator),
            (2, GroupRole::Member),
            (5, GroupRole::Member)
        ]
    );
    assert_eq!(f.state(g).group.name, "Renamed");
    // Managers are named among members only, and never the creator.
    assert!(matches!(
        block_on(f.svc.set_managers(uid(1), g, ids(&[9]), true)),
        Err(DomainError::Invalid { .. })
    ));
    assert!(matches!(
        block_on(f.svc.set_managers(uid(1), g, ids(&[1]), true)),
        Err(DomainError::Invalid { .. })
    ));
}

#[test]
fn transfer_and_dismiss_are_the_creators() {
    let f = fixture();
    f.befriend_all(1, &[2, 3]);
    let g = f.create(1, &[2, 3]);
    assert!(matches!(
        block_on(f.svc.transfer(uid(1), g, uid(7))),
        Err(DomainError::Invalid { .. })
    ));
    block_on(f.svc.transfer(uid(1), g, uid(3))).unwrap();
    assert_eq!(f.state(g).group.creator, uid(3));
    assert_eq!(
        f.roles(g),
        vec![
            (1, GroupRole::Member),
            (2, GroupRole::Member),
            (3, GroupRole::Creator)
        ]
    );
    assert!(matches!(
        block_on(f.svc.dismiss(uid(1), g)),
        Err(DomainError::Forbidden(_))
    ));
    block_on(f.svc.dismiss(uid(3), g)).unwrap();
    let s = f.state(g);
    assert!(s.group.dismissed && s.members.is_empty());
    assert_eq!(
        block_on(f.svc.group(uid(3), g)).unwrap_err(),
        DomainError::NotFound("group")
    );
    assert!(block_on(f.svc.my_groups(uid(1))).unwrap().is_empty());
}

#[test]
fn a_quitting_creator_leaves_the_group_to_the_oldest_member_and_the_last_one_ends_it() {
    let f = fixture();
    f.befriend_all(1, &[2, 3, 4]);
    let g = f.create(1, &[3]);
    f.clock.advance(1000);
    block_on(f.svc.add(uid(1), g, ids(&[2]))).unwrap();
    f.clock.advance(1000);
    block_on(f.svc.add(uid(1), g, ids(&[4]))).unwrap();
    // 3 joined first, though 2 has the smaller id.
    block_on(f.svc.quit(uid(1), g)).unwrap();
    assert_eq!(f.state(g).group.creator, uid(3));
    assert_eq!(
        f.roles(g),
        vec![
            (2, GroupRole::Member),
            (3, GroupRole::Creator),
            (4, GroupRole::Member)
        ]
    );
    block_on(f.svc.quit(uid(2), g)).unwrap();
    block_on(f.svc.quit(uid(3), g)).unwrap();
    assert_eq!(f.state(g).group.creator, uid(4));
    block_on(f.svc.quit(uid(4), g)).unwrap();
    assert!(f.state(g).group.dismissed);
    assert_eq!(
        block_on(f.svc.quit(uid(4), g)).unwrap_err(),
        DomainError::NotFound("group")
    );
}

#[test]
fn member_and_group_limits_hold() {
    let policy = GroupPolicy {
        max_members: 3,
        max_groups_per_user: 2,
        ..GroupPolicy::default()
    };
    let f = fixture_with(policy, 6);
    f.befriend_all(1, &[2, 3, 4, 5, 6]);
    let list = |ns: &[i64]| MemberIds::new(ns.iter().map(|&n| uid(n)), &policy, true).unwrap();
    // Creator plus three is four.
    let err = block_on(f.svc.create(uid(1), name("Big"), list(&[2, 3, 4]))).unwrap_err();
    assert!(
        matches!(
            err,
            DomainError::Invalid {
                field: "memberIds",
                ..
            }
        ),
        "{err:?}"
    );
    let g = block_on(f.svc.create(uid(1), name("Full"), list(&[2, 3]))).unwrap();
    let err = block_on(f.svc.add(uid(1), g, list(&[4]))).unwrap_err();
    assert!(matches!(
        err,
        DomainError::Invalid {
            field: "memberIds",
            ..
        }
    ));
    // Adding someone already in is no change, not an overflow.
    block_on(f.svc.add(uid(1), g, list(&[2]))).unwrap();

    // 1 is in one group; a second is fine, a third is not, for 1 as for anyone else.
    block_on(f.svc.create(uid(1), name("Two"), list(&[]))).unwrap();
    let err = block_on(f.svc.create(uid(1), name("Three"), list(&[]))).unwrap_err();
    assert!(matches!(
        err,
        DomainError::Invalid {
            field: "memberIds",
            ..
        }
    ));
    f.befriend_all(4, &[2, 5]);
    let h = block_on(f.svc.create(uid(4), name("Four"), list(&[5]))).unwrap();
    block_on(f.svc.create(uid(2), name("Fifth"), list(&[]))).unwrap();
    // 2 is now in two groups.
    let err = block_on(f.svc.add(uid(4), h, list(&[2]))).unwrap_err();
    assert!(matches!(
        err,
        DomainError::Invalid {
            field: "memberIds",
            ..
        }
    ));
    assert_eq!(f.state(h).members.len(), 2);
}

#[test]
fn display_names_bulletins_and_portraits() {
    let f = fixture();
    f.befriend(1, 2);
    let g = f.create(1, &[2]);
    f.clock.advance(5);
    block_on(
        f.svc
            .set_display_name(uid(2), g, DisplayName::new("displayName", "Bob").unwrap()),
    )
    .unwrap();
    block_on(
        f.svc
            .set_bulletin(uid(1), g, Bulletin::new("Hello", f.svc.policy()).unwrap()),
    )
    .unwrap();
    let uri = ImageUri::new("portraitUri", "http://x.com/g.png").unwrap();
    block_on(f.svc.set_portrait_uri(uid(1), g, Some(uri))).unwrap();
    let s = f.state(g);
    assert_eq!(s.members[&uid(2)].display_name, "Bob");
    assert_eq!(s.members[&uid(2)].stamp, T0 + 5);
    assert_eq!(s.group.portrait_uri, "http://x.com/g.png");
    assert_eq!(
        block_on(f.svc.bulletin(uid(2), g)).unwrap(),
        ("Hello".to_owned(), T0 + 5)
    );
    block_on(f.svc.set_portrait_uri(uid(1), g, None)).unwrap();
    assert_eq!(f.state(g).group.portrait_uri, "");
}

#[test]
fn an_unchanged_group_records_nothing() {
    let f = fixture();
    f.befriend(1, 2);
    let g = f.create(1, &[2]);
    let log = f.groups.change_log().len();
    let version = f.accounts.version(uid(2));
    f.clock.advance(10);
    block_on(f.svc.rename(uid(1), g, name("Team"))).unwrap();
    block_on(f.svc.add(uid(1), g, ids(&[2]))).unwrap();
    assert_eq!(f.groups.change_log().len(), log);
    assert_eq!(f.accounts.version(uid(2)), version);
    assert_eq!(f.state(g).group.stamp, T0);
}

fn entry(owner: i64, g: GroupId, detail: Option<i64>) -> ChangeEntry {
    ChangeEntry {
        owner: uid(owner),
        kind: if detail.is_some() {
            CHANGE_KIND_GROUP_MEMBER
        } else {
            CHANGE_KIND_GROUP
        },
        subject: g,
        detail: detail.map(uid),
    }
}

#[test]
fn change_entries_follow_the_sync_contract() {
    let f = fixture();
    f.befriend_all(1, &[2, 3]);
    let versions: Vec<i64> = (1..=3).map(|n| f.accounts.version(uid(n))).collect();
    let g = f.create(1, &[2]);
    // Creation: each joiner learns the group and every member row.
    let mut expected = Vec::new();
    for owner in [1, 2] {
        expected.push(entry(owner, g, None));
        expected.push(entry(owner, g, Some(1)));
        expected.push(entry(owner, g, Some(2)));
    }
    expected.sort();
    assert_eq!(f.groups.change_log(), expected);

    // 3 joins: everyone gets the group and 3's row; 3 gets every row.
    let start = f.groups.change_log().len();
    block_on(f.svc.add(uid(1), g, ids(&[3]))).unwrap();
    let mut expected = [
        entry(1, g, None),
        entry(1, g, Some(3)),
        entry(2, g, None),
        entry(2, g, Some(3)),
        entry(3, g, None),
        entry(3, g, Some(1)),
        entry(3, g, Some(2)),
        entry(3, g, Some(3)),
    ];
    expected.sort();
    assert_eq!(f.groups.change_log()[start..], expected[..]);

    // A rename touches only the group.
    let start = f.groups.change_log().len();
    block_on(f.svc.rename(uid(1), g, name("New"))).unwrap();
    assert_eq!(
        f.groups.change_log()[start..],
        [entry(1, g, None), entry(2, g, None), entry(3, g, None)]
    );

    // 2 is kicked: the leaver gets its group and own row, no tombstones for the others.
    let start = f.groups.change_log().len();
    block_on(f.svc.kick(uid(1), g, ids(&[2]))).unwrap();
    assert_eq!(
        f.groups.change_log()[start..],
        [
            entry(1, g, None),
            entry(1, g, Some(2)),
            entry(2, g, None),
            entry(2, g, Some(2)),
            entry(3, g, None),
            entry(3, g, Some(2)),
        ]
    );

    // Dismissal: every former member gets the group and its own row.
    let start = f.groups.change_log().len();
    block_on(f.svc.dismiss(uid(1), g)).unwrap();
    assert_eq!(
        f.groups.change_log()[start..],
        [
            entry(1, g, None),
            entry(1, g, Some(1)),
            entry(3, g, None),
            entry(3, g, Some(3)),
        ]
    );
    // Each entry bumped its owner's version once.
    let log = f.groups.change_log();
    for owner in [1, 2, 3] {
        let n = log.iter().filter(|e| e.owner == uid(owner)).count();
        let grown = f.accounts.version(uid(owner)) - versions[owner as usize - 1];
        assert_eq!(grown, n as i64, "owner {owner}");
    }
}

#[test]
fn change_entries_are_sorted_and_unique() {
    let f = fixture();
    f.befriend_all(1, &[2, 3, 4, 5]);
    let g = f.create(1, &[5, 3, 2, 4]);
    let log = f.groups.change_log();
    let mut sorted = log.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(log, sorted);
    // 5 members: 5 group entries and 25 member entries.
    assert_eq!(log.len(), 5 + 25);
    assert!(log.iter().all(|e| e.subject == g));
}
