//! Group storage tests: round trips, change records, the sync reads, and races on the limits.

use std::collections::BTreeMap;

use kith_domain::group::{
    apply, change_entries, Bulletin, GroupCommand, GroupContext, GroupName, GroupPolicy, GroupRole,
    GroupState, GroupStore, MemberIds,
};
use kith_domain::ids::GroupId;
use kith_domain::values::DisplayName;

use super::*;
use crate::groups::{co_members, group_full_state, group_sync_rows};
use crate::schema::{chat_groups, group_members};

/// Creates placeholder users with these ids.
async fn users(store: &Store, ids: &[i64]) {
    for &id in ids {
        let p = phone(u32::try_from(id).unwrap());
        assert_eq!(
            store.create_placeholder(uid(id), &p, NOW).await,
            Ok(uid(id))
        );
    }
}

fn gid(n: i64) -> GroupId {
    GroupId::new(n).unwrap()
}

fn list(ns: &[i64]) -> MemberIds {
    MemberIds::new(ns.iter().map(|&n| uid(n)), &GroupPolicy::default(), true).unwrap()
}

fn create(name: &str, members: &[i64]) -> GroupCommand {
    GroupCommand::Create {
        name: GroupName::new(name, &GroupPolicy::default()).unwrap(),
        members: list(members),
    }
}

/// Runs `cmd` of `actor` on group `g` through the domain's rules, at `now`.
async fn act_at(
    store: &Store,
    actor: i64,
    g: GroupId,
    cmd: GroupCommand,
    policy: GroupPolicy,
    now: Millis,
) -> Result<GroupState, DomainError> {
    let actor = uid(actor);
    let joining = cmd.joining(actor);
    store
        .write(
            g,
            joining,
            Box::new(move |before, counts| {
                apply(
                    before,
                    &cmd,
                    &GroupContext {
                        actor,
                        group: g,
                        now,
                        policy: &policy,
                        group_counts: counts,
                    },
                )
            }),
        )
        .await
}

async fn act(
    store: &Store,
    actor: i64,
    g: GroupId,
    cmd: GroupCommand,
) -> Result<GroupState, DomainError> {
    act_at(store, actor, g, cmd, GroupPolicy::default(), NOW).await
}

/// One change row without its version: (kind, subject, detail).
type Entry = (String, Option<i64>, Option<i64>);

/// Every change row of `user`: (version, kind, subject, detail).
async fn group_changes(store: &Store, user: i64) -> Vec<(i64, String, Option<i64>, Option<i64>)> {
    store
        .run(move |c| {
            Ok(changes::table
                .filter(changes::owner.eq(user))
                .order(changes::version)
                .select((
                    changes::version,
                    changes::kind,
                    changes::subject,
                    changes::detail,
                ))
                .load(c)?)
        })
        .await
        .unwrap()
}

/// The stored member count and the number of member rows of `g`.
async fn counts(store: &Store, g: GroupId) -> (i32, i64) {
    store
        .run(move |c| {
            let column = chat_groups::table
                .find(g.get())
                .select(chat_groups::member_count)
                .first::<i32>(c)?;
            let rows = group_members::table
                .filter(group_members::group_id.eq(g.get()))
                .count()
                .get_result::<i64>(c)?;
            Ok((column, rows))
        })
        .await
        .unwrap()
}

both_backends!(groups_round_trip, |store: Store| async move {
    users(&store, &[1, 2, 3]).await;
    let g = gid(77);
    let created = act(&store, 1, g, create("Team", &[2, 3])).await.unwrap();
    assert_eq!(store.state(g).await.unwrap().as_ref(), Some(&created));
    assert_eq!(created.role_of(uid(1)), Some(GroupRole::Creator));
    assert_eq!(counts(&store, g).await, (3, 3));

    let later = NOW + MINUTE;
    let policy = GroupPolicy::default();
    let bulletin = Bulletin::new("Read me\nplease", &policy).unwrap();
    act_at(
        &store,
        1,
        g,
        GroupCommand::SetBulletin(bulletin),
        policy,
        later,
    )
    .await
    .unwrap();
    let name = DisplayName::new("displayName", "Bee").unwrap();
    act_at(
        &store,
        2,
        g,
        GroupCommand::SetDisplayName(name),
        policy,
        later,
    )
    .await
    .unwrap();
    act_at(
        &store,
        1,
        g,
        GroupCommand::SetManagers(list(&[3]), true),
        policy,
        later,
    )
    .await
    .unwrap();
    let s = store.state(g).await.unwrap().unwrap();
    assert_eq!(s.group.bulletin, "Read me\nplease");
    assert_eq!(s.group.bulletin_at, later);
    assert_eq!(s.group.stamp, later);
    assert_eq!(s.members[&uid(2)].display_name, "Bee");
    assert_eq!(s.members[&uid(2)].stamp, later);
    assert_eq!(s.members[&uid(3)].role, GroupRole::Manager);
    assert_eq!(s.members[&uid(1)].stamp, NOW);

    let views = store.member_views(g).await.unwrap();
    assert_eq!(
        views
            .iter()
            .map(|v| (v.user.get(), v.member.role))
            .collect::<Vec<_>>(),
        [
            (1, GroupRole::Creator),
            (2, GroupRole::Member),
            (3, GroupRole::Manager)
        ]
    );
    let mine = store.groups_of(uid(2)).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].info, s.info());
    assert_eq!(mine[0].display_name, "Bee");
    assert_eq!(store.state(gid(78)).await.unwrap(), None);
    assert!(store.member_views(gid(78)).await.unwrap().is_empty());
});

