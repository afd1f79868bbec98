//! In-memory ports (clock, randomness, stores, SMS), for tests of the domain and of services that link it.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::error::{DomainError, DomainResult};
use crate::ids::{Millis, RequestId, UserId};
use crate::phone::Phone;
use crate::ports::{
    AccountStore, Clock, CodeRecord, Counterpart, Decide, LoginRecord, LoginThrottle, NewAccount,
    NewVerificationToken, Page, PasswordHasher, ProfileChange, Random, Related, RelationshipStore,
    SessionRecord, SideFilter, SmsGateway, SmsMessage, UserProfile,
};
use crate::relationship::{Pair, Side, Transition};

mod groups;
pub use groups::MemoryGroupStore;

/// A clock that stands still until a test moves it.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock showing `now`.
    pub fn new(now: Millis) -> Self {
        Self(AtomicI64::new(now))
    }
    /// Moves the clock forward by `ms`.
    pub fn advance(&self, ms: Millis) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
    /// Sets the clock.
    pub fn set(&self, now: Millis) {
        self.0.store(now, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Millis {
        self.0.load(Ordering::SeqCst)
    }
}

/// A deterministic random source (splitmix64). Never use it outside tests.
#[derive(Debug)]
pub struct SeqRandom(AtomicU64);

impl SeqRandom {
    /// A sequence starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(AtomicU64::new(seed))
    }
}

impl Random for SeqRandom {
    fn fill(&self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let mut z = self
                .0
                .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::SeqCst)
                .wrapping_add(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let bytes = z.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// An SMS gateway that keeps every message, so tests can read the codes.
#[derive(Debug, Default)]
pub struct MemorySms {
    sent: Mutex<Vec<SmsMessage>>,
    failing: AtomicBool,
}

impl MemorySms {
    /// Every message sent so far.
    pub fn sent(&self) -> Vec<SmsMessage> {
        self.sent.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// The code of the last message to `phone`.
    pub fn last_code(&self, phone: &Phone) -> Option<String> {
        self.sent()
            .into_iter()
            .rev()
            .find(|m| m.phone == *phone)
            .map(|m| m.code)
    }

    /// Makes every later send fail as if the provider were down.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }
}

#[async_trait]
impl SmsGateway for MemorySms {
    async fn send(&self, message: &SmsMessage) -> DomainResult<()> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(DomainError::Unavailable("sms gateway down".into()));
        }
        self.sent
            .lock()
            .map_err(|_| DomainError::Internal("poisoned".into()))?
            .push(message.clone());
        Ok(())
    }
}

/// A fast, insecure stand-in for bcrypt: `plain$<cost>$<password>`. Tests only.
#[derive(Debug)]
pub struct PlainHasher {
    cost: u32,
    dummy: String,
    verifications: AtomicU64,
}

impl PlainHasher {
    /// A hasher whose current policy is `cost`.
    pub fn new(cost: u32) -> Self {
        Self {
            cost,
            dummy: format!("plain${cost}$\u{0}dummy"),
            verifications: AtomicU64::new(0),
        }
    }

    /// How many verifications ran (to prove the dummy hash is checked for unknown users).
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl PasswordHasher for PlainHasher {
    async fn hash(&self, password: &str) -> DomainResult<String> {
        Ok(format!("plain${}${password}", self.cost))
    }

    async fn verify(&self, password: &str, hash: &str) -> DomainResult<bool> {
        self.verifications.fetch_add(1, Ordering::SeqCst);
        Ok(hash
            .splitn(3, '$')
            .nth(2)
            .is_some_and(|stored| stored == password))
    }

    fn needs_upgrade(&self, hash: &str) -> bool {
        hash.split('$')
            .nth(1)
            .and_then(|c| c.parse::<u32>().ok())
            .is_none_or(|c| c < self.cost)
    }

    fn dummy_hash(&self) -> &str {
        &self.dummy
    }
}

#[derive(Debug, Clone)]
struct MemUser {
    profile: UserProfile,
    password_hash: Option<String>,
    throttle: LoginThrottle,
    version: i64,
}

#[derive(Debug, Default)]
struct AccountTables {
    users: BTreeMap<UserId, MemUser>,
    codes: HashMap<String, CodeRecord>,
    tokens: HashMap<String, (NewVerificationToken, bool)>,
    sessions: HashMap<String, SessionRecord>,
}

/// An in-memory [`AccountStore`]. One mutex makes every call atomic, like a transaction.
#[derive(Debug, Default)]
pub struct MemoryAccountStore {
    tables: Mutex<AccountTables>,
}

impl MemoryAccountStore {
    fn with<T>(&self, f: impl FnOnce(&mut AccountTables) -> DomainResult<T>) -> DomainResult<T> {
        let mut guard = self
            .tables
            .lock()
            .map_err(|_| DomainError::Internal("poisoned".into()))?;
        f(&mut guard)
    }

