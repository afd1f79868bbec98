#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Mutex;

use futures_executor::block_on;

use super::*;
use crate::addressbook::{ContactDraft, ContactFields};
use crate::group::{GroupInfo, GroupRole};
use crate::ids::GroupId;
use crate::memory::ManualClock;
use crate::phone::Phone;
use crate::ports::Privacy;

const T0: Millis = 1_700_000_000_000;

/// A store that answers one canned read and records the compaction cut-offs it was given.
#[derive(Debug, Default)]
struct Canned {
    read: Mutex<SyncRead>,
    cutoffs: Mutex<Vec<Millis>>,
}

#[async_trait]
impl SyncStore for Canned {
    async fn read_since(&self, _owner: UserId, _since: SyncVersion) -> DomainResult<SyncRead> {
        Ok(self.read.lock().unwrap().clone())
    }

    async fn compact(&self, before: Millis) -> DomainResult<Compacted> {
        self.cutoffs.lock().unwrap().push(before);
        Ok(Compacted::default())
    }
}

fn service(read: SyncRead) -> (SyncService, Arc<Canned>, Arc<ManualClock>) {
    let store = Arc::new(Canned {
        read: Mutex::new(read),
        ..Canned::default()
    });
    let clock = Arc::new(ManualClock::new(T0));
    let svc = SyncService::new(
        SyncPorts {
            store: store.clone(),
            clock: clock.clone(),
        },
        SyncPolicy::default(),
    );
    (svc, store, clock)
}

fn uid(n: i64) -> UserId {
    UserId::new(n).unwrap()
}

fn profile(n: i64, nickname: &str) -> UserProfile {
    UserProfile {
        id: uid(n),
        phone: Phone::parse("86", &format!("139{n:08}")).unwrap(),
        registered: true,
        nickname: nickname.into(),
        portrait_uri: format!("https://p/{n}"),
        user_name: None,
        gender: None,
        birth_date: None,
        email: None,
        privacy: Privacy::default(),
        created_at: T0,
        updated_at: T0 + n,
    }
}

fn side(f: impl FnOnce(&mut Side)) -> Side {
    let mut s = Side {
        created_at: T0,
        updated_at: T0 + 100,
        ..Side::default()
    };
    f(&mut s);
    s
}

fn peer(n: i64, mine: Option<Side>) -> PeerState {
    PeerState {
        id: uid(n),
        user: Some(profile(n, &format!("U{n}"))),
        mine,
        changed_at: T0 + 500,
    }
}

fn version(n: u64) -> SyncVersion {
    SyncVersion(n)
}

#[test]
fn versions_are_non_negative_integers() {
    assert_eq!(SyncVersion::parse("0").unwrap(), SyncVersion::ZERO);
    assert_eq!(SyncVersion::parse("0042").unwrap().get(), 42);
    assert_eq!(
        SyncVersion::parse("9223372036854775807").unwrap().get(),
        i64::MAX as u64
    );
    for bad in [
        "",
        "-1",
        "+1",
        "1.5",
        "1e3",
        " 1",
        "abc",
        "9223372036854775808",
        "99999999999999999999",
        "0x10",
    ] {
        assert!(
            matches!(
                SyncVersion::parse(bad),
                Err(DomainError::Invalid {
                    field: "version",
                    ..
                })
            ),
            "{bad:?} was accepted"
        );
    }
    assert!(SyncVersion::from_stored(-1).is_err());
    assert_eq!(SyncVersion::from_stored(7).unwrap().get(), 7);
}

#[test]
fn below_the_floor_or_above_the_version_asks_for_a_resync() {
    let read = SyncRead {
        version: version(50),
        floor: version(20),
        ..SyncRead::default()
    };
    let (svc, _, _) = service(read);
    let me = uid(1);
    for asked in [1, 19, 51, 1000] {
        assert_eq!(
            block_on(svc.sync(me, version(asked))),
            Err(DomainError::ResyncRequired { asked, floor: 20 }),
            "from {asked}"
        );
    }
    for fine in [0, 20, 21, 50] {
        let d = block_on(svc.sync(me, version(fine))).unwrap();
        assert_eq!(d.version, version(50), "from {fine}");
    }
}