both_backends!(
    writes_record_the_domains_change_entries,
    |store: Store| async move {
        users(&store, &[1, 2, 3, 4]).await;
        let g = gid(5);
        let mut before: Option<GroupState> = None;
        let steps = [
            (1, create("Team", &[2, 3])),
            (1, GroupCommand::Add(list(&[4]))),
            (1, GroupCommand::Kick(list(&[2]))),
            (1, GroupCommand::SetManagers(list(&[3]), true)),
            (
                3,
                GroupCommand::Rename(GroupName::new("Renamed", &GroupPolicy::default()).unwrap()),
            ),
            (1, GroupCommand::Quit),
            (3, GroupCommand::Dismiss),
        ];
        let mut expected: BTreeMap<i64, Vec<Entry>> = BTreeMap::new();
        for (actor, cmd) in steps {
            let after = act(&store, actor, g, cmd).await.unwrap();
            for e in change_entries(before.as_ref(), &after) {
                expected.entry(e.owner.get()).or_default().push((
                    e.kind.to_owned(),
                    Some(e.subject.get()),
                    e.detail.map(UserId::get),
                ));
            }
            before = Some(after);
        }
        assert!(before.unwrap().group.dismissed);
        for user in 1..=4 {
            let rows = group_changes(&store, user).await;
            let versions: Vec<i64> = rows.iter().map(|r| r.0).collect();
            // Versions are contiguous from 1 and end at the user's version.
            assert_eq!(versions, (1..=rows.len() as i64).collect::<Vec<_>>());
            assert_eq!(version_of(&store, uid(user)).await, rows.len() as i64);
            let got: Vec<_> = rows.into_iter().map(|(_, k, s, d)| (k, s, d)).collect();
            assert_eq!(
                got,
                expected.remove(&user).unwrap_or_default(),
                "user {user}"
            );
        }
        // The dismissed group keeps its row, without members.
        assert_eq!(counts(&store, g).await, (0, 0));
        assert!(store.groups_of(uid(3)).await.unwrap().is_empty());
        assert!(store.state(g).await.unwrap().unwrap().group.dismissed);
    }
);

both_backends!(refused_writes_change_nothing, |store: Store| async move {
    users(&store, &[1, 2, 3]).await;
    let g = gid(9);
    act(&store, 1, g, create("Team", &[2])).await.unwrap();
    let versions = [
        version_of(&store, uid(1)).await,
        version_of(&store, uid(2)).await,
    ];
    let before = store.state(g).await.unwrap();
    let err = act(&store, 2, g, GroupCommand::Dismiss).await.unwrap_err();
    assert!(matches!(err, DomainError::Forbidden(_)));
    let err = act(&store, 3, g, GroupCommand::Quit).await.unwrap_err();
    assert!(matches!(err, DomainError::Forbidden(_)));
    // A taken id is a conflict, and an unknown member is not found.
    let err = act(&store, 3, g, create("Other", &[])).await.unwrap_err();
    assert_eq!(err, DomainError::Conflict("groupId"));
    let err = act(&store, 1, gid(10), create("Ghosts", &[99]))
        .await
        .unwrap_err();
    assert_eq!(err, DomainError::NotFound("user"));
    assert_eq!(store.state(gid(10)).await.unwrap(), None);
    assert_eq!(store.state(g).await.unwrap(), before);
    assert_eq!(
        [
            version_of(&store, uid(1)).await,
            version_of(&store, uid(2)).await
        ],
        versions
    );
    assert!(group_changes(&store, 3).await.is_empty());
});