    /// Adds a registered user without a password (for tests of relationship rules).
    pub fn add_user(
        &self,
        id: UserId,
        phone: &Phone,
        nickname: &str,
        now: Millis,
    ) -> DomainResult<()> {
        self.add_placeholder(id, phone, now)?;
        self.with(|t| {
            if let Some(u) = t.users.get_mut(&id) {
                u.profile.registered = true;
                u.profile.nickname = nickname.to_owned();
            }
            Ok(())
        })
    }

    /// Adds a placeholder (unregistered) user for `phone`, as a phone-book upload does.
    pub fn add_placeholder(&self, id: UserId, phone: &Phone, now: Millis) -> DomainResult<()> {
        self.with(|t| {
            t.users.insert(
                id,
                MemUser {
                    profile: UserProfile::placeholder(id, phone.clone(), now),
                    password_hash: None,
                    throttle: LoginThrottle::default(),
                    version: 0,
                },
            );
            Ok(())
        })
    }

    /// The sync version of a user (grows with every change of their profile).
    pub fn version(&self, id: UserId) -> i64 {
        self.with(|t| Ok(t.users.get(&id).map_or(0, |u| u.version)))
            .unwrap_or(0)
    }

    /// How many sessions `id` has.
    pub fn session_count(&self, id: UserId) -> usize {
        self.with(|t| Ok(t.sessions.values().filter(|s| s.user_id == id).count()))
            .unwrap_or(0)
    }
}

fn login_record(u: &MemUser) -> Option<LoginRecord> {
    Some(LoginRecord {
        user_id: u.profile.id,
        password_hash: u.password_hash.clone()?,
        throttle: u.throttle,
    })
}

fn take_token(t: &mut AccountTables, token_hash: &str, now: Millis) -> DomainResult<Phone> {
    match t.tokens.get_mut(token_hash) {
        Some((token, used)) if !*used && token.expires_at > now => {
            *used = true;
            Ok(token.phone.clone())
        }
        _ => Err(DomainError::NotFound("verification_token")),
    }
}

#[async_trait]
impl AccountStore for MemoryAccountStore {
    async fn put_code(
        &self,
        phone: &Phone,
        code: CodeRecord,
        idle_since: Millis,
    ) -> DomainResult<bool> {
        self.with(|t| {
            if t.codes
                .get(phone.e164())
                .is_some_and(|c| c.sent_at > idle_since)
            {
                return Ok(false);
            }
            t.codes.insert(phone.e164().to_owned(), code);
            Ok(true)
        })
    }

    async fn get_code(&self, phone: &Phone) -> DomainResult<Option<CodeRecord>> {
        self.with(|t| Ok(t.codes.get(phone.e164()).cloned()))
    }

    async fn add_code_attempt(&self, phone: &Phone) -> DomainResult<()> {
        self.with(|t| {
            if let Some(c) = t.codes.get_mut(phone.e164()) {
                c.attempts += 1;
            }
            Ok(())
        })
    }

    async fn consume_code(
        &self,
        phone: &Phone,
        code_hash: &str,
        now: Millis,
        max_attempts: i32,
        token: NewVerificationToken,
    ) -> DomainResult<bool> {
        self.with(|t| {
            let live = t.codes.get(phone.e164()).is_some_and(|c| {
                c.code_hash == code_hash && c.expires_at > now && c.attempts < max_attempts
            });
            if !live {
                return Ok(false);
            }
            if let Some(c) = t.codes.get_mut(phone.e164()) {
                // Kept, unmatchable, so the send throttle still sees when it went out.
                c.code_hash.clear();
            }
            t.tokens.insert(token.token_hash.clone(), (token, false));
            Ok(true)
        })
    }

