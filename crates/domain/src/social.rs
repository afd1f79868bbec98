//! The relationship service: runs state-machine commands on stored pairs, reads lists, and
//! handles phone-book uploads and lookups, over the relationship and account ports.

use std::sync::Arc;

use crate::error::{DomainError, DomainResult};
use crate::ids::{Millis, RequestId, UserId};
use crate::phone::Phone;
use crate::ports::{
    AccountStore, Clock, Counterpart, Page, Random, Related, RelationshipStore, SideFilter,
    UserProfile,
};
use crate::ratelimit::WindowLimiter;
use crate::relationship::{
    apply, Command, Context, Outcome, Pair, Policy, RemarkPatch, Transition,
};

const DAY: Millis = 24 * 60 * 60 * 1000;

/// The most friends one batch delete ends.
pub const BATCH_DELETE_MAX: usize = 100;

/// The tunable limits of the relationship rules.
#[derive(Debug, Clone)]
pub struct RelationshipPolicy {
    /// Invite cooldowns.
    pub cooldowns: Policy,
    /// The most rows one list answer holds; longer lists are cut and linked.
    pub list_cap: u32,
    /// The most entries in one phone-book upload or lookup.
    pub upload_max: usize,
    /// Phones one account may upload or look up per day, against harvesting.
    pub phones_per_day: u32,
}

impl Default for RelationshipPolicy {
    fn default() -> Self {
        Self {
            cooldowns: Policy::default(),
            list_cap: 1000,
            upload_max: 1000,
            phones_per_day: 5000,
        }
    }
}

/// The ports the relationship service drives.
#[derive(Debug, Clone)]
pub struct RelationshipPorts {
    /// Pairs.
    pub store: Arc<dyn RelationshipStore>,
    /// Users.
    pub accounts: Arc<dyn AccountStore>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Randomness for request and placeholder ids.
    pub random: Arc<dyn Random>,
}

/// One page of a list and the cursor of the next, if the list was cut.
#[derive(Debug, Clone)]
pub struct Listed {
    /// The rows, shared with the store that read them.
    pub rows: Vec<Arc<Related>>,
    /// Pass as `after` to read on; `None` at the end.
    pub next: Option<UserId>,
}

/// One entry of a phone-book upload.
#[derive(Debug, Clone)]
pub struct UploadEntry {
    /// The number as written in the phone book.
    pub phone: String,
    /// The name the uploader gave it (optional).
    pub display_name: Option<String>,
}

/// What became of one upload entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadResult {
    /// The phone became (or already was) a contact I follow.
    Ok {
        /// The normalised phone.
        phone: Phone,
        /// Its user (a placeholder when not registered).
        user_id: UserId,
        /// Whether the user is a registered account.
        registered: bool,
    },
    /// The entry was refused; the others went on.
    Err(DomainError),
}

/// One answer of a phone lookup (SealTalk `get_contacts_info`).
#[derive(Debug, Clone)]
pub struct ContactInfo {
    /// The phone as asked.
    pub phone: String,
    /// The registered, findable user with that phone.
    pub user: Option<UserProfile>,
    /// Whether that user is my friend.
    pub is_friend: bool,
}

/// Friend requests, follows, blocks, remarks and lists: every relationship rule, over the ports.
#[derive(Debug)]
pub struct RelationshipService {
    ports: RelationshipPorts,
    policy: RelationshipPolicy,
    phone_quota: WindowLimiter,
}