#[test]
fn nothing_changed_keeps_the_version_and_every_list_empty() {
    let read = SyncRead {
        version: version(9),
        ..SyncRead::default()
    };
    let (svc, _, _) = service(read);
    let d = block_on(svc.sync(uid(1), version(9))).unwrap();
    assert_eq!(
        d,
        SyncDelta {
            version: version(9),
            ..SyncDelta::default()
        }
    );
}

#[test]
fn friend_statuses_follow_sealtalk_and_tombstones_mark_what_leaves() {
    let cases = [
        (Friendship::Requested, 10, false),
        (Friendship::RequestedBy, 11, false),
        (Friendship::Friends, 20, false),
        (Friendship::Ignored, 21, false),
        (Friendship::Deleted, 30, true),
        (Friendship::None, STATUS_NO_FRIENDSHIP, true),
    ];
    for (f, status, deleted) in cases {
        let p = peer(
            2,
            Some(side(|s| {
                s.friendship = f;
                s.display_name = Some("Bobby".into());
                s.following = true;
            })),
        );
        let row = friend_row(&p);
        assert_eq!((row.status, row.deleted), (status, deleted), "{f:?}");
        assert_eq!(row.display_name, "Bobby");
        assert_eq!(row.nickname, "U2");
        assert_eq!(row.portrait_uri, "https://p/2");
    }
    // No row at all: no friendship.
    let row = friend_row(&peer(3, None));
    assert_eq!((row.status, row.deleted), (STATUS_NO_FRIENDSHIP, true));
    assert_eq!(row.stamp, T0 + 500);
}

#[test]
fn blacklist_rows_carry_the_block_time_and_unblocks_are_tombstones() {
    let blocked = peer(
        2,
        Some(side(|s| {
            s.blocking = true;
            s.blocked_at = Some(T0 + 7);
        })),
    );
    assert_eq!(
        blacklist_row(&blocked),
        BlacklistDelta {
            friend: uid(2),
            blocked: true,
            stamp: T0 + 7
        }
    );
    let lifted = peer(2, Some(side(|s| s.friendship = Friendship::Friends)));
    let row = blacklist_row(&lifted);
    assert!(!row.blocked);
    // The row's own instant while it exists; the log entry's once it is gone.
    assert_eq!(row.stamp, T0 + 100);
    assert_eq!(blacklist_row(&peer(2, None)).stamp, T0 + 500);
}

#[test]
fn conversation_rows_show_the_owners_row_and_vanish_when_it_is_empty() {
    let p = peer(
        2,
        Some(side(|s| {
            s.conv_type = ConvType::Sticky;
            s.starred = true;
        })),
    );
    let row = conversation_row(&p);
    assert_eq!(row.conv_type, ConvType::Sticky);
    assert!(row.is_starred && !row.deleted);
    assert!(conversation_row(&peer(2, Some(side(|_| {})))).deleted);
    assert!(conversation_row(&peer(2, None)).deleted);
}

fn contact(n: u64) -> Contact {
    let fields = ContactFields::new(ContactDraft {
        name: format!("C{n}"),
        ..ContactDraft::default()
    })
    .unwrap();
    Contact::create(ContactId::from_random(n), fields, T0)
}

fn membership(g: i64, deleted: bool) -> MembershipDelta {
    MembershipDelta {
        group: GroupInfo {
            id: GroupId::new(g).unwrap(),
            name: format!("G{g}"),
            portrait_uri: String::new(),
            creator: uid(1),
            member_count: 2,
            stamp: T0,
        },
        role: GroupRole::Member,
        display_name: String::new(),
        deleted,
        stamp: T0,
    }
}