    async fn phone_registered(&self, phone: &Phone) -> DomainResult<bool> {
        self.with(|t| {
            Ok(t.users
                .values()
                .any(|u| u.profile.registered && u.profile.phone == *phone))
        })
    }

    async fn register(&self, token_hash: &str, account: NewAccount) -> DomainResult<UserId> {
        self.with(|t| {
            let phone = take_token(t, token_hash, account.now)?;
            let existing = t.users.values_mut().find(|u| u.profile.phone == phone);
            if let Some(user) = existing {
                if user.profile.registered {
                    return Err(DomainError::Conflict("phone"));
                }
                user.profile.registered = true;
                user.profile.nickname = account.nickname;
                user.profile.updated_at = account.now;
                user.password_hash = Some(account.password_hash);
                user.version += 1;
                return Ok(user.profile.id);
            }
            if t.users.contains_key(&account.candidate_id) {
                return Err(DomainError::Conflict("id"));
            }
            let id = account.candidate_id;
            t.users.insert(
                id,
                MemUser {
                    profile: UserProfile {
                        registered: true,
                        nickname: account.nickname,
                        ..UserProfile::placeholder(id, phone, account.now)
                    },
                    password_hash: Some(account.password_hash),
                    throttle: LoginThrottle::default(),
                    version: 1,
                },
            );
            Ok(id)
        })
    }

    async fn reset_password(
        &self,
        token_hash: &str,
        now: Millis,
        password_hash: &str,
    ) -> DomainResult<UserId> {
        self.with(|t| {
            // Check before consuming so a token for an unregistered phone stays usable for sign-up.
            let phone = match t.tokens.get(token_hash) {
                Some((token, false)) if token.expires_at > now => token.phone.clone(),
                _ => return Err(DomainError::NotFound("verification_token")),
            };
            let id = t
                .users
                .values()
                .find(|u| u.profile.registered && u.profile.phone == phone)
                .map(|u| u.profile.id)
                .ok_or(DomainError::NotFound("verification_token"))?;
            take_token(t, token_hash, now)?;
            if let Some(u) = t.users.get_mut(&id) {
                u.password_hash = Some(password_hash.to_owned());
                u.throttle = LoginThrottle::default();
            }
            t.sessions.retain(|_, s| s.user_id != id);
            Ok(id)
        })
    }

    async fn find_login(&self, phone: &Phone) -> DomainResult<Option<LoginRecord>> {
        self.with(|t| {
            Ok(t.users
                .values()
                .find(|u| u.profile.registered && u.profile.phone == *phone)
                .and_then(login_record))
        })
    }

    async fn login_by_id(&self, user: UserId) -> DomainResult<Option<LoginRecord>> {
        self.with(|t| Ok(t.users.get(&user).and_then(login_record)))
    }

    async fn set_throttle(&self, user: UserId, throttle: LoginThrottle) -> DomainResult<()> {
        self.with(|t| {
            if let Some(u) = t.users.get_mut(&user) {
                u.throttle = throttle;
            }
            Ok(())
        })
    }

    async fn set_password_hash(
        &self,
        user: UserId,
        hash: &str,
        revoke_except: Option<Option<String>>,
    ) -> DomainResult<()> {
        self.with(|t| {
            let u = t
                .users
                .get_mut(&user)
                .ok_or(DomainError::NotFound("user"))?;
            u.password_hash = Some(hash.to_owned());
            if let Some(keep) = revoke_except {
                t.sessions
                    .retain(|h, s| s.user_id != user || keep.as_deref() == Some(h.as_str()));
            }
            Ok(())
        })
    }

    async fn create_session(&self, session: SessionRecord) -> DomainResult<()> {
        self.with(|t| {
            t.sessions.insert(session.token_hash.clone(), session);
            Ok(())
        })
    }

    async fn get_session(&self, token_hash: &str) -> DomainResult<Option<SessionRecord>> {
        self.with(|t| Ok(t.sessions.get(token_hash).cloned()))
    }

    async fn touch_session(&self, token_hash: &str, now: Millis) -> DomainResult<()> {
        self.with(|t| {
            if let Some(s) = t.sessions.get_mut(token_hash) {
                s.last_seen_at = now;
            }
            Ok(())
        })
    }

    async fn delete_session(&self, token_hash: &str) -> DomainResult<()> {
        self.with(|t| {
            t.sessions.remove(token_hash);
            Ok(())
        })
    }