impl RelationshipService {
    /// Builds the service.
    pub fn new(ports: RelationshipPorts, policy: RelationshipPolicy) -> Self {
        let phone_quota = WindowLimiter::new(policy.phones_per_day, DAY, 100_000);
        Self {
            ports,
            policy,
            phone_quota,
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &RelationshipPolicy {
        &self.policy
    }

    fn context(&self, they_require_verification: bool) -> Context {
        Context {
            now: self.ports.clock.now(),
            new_request_id: RequestId::from_random(self.ports.random.next_u64()),
            policy: self.policy.cooldowns,
            they_require_verification,
        }
    }

    /// A registered user other than `me`: `Invalid` for myself, `NotFound` for anyone unknown.
    pub async fn target(&self, me: UserId, other: UserId) -> DomainResult<UserProfile> {
        if me == other {
            return Err(DomainError::invalid("id", "cannot be yourself"));
        }
        match self.ports.accounts.get_user(other).await? {
            Some(user) if user.registered => Ok(user),
            _ => Err(DomainError::NotFound("user")),
        }
    }

    /// Runs one command of `me` on `other`, a registered user, in one transaction.
    /// `Invalid` for myself, `NotFound` for anyone unknown (as [`Self::target`]).
    pub async fn run(&self, me: UserId, other: UserId, cmd: Command) -> DomainResult<Transition> {
        if me == other {
            return Err(DomainError::invalid("id", "cannot be yourself"));
        }
        // Who they are is read in the transition's transaction, not before it: one read fewer
        // per request, and the verification rule applies as the transaction sees it.
        let ctx = self.context(true);
        let decide = move |pair: &Pair, them: Option<Counterpart>| match them {
            Some(them) if them.registered => {
                let ctx = Context {
                    they_require_verification: them.friend_verification,
                    ..ctx
                };
                apply(pair, &cmd, &ctx)
            }
            _ => Err(DomainError::NotFound("user")),
        };
        self.ports
            .store
            .transition(me, other, Box::new(decide))
            .await
    }

    /// Runs a command on the other party of the pending request `request_id` (001's ids).
    /// A request `me` takes no part in answers `NotFound`.
    pub async fn run_on_request(
        &self,
        me: UserId,
        request_id: RequestId,
        cmd: Command,
    ) -> DomainResult<Transition> {
        let other = self
            .ports
            .store
            .find_request(me, request_id)
            .await?
            .ok_or(DomainError::NotFound("friend_request"))?;
        self.run(me, other, cmd).await
    }

    /// Ends the friendship with each of `others` (at most [`BATCH_DELETE_MAX`]). Someone who is
    /// not, or no longer, a friend counts as already deleted; any other refusal stops the batch.
    pub async fn delete_friends(&self, me: UserId, others: &[UserId]) -> DomainResult<()> {
        if others.len() > BATCH_DELETE_MAX {
            return Err(DomainError::invalid("friendIds", "at most 100 ids"));
        }
        for other in others {
            match self.run(me, *other, Command::Delete).await {
                Ok(_) | Err(DomainError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The pair as `me` sees it. When the other user blocks `me`, they are not there to see.
    /// A placeholder from my phone-book upload is there to see while I have a row on it.
    pub async fn get(&self, me: UserId, other: UserId) -> DomainResult<Related> {
        if me == other {
            return Err(DomainError::invalid("id", "cannot be yourself"));
        }
        let user = self
            .ports
            .accounts
            .get_user(other)
            .await?
            .ok_or(DomainError::NotFound("user"))?;
        let Pair { mine, theirs } = self.ports.store.pair(me, other).await?;
        if theirs.blocking || (!user.registered && mine.is_empty()) {
            return Err(DomainError::NotFound("user"));
        }
        Ok(Related { user, mine, theirs })
    }

    /// A friend's profile; anyone who is not a friend answers `Forbidden`.
    pub async fn friend(&self, me: UserId, other: UserId) -> DomainResult<Related> {
        let user = self.target(me, other).await?;
        let Pair { mine, theirs } = self.ports.store.pair(me, other).await?;
        if !mine.is_friend() {
            return Err(DomainError::Forbidden("not a friend"));
        }
        Ok(Related { user, mine, theirs })
    }

    /// One page of `me`'s rows that match `filter`. `limit` is capped by the policy.
    pub async fn list(
        &self,
        me: UserId,
        filter: SideFilter,
        limit: Option<u32>,
        after: Option<UserId>,
    ) -> DomainResult<Listed> {
        let limit = limit
            .unwrap_or(self.policy.list_cap)
            .clamp(1, self.policy.list_cap);
        let mut rows = self
            .ports
            .store
            .list(
                me,
                filter,
                Page {
                    after,
                    limit: limit + 1,
                },
            )
            .await?;
        let next = if rows.len() > limit as usize {
            rows.truncate(limit as usize);
            rows.last().map(|r| r.user.id)
        } else {
            None
        };
        if filter == SideFilter::Any {
            // Someone who blocks me is not there to see, as in `get`. The cursor above still
            // comes from the last row read, so paging stays exact.
            rows.retain(|r| !r.theirs.blocking);
        }
        Ok(Listed { rows, next })
    }

    /// How many friend requests wait for `me`.
    pub async fn pending_requests(&self, me: UserId) -> DomainResult<u64> {
        self.ports.store.count_incoming(me).await
    }

    fn check_batch(&self, len: usize, field: &'static str) -> DomainResult<()> {
        if len > self.policy.upload_max {
            return Err(DomainError::invalid(
                field,
                format!("at most {} entries per call", self.policy.upload_max),
            ));
        }
        Ok(())
    }

    fn spend_quota(&self, me: UserId) -> DomainResult<()> {
        self.phone_quota
            .hit(&me.to_string(), self.ports.clock.now())
    }

    /// Uploads a phone book: each number becomes a contact I follow, with my name for it and its
    /// phone visible to me. Unknown numbers become placeholder users that their owner takes over
    /// on sign-up. A bad entry is reported and the others go on.
    pub async fn upload(
        &self,
        me: UserId,
        my_region: &str,
        entries: Vec<UploadEntry>,
    ) -> DomainResult<Vec<UploadResult>> {
        self.check_batch(entries.len(), "contacts")?;
        let mut results = Vec::with_capacity(entries.len());
        for entry in entries {
            results.push(match self.upload_one(me, my_region, entry).await {
                Ok(r) => r,
                Err(e @ (DomainError::Unavailable(_) | DomainError::Internal(_))) => return Err(e),
                Err(e) => UploadResult::Err(e),
            });
        }
        Ok(results)
    }

    async fn upload_one(
        &self,
        me: UserId,
        my_region: &str,
        entry: UploadEntry,
    ) -> DomainResult<UploadResult> {
        let phone = Phone::parse_loose(my_region, &entry.phone)?;
        self.spend_quota(me)?;
        let now = self.ports.clock.now();
        let candidate = UserId::from_random(self.ports.random.next_u64());
        let user = self.ports.store.ensure_user(&phone, candidate, now).await?;
        if user.id == me {
            return Err(DomainError::invalid("phone", "is your own number"));
        }
        let ctx = self.context(user.privacy.friend_verification);
        let remark = Command::SetRemark(RemarkPatch {
            display_name: entry.display_name,
            ..RemarkPatch::default()
        });
        self.ports
            .store
            .transition(
                me,
                user.id,
                // The user was just read or made (`ensure_user`), placeholder or not.
                Box::new(move |pair, _| {
                    let mut t = apply(pair, &remark, &ctx)?;
                    t = chain(t, &Command::SetPhoneVisible(true), &ctx, false)?;
                    // They may block me; the contact still keeps my name for them.
                    chain(t, &Command::Follow, &ctx, true)
                }),
            )
            .await?;
        Ok(UploadResult::Ok {
            phone,
            user_id: user.id,
            registered: user.registered,
        })
    }

    /// Looks phones up for `me`: registered and findable users, and whether each is a friend.
    /// Unknown, unregistered, hidden and blocking users all answer the same `None`.
    pub async fn contacts_info(
        &self,
        me: UserId,
        my_region: &str,
        phones: Vec<String>,
    ) -> DomainResult<Vec<ContactInfo>> {
        self.check_batch(phones.len(), "contacts")?;
        let mut out = Vec::with_capacity(phones.len());
        for raw in phones {
            let phone = Phone::parse_loose(my_region, &raw)?;
            self.spend_quota(me)?;
            let found = self.ports.accounts.find_by_phone(&phone).await?;
            let mut info = ContactInfo {
                phone: raw,
                user: None,
                is_friend: false,
            };
            if let Some(user) = found.filter(|u| u.registered && u.id != me) {
                let pair = self.ports.store.pair(me, user.id).await?;
                if !pair.theirs.blocking && user.privacy.findable_by_phone {
                    info.is_friend = pair.mine.is_friend();
                    info.user = Some(user);
                }
            }
            out.push(info);
        }
        Ok(out)
    }
}

/// Applies `cmd` after `t`, merging the two transitions; with `tolerate`, a refused command
/// leaves `t` as it was.
fn chain(t: Transition, cmd: &Command, ctx: &Context, tolerate: bool) -> DomainResult<Transition> {
    match apply(&t.pair, cmd, ctx) {
        Ok(next) => {
            let mut events = t.events;
            events.extend(next.events);
            Ok(Transition {
                pair: next.pair,
                outcome: if next.outcome == Outcome::Unchanged {
                    t.outcome
                } else {
                    next.outcome
                },
                mine_changed: t.mine_changed || next.mine_changed,
                theirs_changed: t.theirs_changed || next.theirs_changed,
                events,
            })
        }
        Err(_) if tolerate => Ok(t),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests;