both_backends!(
    sync_reads_name_current_and_deleted_rows,
    |store: Store| async move {
        users(&store, &[1, 2, 3]).await;
        let (g, h) = (gid(20), gid(21));
        act(&store, 1, g, create("Gee", &[2, 3])).await.unwrap();
        act(&store, 2, h, create("Aitch", &[1])).await.unwrap();
        act_at(
            &store,
            1,
            g,
            GroupCommand::Kick(list(&[3])),
            GroupPolicy::default(),
            NOW + 5,
        )
        .await
        .unwrap();

        let (memberships, members) = store.run(|c| group_full_state(c, 1)).await.unwrap();
        assert_eq!(
            memberships
                .iter()
                .map(|m| (m.group.id.get(), m.role, m.deleted, m.group.member_count))
                .collect::<Vec<_>>(),
            [
                (20, GroupRole::Creator, false, 2),
                (21, GroupRole::Member, false, 2)
            ]
        );
        assert_eq!(memberships[0].stamp, NOW + 5);
        assert_eq!(
            members
                .iter()
                .map(|m| (m.group.get(), m.member.get(), m.deleted))
                .collect::<Vec<_>>(),
            [
                (20, 1, false),
                (20, 2, false),
                (21, 1, false),
                (21, 2, false)
            ]
        );

        let (memberships, members) = store
            .run(|c| group_sync_rows(c, 3, &[20, 21, 404], &[(20, 3), (20, 1), (404, 1)]))
            .await
            .unwrap();
        // 3 was kicked from 20 and never was in 21; 404 does not exist.
        assert_eq!(
            memberships
                .iter()
                .map(|m| (m.group.id.get(), m.deleted, m.stamp))
                .collect::<Vec<_>>(),
            [(20, true, NOW + 5), (21, true, NOW)]
        );
        assert_eq!(
            members
                .iter()
                .map(|m| (m.group.get(), m.member.get(), m.deleted, m.role))
                .collect::<Vec<_>>(),
            [
                (20, 1, false, GroupRole::Creator),
                (20, 3, true, GroupRole::Member)
            ]
        );
        assert_eq!(members[0].nickname, "");

        let co = store.run(|c| co_members(c, 2)).await.unwrap();
        assert_eq!(co, [(20, 1), (20, 2), (21, 1), (21, 2)]);
        assert!(store.run(|c| co_members(c, 3)).await.unwrap().is_empty());
    }
);

both_backends!(
    concurrent_adds_never_overfill_a_group,
    |store: Store| async move {
        let ids: Vec<i64> = (1..=RACERS as i64 + 1).collect();
        users(&store, &ids).await;
        let policy = GroupPolicy {
            max_members: 4,
            ..GroupPolicy::default()
        };
        let g = gid(30);
        act_at(&store, 1, g, create("Race", &[]), policy, NOW)
            .await
            .unwrap();
        // Each racer adds a different user; only three places are left.
        let results = race(&store, |store, i| async move {
            let cmd = GroupCommand::Add(list(&[i as i64 + 2]));
            act_at(&store, 1, g, cmd, policy, NOW).await
        })
        .await;
        let ok = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(ok, 3, "{results:?}");
        for r in results.iter().filter(|r| r.is_err()) {
            assert!(
                matches!(
                    r,
                    Err(DomainError::Invalid {
                        field: "memberIds",
                        ..
                    })
                ),
                "{r:?}"
            );
        }
        assert_eq!(counts(&store, g).await, (4, 4));
        // The creator's version counts its entries exactly: nothing of a refused add was kept.
        let rows = group_changes(&store, 1).await;
        assert_eq!(version_of(&store, uid(1)).await, rows.len() as i64);
    }
);

both_backends!(
    concurrent_joins_respect_the_group_limit_per_user,
    |store: Store| async move {
        let ids: Vec<i64> = (1..=RACERS as i64 + 1).collect();
        users(&store, &ids).await;
        let policy = GroupPolicy {
            max_groups_per_user: 3,
            ..GroupPolicy::default()
        };
        // Each racer creates a group of its own with user 1 in it.
        let results = race(&store, |store, i| async move {
            let owner = i as i64 + 2;
            act_at(
                &store,
                owner,
                gid(100 + owner),
                create("Race", &[1]),
                policy,
                NOW,
            )
            .await
        })
        .await;
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            3,
            "{results:?}"
        );
        assert_eq!(store.groups_of(uid(1)).await.unwrap().len(), 3);
    }
);

both_backends!(
    a_large_group_writes_its_change_log_in_batches,
    |store: Store| async move {
        let ids: Vec<i64> = (1..=120).collect();
        users(&store, &ids).await;
        let g = gid(40);
        act(&store, 1, g, create("Crowd", &ids)).await.unwrap();
        // 120 members: each gets the group plus 120 member rows.
        for user in [1, 60, 120] {
            let rows = group_changes(&store, user).await;
            assert_eq!(rows.len(), 121);
            assert_eq!(version_of(&store, uid(user)).await, 121);
        }
        assert_eq!(counts(&store, g).await, (120, 120));
    }
);