    async fn get_user(&self, user: UserId) -> DomainResult<Option<UserProfile>> {
        self.with(|t| Ok(t.users.get(&user).map(|u| u.profile.clone())))
    }

    async fn find_by_phone(&self, phone: &Phone) -> DomainResult<Option<UserProfile>> {
        self.with(|t| {
            Ok(t.users
                .values()
                .find(|u| u.profile.phone == *phone)
                .map(|u| u.profile.clone()))
        })
    }

    async fn update_profile(
        &self,
        user: UserId,
        change: ProfileChange,
        now: Millis,
    ) -> DomainResult<()> {
        self.with(|t| {
            let u = t
                .users
                .get_mut(&user)
                .ok_or(DomainError::NotFound("user"))?;
            let p = &mut u.profile;
            match change {
                ProfileChange::Nickname(n) => p.nickname = n,
                ProfileChange::PortraitUri(uri) => p.portrait_uri = uri,
                ProfileChange::Privacy(privacy) => p.privacy = privacy,
                ProfileChange::Details {
                    user_name,
                    gender,
                    birth_date,
                    email,
                } => {
                    if let Some(v) = user_name {
                        p.user_name = v;
                    }
                    if let Some(v) = gender {
                        p.gender = v;
                    }
                    if let Some(v) = birth_date {
                        p.birth_date = v;
                    }
                    if let Some(v) = email {
                        p.email = v;
                    }
                }
            }
            p.updated_at = now;
            u.version += 1;
            Ok(())
        })
    }

    async fn ping(&self) -> DomainResult<()> {
        Ok(())
    }
}

impl MemoryAccountStore {
    fn profile(&self, id: UserId) -> Option<UserProfile> {
        self.with(|t| Ok(t.users.get(&id).map(|u| u.profile.clone())))
            .ok()
            .flatten()
    }

    fn profile_by_phone(&self, phone: &Phone) -> Option<UserProfile> {
        self.with(|t| {
            Ok(t.users
                .values()
                .find(|u| u.profile.phone == *phone)
                .map(|u| u.profile.clone()))
        })
        .ok()
        .flatten()
    }

    fn bump(&self, id: UserId) {
        let _ = self.with(|t| {
            if let Some(u) = t.users.get_mut(&id) {
                u.version += 1;
            }
            Ok(())
        });
    }
}

/// An in-memory [`RelationshipStore`] over a [`MemoryAccountStore`]'s users. One mutex makes
/// every transition atomic.
#[derive(Debug)]
pub struct MemoryRelationshipStore {
    accounts: std::sync::Arc<MemoryAccountStore>,
    rows: Mutex<BTreeMap<(UserId, UserId), Side>>,
}

impl MemoryRelationshipStore {
    /// A store whose users live in `accounts`.
    pub fn new(accounts: std::sync::Arc<MemoryAccountStore>) -> Self {
        Self {
            accounts,
            rows: Mutex::new(BTreeMap::new()),
        }
    }

    fn rows(&self) -> DomainResult<std::sync::MutexGuard<'_, BTreeMap<(UserId, UserId), Side>>> {
        self.rows
            .lock()
            .map_err(|_| DomainError::Internal("poisoned".into()))
    }
}

fn side_of(rows: &BTreeMap<(UserId, UserId), Side>, a: UserId, b: UserId) -> Side {
    rows.get(&(a, b)).cloned().unwrap_or_default()
}

fn matches(filter: SideFilter, mine: &Side, theirs: &Side) -> bool {
    match filter {
        SideFilter::Any => !mine.is_empty(),
        SideFilter::Friendship => mine.friendship.sealtalk_status().is_some(),
        SideFilter::Friends => mine.is_friend(),
        SideFilter::Incoming => mine.pending_incoming(),
        SideFilter::Outgoing => mine.pending_outgoing(),
        SideFilter::Following => mine.following,
        SideFilter::Followers => theirs.following,
        SideFilter::Blocking => mine.blocking,
    }
}

#[async_trait]
impl RelationshipStore for MemoryRelationshipStore {
    async fn transition(
        &self,
        me: UserId,
        other: UserId,
        decide: Decide,
    ) -> DomainResult<Transition> {
        let them = self
            .accounts
            .with(|t| Ok(t.users.get(&other).map(|u| Counterpart::of(&u.profile))))?;
        let t = {
            let mut rows = self.rows()?;
            let pair = Pair {
                mine: side_of(&rows, me, other),
                theirs: side_of(&rows, other, me),
            };
            let t = decide(&pair, them)?;
            if t.mine_changed {
                rows.insert((me, other), t.pair.mine.clone());
            }
            if t.theirs_changed {
                rows.insert((other, me), t.pair.theirs.clone());
            }
            t
        };
        if t.mine_changed {
            self.accounts.bump(me);
        }
        if t.theirs_changed {
            self.accounts.bump(other);
        }
        Ok(t)
    }

