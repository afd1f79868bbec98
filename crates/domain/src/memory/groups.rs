//! An in-memory [`GroupStore`]: groups and their members behind one mutex, with a change log.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use super::MemoryAccountStore;
use crate::error::{DomainError, DomainResult};
use crate::group::{
    change_entries, ChangeEntry, GroupDecide, GroupState, GroupStore, MemberView, MyGroup,
};
use crate::ids::{GroupId, UserId};

#[derive(Debug, Default)]
struct Tables {
    groups: BTreeMap<GroupId, GroupState>,
    log: Vec<ChangeEntry>,
}

/// An in-memory [`GroupStore`] whose writes bump versions in a [`MemoryAccountStore`]. One
/// mutex makes every write atomic; the change entries it recorded can be read back.
#[derive(Debug)]
pub struct MemoryGroupStore {
    accounts: Arc<MemoryAccountStore>,
    tables: Mutex<Tables>,
}

impl MemoryGroupStore {
    /// A store whose users live in `accounts`.
    pub fn new(accounts: Arc<MemoryAccountStore>) -> Self {
        Self {
            accounts,
            tables: Mutex::new(Tables::default()),
        }
    }

    fn tables(&self) -> DomainResult<MutexGuard<'_, Tables>> {
        self.tables
            .lock()
            .map_err(|_| DomainError::Internal("poisoned".into()))
    }

    /// Every change entry recorded so far, in the order written.
    pub fn change_log(&self) -> Vec<ChangeEntry> {
        self.tables().map(|t| t.log.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl GroupStore for MemoryGroupStore {
    async fn write(
        &self,
        group: GroupId,
        joining: Vec<UserId>,
        decide: GroupDecide,
    ) -> DomainResult<GroupState> {
        let (after, entries) = {
            let mut t = self.tables()?;
            let counts: BTreeMap<UserId, u32> = joining
                .iter()
                .map(|u| {
                    let n = t
                        .groups
                        .values()
                        .filter(|g| g.members.contains_key(u))
                        .count();
                    (*u, u32::try_from(n).unwrap_or(u32::MAX))
                })
                .collect();
            let before = t.groups.get(&group).cloned();
            let after = decide(before.as_ref(), &counts)?;
            let entries = change_entries(before.as_ref(), &after);
            if before.as_ref() != Some(&after) {
                t.groups.insert(group, after.clone());
                t.log.extend(entries.iter().copied());
            }
            (after, entries)
        };
        for e in entries {
            self.accounts.bump(e.owner);
        }
        Ok(after)
    }

    async fn state(&self, group: GroupId) -> DomainResult<Option<GroupState>> {
        Ok(self.tables()?.groups.get(&group).cloned())
    }

    async fn member_views(&self, group: GroupId) -> DomainResult<Vec<MemberView>> {
        let members = self
            .tables()?
            .groups
            .get(&group)
            .map(|g| g.members.clone())
            .unwrap_or_default();
        Ok(members
            .into_iter()
            .map(|(user, member)| {
                let profile = self.accounts.profile(user);
                MemberView {
                    user,
                    nickname: profile
                        .as_ref()
                        .map(|p| p.nickname.clone())
                        .unwrap_or_default(),
                    portrait_uri: profile.map(|p| p.portrait_uri).unwrap_or_default(),
                    member,
                }
            })
            .collect())
    }

    async fn groups_of(&self, user: UserId) -> DomainResult<Vec<MyGroup>> {
        Ok(self
            .tables()?
            .groups
            .values()
            .filter_map(|g| {
                g.members.get(&user).map(|m| MyGroup {
                    info: g.info(),
                    role: m.role,
                    display_name: m.display_name.clone(),
                })
            })
            .collect())
    }
}