fn member(g: i64, m: i64, deleted: bool) -> GroupMemberDelta {
    GroupMemberDelta {
        group: GroupId::new(g).unwrap(),
        member: uid(m),
        role: GroupRole::Member,
        display_name: String::new(),
        deleted,
        stamp: T0,
        nickname: format!("U{m}"),
        portrait_uri: String::new(),
    }
}

fn mixed_read() -> SyncRead {
    let gone = ContactId::from_random(99);
    SyncRead {
        version: version(12),
        floor: SyncVersion::ZERO,
        user: Some(profile(1, "Me")),
        peers: vec![
            peer(2, Some(side(|s| s.friendship = Friendship::Friends))),
            peer(
                3,
                Some(side(|s| {
                    s.blocking = true;
                    s.blocked_at = Some(T0);
                })),
            ),
            peer(4, None),
        ],
        contacts: vec![
            Entry::Present(contact(5)),
            Entry::Deleted { id: gone, at: T0 },
        ],
        tags: vec![Entry::Deleted {
            id: TagId::from_random(8),
            at: T0,
        }],
        groups: vec![membership(70, false), membership(71, true)],
        group_members: vec![member(70, 2, false), member(70, 4, true)],
    }
}

#[test]
fn a_delta_keeps_every_tombstone() {
    let d = derive(mixed_read(), false);
    assert_eq!(d.version, version(12));
    assert_eq!(d.user.as_ref().unwrap().nickname, "Me");
    // Every peer named by an entry shows in each list, present or as a tombstone.
    assert_eq!(d.friends.len(), 3);
    assert_eq!(d.blacklist.len(), 3);
    assert_eq!(d.conversations.len(), 3);
    assert_eq!(
        d.blacklist.iter().filter(|b| b.blocked).count(),
        1,
        "{:?}",
        d.blacklist
    );
    assert_eq!(d.contacts.len(), 2);
    assert_eq!(d.tags.len(), 1);
    assert_eq!(d.groups.len(), 2);
    assert_eq!(d.group_members.len(), 2);
}

#[test]
fn a_full_state_holds_only_what_a_client_keeps() {
    let d = derive(mixed_read(), true);
    assert_eq!(d.friends.len(), 1);
    assert_eq!(d.friends[0].friend, uid(2));
    assert_eq!(d.blacklist.len(), 1);
    assert_eq!(d.blacklist[0].friend, uid(3));
    assert_eq!(d.conversations.len(), 2);
    assert!(d.conversations.iter().all(|c| !c.deleted));
    assert_eq!(d.contacts.len(), 1);
    assert!(d.tags.is_empty());
    assert_eq!(d.groups, vec![membership(70, false)]);
    assert_eq!(d.group_members, vec![member(70, 2, false)]);
}

#[test]
fn compaction_cuts_at_now_minus_the_horizon() {
    let (svc, store, clock) = service(SyncRead::default());
    block_on(svc.compact()).unwrap();
    clock.advance(1000);
    block_on(svc.compact()).unwrap();
    let horizon = SyncPolicy::default().horizon_ms;
    assert_eq!(horizon, 30 * DAY_MS);
    assert_eq!(
        *store.cutoffs.lock().unwrap(),
        vec![T0 - horizon, T0 + 1000 - horizon]
    );
}

#[test]
fn member_rows_of_a_group_left_in_the_same_answer_are_left_out() {
    // The owner joined 71 and left it again since the last sync: the entries name 71's
    // members too, but the device must end up holding none of them.
    let read = SyncRead {
        version: version(5),
        groups: vec![membership(70, false), membership(71, true)],
        group_members: vec![
            member(70, 2, false),
            member(71, 2, false),
            member(71, 3, true),
        ],
        ..SyncRead::default()
    };
    let d = derive(read, false);
    assert_eq!(d.groups.len(), 2);
    assert_eq!(d.group_members, vec![member(70, 2, false)]);
}