    async fn pair(&self, me: UserId, other: UserId) -> DomainResult<Pair> {
        let rows = self.rows()?;
        Ok(Pair {
            mine: side_of(&rows, me, other),
            theirs: side_of(&rows, other, me),
        })
    }

    async fn list(
        &self,
        owner: UserId,
        filter: SideFilter,
        page: Page,
    ) -> DomainResult<Vec<std::sync::Arc<Related>>> {
        let candidates: Vec<(UserId, Side, Side)> = {
            let rows = self.rows()?;
            let mut others: Vec<UserId> = rows
                .keys()
                .filter_map(|(a, b)| {
                    if *a == owner {
                        Some(*b)
                    } else if *b == owner {
                        Some(*a)
                    } else {
                        None
                    }
                })
                .filter(|o| page.after.is_none_or(|after| *o > after))
                .collect();
            others.sort();
            others.dedup();
            others
                .into_iter()
                .map(|o| (o, side_of(&rows, owner, o), side_of(&rows, o, owner)))
                .filter(|(_, mine, theirs)| matches(filter, mine, theirs))
                .collect()
        };
        Ok(candidates
            .into_iter()
            .filter_map(|(o, mine, theirs)| {
                self.accounts
                    .profile(o)
                    .map(|user| std::sync::Arc::new(Related { user, mine, theirs }))
            })
            .take(page.limit as usize)
            .collect())
    }

    async fn find_request(
        &self,
        owner: UserId,
        request_id: RequestId,
    ) -> DomainResult<Option<UserId>> {
        let rows = self.rows()?;
        Ok(rows
            .iter()
            .find(|((a, _), side)| *a == owner && side.request_id == Some(request_id))
            .map(|((_, b), _)| *b))
    }

    async fn count_incoming(&self, owner: UserId) -> DomainResult<u64> {
        let rows = self.rows()?;
        Ok(rows
            .iter()
            .filter(|((a, _), side)| *a == owner && side.pending_incoming())
            .count() as u64)
    }

    async fn ensure_user(
        &self,
        phone: &Phone,
        candidate: UserId,
        now: Millis,
    ) -> DomainResult<UserProfile> {
        if let Some(user) = self.accounts.profile_by_phone(phone) {
            return Ok(user);
        }
        self.accounts.add_placeholder(candidate, phone, now)?;
        self.accounts
            .profile(candidate)
            .ok_or(DomainError::Internal("placeholder vanished".into()))
    }
}

/// The contacts and tags of every owner, for [`MemoryAddressBookStore`].
#[derive(Debug, Default)]
struct AddressBookTables {
    contacts: BTreeMap<(UserId, crate::addressbook::ContactId), crate::addressbook::Contact>,
    tags: BTreeMap<(UserId, crate::addressbook::TagId), crate::addressbook::Tag>,
}

impl AddressBookTables {
    fn check_tags(
        &self,
        owner: UserId,
        fields: &crate::addressbook::ContactFields,
    ) -> DomainResult<()> {
        match fields
            .tag_ids()
            .iter()
            .find(|t| !self.tags.contains_key(&(owner, **t)))
        {
            Some(t) => Err(DomainError::invalid(
                "tag_ids",
                format!("unknown tag \"{t}\""),
            )),
            None => Ok(()),
        }
    }
}

/// An in-memory [`crate::ports::AddressBookStore`] whose writes bump versions in a
/// [`MemoryAccountStore`]. One mutex makes every call atomic.
#[derive(Debug)]
pub struct MemoryAddressBookStore {
    accounts: std::sync::Arc<MemoryAccountStore>,
    tables: Mutex<AddressBookTables>,
}

impl MemoryAddressBookStore {
    /// A store whose owners' versions live in `accounts`.
    pub fn new(accounts: std::sync::Arc<MemoryAccountStore>) -> Self {
        Self {
            accounts,
            tables: Mutex::new(AddressBookTables::default()),
        }
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut AddressBookTables) -> DomainResult<T>,
    ) -> DomainResult<T> {
        let mut guard = self
            .tables
            .lock()
            .map_err(|_| DomainError::Internal("poisoned".into()))?;
        f(&mut guard)
    }
}

#[async_trait]
impl crate::ports::AddressBookStore for MemoryAddressBookStore {
    async fn insert_contact(
        &self,
        owner: UserId,
        contact: crate::addressbook::Contact,
    ) -> DomainResult<()> {
        self.with(|t| {
            t.check_tags(owner, &contact.fields)?;
            if t.contacts.contains_key(&(owner, contact.id)) {
                return Err(DomainError::Conflict("contact"));
            }
            t.contacts.insert((owner, contact.id), contact);
            Ok(())
        })?;
        self.accounts.bump(owner);
        Ok(())
    }

    async fn contact(
        &self,
        owner: UserId,
        id: crate::addressbook::ContactId,
    ) -> DomainResult<Option<crate::addressbook::Contact>> {
        self.with(|t| Ok(t.contacts.get(&(owner, id)).cloned()))
    }

    async fn update_contact(
        &self,
        owner: UserId,
        id: crate::addressbook::ContactId,
        change: crate::ports::ContactChange,
    ) -> DomainResult<crate::addressbook::Contact> {
        let next = self.with(|t| {
            let current = t
                .contacts
                .get(&(owner, id))
                .ok_or(DomainError::NotFound("contact"))?;
            let next = change(current)?;
            t.check_tags(owner, &next.fields)?;
            t.contacts.insert((owner, id), next.clone());
            Ok(next)
        })?;
        self.accounts.bump(owner);
        Ok(next)
    }

    async fn delete_contact(
        &self,
        owner: UserId,
        id: crate::addressbook::ContactId,
        expected: Option<crate::addressbook::Revision>,
        _now: Millis,
    ) -> DomainResult<()> {
        self.with(|t| {
            let current = t
                .contacts
                .get(&(owner, id))
                .ok_or(DomainError::NotFound("contact"))?;
            current.check_rev(expected.as_ref())?;
            t.contacts.remove(&(owner, id));
            Ok(())
        })?;
        self.accounts.bump(owner);
        Ok(())
    }

    async fn search_contacts(
        &self,
        owner: UserId,
        query: crate::addressbook::ContactQuery,
    ) -> DomainResult<crate::addressbook::ContactPage> {
        use crate::addressbook::{SortKey, Window};
        self.with(|t| {
            let mut hits: Vec<(SortKey, &crate::addressbook::Contact)> = t
                .contacts
                .range((owner, crate::addressbook::ContactId::from_random(0))..)
                .take_while(|((o, _), _)| *o == owner)
                .map(|(_, c)| c)
                .filter(|c| query.keyword.as_ref().is_none_or(|k| k.matches(&c.fields)))
                .map(|c| (SortKey::of(c), c))
                .collect();
            hits.sort_by(|a, b| a.0.cmp(&b.0));
            let total = hits.len() as u64;
            let want = query.window.items() as usize + 1;
            let rows = match &query.window {
                Window::Page { items, page } => hits
                    .iter()
                    .skip((*page as usize).saturating_sub(1) * *items as usize)
                    .take(want)
                    .map(|(_, c)| (*c).clone())
                    .collect(),
                Window::After { after, .. } => hits
                    .iter()
                    .filter(|(k, _)| after.as_ref().is_none_or(|a| k > a))
                    .take(want)
                    .map(|(_, c)| (*c).clone())
                    .collect(),
            };
            Ok(crate::addressbook::ContactPage { total, rows })
        })
    }

    async fn insert_tag(&self, owner: UserId, tag: crate::addressbook::Tag) -> DomainResult<()> {
        self.with(|t| {
            if t.tags.contains_key(&(owner, tag.id)) {
                return Err(DomainError::Conflict("tag"));
            }
            t.tags.insert((owner, tag.id), tag);
            Ok(())
        })?;
        self.accounts.bump(owner);
        Ok(())
    }

    async fn tags(&self, owner: UserId) -> DomainResult<Vec<crate::addressbook::Tag>> {
        self.with(|t| {
            let mut tags: Vec<crate::addressbook::Tag> = t
                .tags
                .iter()
                .filter(|((o, _), _)| *o == owner)
                .map(|(_, tag)| tag.clone())
                .collect();
            tags.sort_by(|a, b| (a.name.as_str(), a.id).cmp(&(b.name.as_str(), b.id)));
            Ok(tags)
        })
    }

    async fn rename_tag(
        &self,
        owner: UserId,
        id: crate::addressbook::TagId,
        name: crate::addressbook::TagName,
        now: Millis,
    ) -> DomainResult<crate::addressbook::Tag> {
        let tag = self.with(|t| {
            let tag = t
                .tags
                .get_mut(&(owner, id))
                .ok_or(DomainError::NotFound("tag"))?;
            tag.name = name;
            tag.modified_at = Some(now);
            Ok(tag.clone())
        })?;
        self.accounts.bump(owner);
        Ok(tag)
    }

    async fn delete_tag(
        &self,
        owner: UserId,
        id: crate::addressbook::TagId,
        now: Millis,
    ) -> DomainResult<()> {
        let changed = self.with(|t| {
            t.tags
                .remove(&(owner, id))
                .ok_or(DomainError::NotFound("tag"))?;
            let mut changed = 0;
            for ((o, _), c) in t.contacts.iter_mut() {
                if *o == owner && c.fields.tag_ids().contains(&id) {
                    *c = c.updated(c.fields.without_tag(id), now);
                    changed += 1;
                }
            }
            Ok(changed)
        })?;
        for _ in 0..=changed {
            self.accounts.bump(owner);
        }
        Ok(())
    }

    async fn import(
        &self,
        owner: UserId,
        plan: crate::addressbook::ImportPlan,
    ) -> DomainResult<crate::addressbook::ImportReport> {
        use crate::addressbook::{ImportReport, ImportStep};
        let (report, writes) = self.with(|t| {
            let mut writes = 0;
            let mut by_name: HashMap<String, crate::addressbook::TagId> = t
                .tags
                .iter()
                .filter(|((o, _), _)| *o == owner)
                .map(|(_, tag)| (tag.name.as_str().to_owned(), tag.id))
                .collect();
            for tag in plan.new_tags {
                if !by_name.contains_key(tag.name.as_str()) {
                    by_name.insert(tag.name.as_str().to_owned(), tag.id);
                    t.tags.insert((owner, tag.id), tag);
                    writes += 1;
                }
            }
            let mut report = ImportReport::default();
            for entry in &plan.entries {
                let ids: Vec<crate::addressbook::TagId> = entry
                    .categories
                    .iter()
                    .filter_map(|c| by_name.get(c.as_str()).copied())
                    .collect();
                let existing = t
                    .contacts
                    .iter()
                    .filter(|((o, _), _)| *o == owner)
                    .map(|(_, c)| c)
                    .find(|c| {
                        c.fields.numbers().iter().any(|n| {
                            let d = n.digits();
                            entry.match_digits.iter().any(|m| d.ends_with(m.as_str()))
                        })
                    });
                match entry.step(existing, &ids, plan.now) {
                    ImportStep::Create(c) => {
                        t.contacts.insert((owner, c.id), c);
                        report.created += 1;
                        writes += 1;
                    }
                    ImportStep::Merge(c) => {
                        t.contacts.insert((owner, c.id), c);
                        report.merged += 1;
                        writes += 1;
                    }
                    ImportStep::Skip(s) => report.skipped.push(s),
                }
            }
            Ok((report, writes))
        })?;
        for _ in 0..writes {
            self.accounts.bump(owner);
        }
        Ok(report)
    }

    async fn owner_region(&self, owner: UserId) -> DomainResult<Option<String>> {
        Ok(self
            .accounts
            .profile(owner)
            .map(|u| u.phone.region().to_owned()))
    }

    async fn findable_users(&self, phones: Vec<String>) -> DomainResult<Vec<(String, UserId)>> {
        self.accounts.with(|t| {
            Ok(t.users
                .values()
                .filter(|u| u.profile.registered && u.profile.privacy.findable_by_phone)
                .filter(|u| phones.iter().any(|p| p == u.profile.phone.e164()))
                .map(|u| (u.profile.phone.e164().to_owned(), u.profile.id))
                .collect())
        })
    }
}

/// An in-memory [`crate::ports::CaptchaStore`]. One mutex makes every call atomic.
#[derive(Debug, Default)]
pub struct MemoryCaptchaStore {
    captchas: Mutex<HashMap<crate::captcha::CaptchaId, crate::ports::CaptchaRecord>>,
}

impl MemoryCaptchaStore {
    /// How many captchas are stored, expired ones included until the next put purges them.
    pub fn len(&self) -> usize {
        self.captchas.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether no captcha is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl crate::ports::CaptchaStore for MemoryCaptchaStore {
    async fn put_captcha(
        &self,
        captcha: crate::ports::CaptchaRecord,
        now: Millis,
    ) -> DomainResult<()> {
        let mut map = self
            .captchas
            .lock()
            .map_err(|_| DomainError::Internal("poisoned".into()))?;
        map.retain(|_, c| c.expires_at > now);
        map.insert(captcha.id.clone(), captcha);
        Ok(())
    }

    async fn captcha_png(
        &self,
        id: &crate::captcha::CaptchaId,
        now: Millis,
    ) -> DomainResult<Option<Vec<u8>>> {
        let map = self
            .captchas
            .lock()
            .map_err(|_| DomainError::Internal("poisoned".into()))?;
        Ok(map
            .get(id)
            .filter(|c| c.expires_at > now)
            .map(|c| c.png.clone()))
    }

    async fn take_captcha(
        &self,
        id: &crate::captcha::CaptchaId,
        now: Millis,
    ) -> DomainResult<Option<String>> {
        let mut map = self
            .captchas
            .lock()
            .map_err(|_| DomainError::Internal("poisoned".into()))?;
        Ok(map
            .remove(id)
            .filter(|c| c.expires_at > now)
            .map(|c| c.answer_hash))
    }
}

/// A captcha "renderer" for tests: the PNG signature followed by the answer in plain text, and
/// a record of the answers drawn so tests can solve the captchas.
#[derive(Debug, Default)]
pub struct MemoryCaptchaRenderer {
    answers: Mutex<Vec<String>>,
}

impl MemoryCaptchaRenderer {
    /// The answer of the last captcha rendered.
    pub fn last_answer(&self) -> Option<String> {
        self.answers.lock().ok().and_then(|v| v.last().cloned())
    }
}

impl crate::ports::CaptchaRenderer for MemoryCaptchaRenderer {
    fn render(&self, answer: &str, _random: &dyn Random) -> DomainResult<Vec<u8>> {
        self.answers
            .lock()
            .map_err(|_| DomainError::Internal("poisoned".into()))?
            .push(answer.to_owned());
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend_from_slice(answer.as_bytes());
        Ok(png)
    }
}

/// An IM token issuer for tests: `im-token-<user>-<n>`, with a record of the requests and a
/// switch that makes it fail like an unreachable provider.
#[derive(Debug, Default)]
pub struct MemoryImTokens {
    requests: Mutex<Vec<crate::ports::ImTokenRequest>>,
    failing: AtomicBool,
}

impl MemoryImTokens {
    /// Every request served so far.
    pub fn requests(&self) -> Vec<crate::ports::ImTokenRequest> {
        self.requests.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Makes every later issue fail as if the provider were down.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }
}

#[async_trait]
impl crate::ports::ImTokenIssuer for MemoryImTokens {
    async fn issue(&self, request: &crate::ports::ImTokenRequest) -> DomainResult<String> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(DomainError::Unavailable("im provider down".into()));
        }
        let mut requests = self
            .requests
            .lock()
            .map_err(|_| DomainError::Internal("poisoned".into()))?;
        requests.push(request.clone());
        Ok(format!("im-token-{}-{}", request.user_id, requests.len()))
    }
}

/// An upload token issuer for tests: target `memory`, token `upload-<now>`.
#[derive(Debug, Default)]
pub struct MemoryUploadTokens;

#[async_trait]
impl crate::ports::UploadTokenIssuer for MemoryUploadTokens {
    async fn issue(&self, now: Millis) -> DomainResult<crate::ports::UploadToken> {
        Ok(crate::ports::UploadToken {
            target: "memory".into(),
            domain: "files.example".into(),
            token: format!("upload-{now}"),
        })
    }
}
