//! The port traits: everything the domain needs from the outside world, and the records they carry.

use async_trait::async_trait;

use crate::error::DomainResult;
use crate::ids::{Millis, UserId};
use crate::phone::Phone;

/// The time source. Tests inject a settable clock so expiry and throttles are deterministic.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, in milliseconds since the Unix epoch.
    fn now(&self) -> Millis;
}

/// The randomness source. Production uses the OS CSPRNG.
pub trait Random: Send + Sync + std::fmt::Debug {
    /// Fills `buf` with random bytes.
    fn fill(&self, buf: &mut [u8]);

    /// 64 random bits.
    fn next_u64(&self) -> u64 {
        let mut b = [0u8; 8];
        self.fill(&mut b);
        u64::from_le_bytes(b)
    }
}

/// Why an SMS code was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsPurpose {
    /// The phone has no account yet.
    Register,
    /// The phone has an account: the code serves a password reset.
    ResetPassword,
}

impl SmsPurpose {
    /// The name written to gateways.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::ResetPassword => "reset_password",
        }
    }
}

/// One SMS to deliver.
#[derive(Debug, Clone)]
pub struct SmsMessage {
    /// The recipient.
    pub phone: Phone,
    /// The six-digit code. Gateways must never log it.
    pub code: String,
    /// Why it is sent.
    pub purpose: SmsPurpose,
    /// When it was issued.
    pub sent_at: Millis,
}

/// Delivers SMS codes (log, outbox file, or a provider's webhook).
#[async_trait]
pub trait SmsGateway: Send + Sync + std::fmt::Debug {
    /// Sends one message. A failure is reported as `DomainError::Unavailable`.
    async fn send(&self, message: &SmsMessage) -> DomainResult<()>;
}

/// Hashes and verifies passwords. Adapters run the work off the async workers.
#[async_trait]
pub trait PasswordHasher: Send + Sync + std::fmt::Debug {
    /// Hashes a password for storage.
    async fn hash(&self, password: &str) -> DomainResult<String>;
    /// Checks a password against a stored hash. A malformed hash verifies as false.
    async fn verify(&self, password: &str, hash: &str) -> DomainResult<bool>;
    /// Whether a stored hash is weaker than the current policy and should be replaced.
    fn needs_upgrade(&self, hash: &str) -> bool;
    /// A hash of a random password at the current cost, verified against when the user is
    /// unknown so that unknown phones and wrong passwords take the same time.
    fn dummy_hash(&self) -> &str;
}

/// A stored SMS code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRecord {
    /// Keyed hash of the code.
    pub code_hash: String,
    /// When it was sent.
    pub sent_at: Millis,
    /// When it dies.
    pub expires_at: Millis,
    /// Wrong tries so far.
    pub attempts: i32,
}

/// A stored verification token (the proof that a phone was verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVerificationToken {
    /// SHA-256 of the token.
    pub token_hash: String,
    /// The verified phone.
    pub phone: Phone,
    /// When it dies.
    pub expires_at: Millis,
}

/// The soft-lock counters of one account, kept in the database so they hold across instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoginThrottle {
    /// Failures in the current window.
    pub failures: i32,
    /// Start of the current window.
    pub window_start: Millis,
    /// Logins are refused until this instant.
    pub locked_until: Millis,
    /// How many times the lock has triggered without a successful login since.
    pub lock_level: i32,
}

/// What login needs to know about an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRecord {
    /// The account.
    pub user_id: UserId,
    /// The stored bcrypt hash.
    pub password_hash: String,
    /// Its soft-lock counters.
    pub throttle: LoginThrottle,
}

/// A new account, or the upgrade of a placeholder made by a phone-book upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccount {
    /// The id to use if no placeholder exists for the phone.
    pub candidate_id: UserId,
    /// Public nickname.
    pub nickname: String,
    /// bcrypt hash.
    pub password_hash: String,
    /// Creation instant.
    pub now: Millis,
}

/// A stored session. Only the hash of its token is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// SHA-256 of the token.
    pub token_hash: String,
    /// Its user.
    pub user_id: UserId,
    /// When it was created.
    pub created_at: Millis,
    /// When it was last used (updated at most once a minute).
    pub last_seen_at: Millis,
}

/// Privacy settings of one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Privacy {
    /// Show my user name in 001's lists.
    pub show_user_name: bool,
    /// Show my age in 001's lists.
    pub show_age: bool,
    /// Show my gender in 001's lists.
    pub show_gender: bool,
    /// Friend requests to me need my approval (off: inviters become friends at once).
    pub friend_verification: bool,
    /// Others may find me by my phone number.
    pub findable_by_phone: bool,
    /// Non-friends may add me to groups.
    pub allow_group_invites: bool,
}

impl Default for Privacy {
    fn default() -> Self {
        Self {
            show_user_name: true,
            show_age: false,
            show_gender: true,
            friend_verification: true,
            findable_by_phone: true,
            allow_group_invites: false,
        }
    }
}

/// A user as every API sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserProfile {
    /// The one id.
    pub id: UserId,
    /// The phone, E.164.
    pub phone: Phone,
    /// False for a placeholder created by a phone-book upload.
    pub registered: bool,
    /// Public nickname ("" for placeholders).
    pub nickname: String,
    /// Portrait URL ("" when unset).
    pub portrait_uri: String,
    /// Optional user name (001's `user_name`).
    pub user_name: Option<String>,
    /// Optional gender (001's `gender`).
    pub gender: Option<String>,
    /// Optional birth date, `YYYY-MM-DD`.
    pub birth_date: Option<String>,
    /// Optional email.
    pub email: Option<String>,
    /// Privacy settings.
    pub privacy: Privacy,
    /// Creation instant.
    pub created_at: Millis,
    /// Last profile change.
    pub updated_at: Millis,
}

impl UserProfile {
    /// A user known only by id and phone, as a phone-book upload creates one: not registered,
    /// no nickname, portrait or details, the default privacy, created and changed at `now`.
    pub fn placeholder(id: UserId, phone: Phone, now: Millis) -> Self {
        Self {
            id,
            phone,
            registered: false,
            nickname: String::new(),
            portrait_uri: String::new(),
            user_name: None,
            gender: None,
            birth_date: None,
            email: None,
            privacy: Privacy::default(),
            created_at: now,
            updated_at: now,
        }
    }

    /// The user name, unless the user hides it (`show_user_name`).
    pub fn shown_user_name(&self) -> Option<&str> {
        self.user_name
            .as_deref()
            .filter(|_| self.privacy.show_user_name)
    }

    /// The gender, unless the user hides it (`show_gender`).
    pub fn shown_gender(&self) -> Option<&str> {
        self.gender.as_deref().filter(|_| self.privacy.show_gender)
    }

    /// The age in whole years at `now`, unless the user hides it (`show_age`) or has no
    /// readable birth date.
    pub fn shown_age(&self, now: Millis) -> Option<u32> {
        let birth = self
            .birth_date
            .as_deref()
            .filter(|_| self.privacy.show_age)?;
        crate::dates::age_on(birth, crate::dates::date_of(now))
    }
}

/// Which profile field to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileChange {
    /// A new nickname.
    Nickname(String),
    /// A new portrait URL.
    PortraitUri(String),
    /// New optional profile details; `None` leaves a field as it is, `Some(None)` clears it.
    Details {
        /// User name.
        user_name: Option<Option<String>>,
        /// Gender.
        gender: Option<Option<String>>,
        /// Birth date.
        birth_date: Option<Option<String>>,
        /// Email.
        email: Option<Option<String>>,
    },
    /// New privacy settings.
    Privacy(Privacy),
}

/// Storage of accounts, codes, tokens and sessions.
#[async_trait]
pub trait AccountStore: Send + Sync + std::fmt::Debug {
    /// Stores a new code for `phone`, replacing the old one, but only if the current code was
    /// sent at or before `idle_since`. Returns false (and stores nothing) when throttled.
    async fn put_code(
        &self,
        phone: &Phone,
        code: CodeRecord,
        idle_since: Millis,
    ) -> DomainResult<bool>;
    /// The current code of `phone`.
    async fn get_code(&self, phone: &Phone) -> DomainResult<Option<CodeRecord>>;
    /// Counts one wrong try.
    async fn add_code_attempt(&self, phone: &Phone) -> DomainResult<()>;
    /// Atomically consumes the code if it is still `code_hash`, alive at `now` and under
    /// `max_attempts`, and stores `token`. Returns false if another call consumed it first.
    async fn consume_code(
        &self,
        phone: &Phone,
        code_hash: &str,
        now: Millis,
        max_attempts: i32,
        token: NewVerificationToken,
    ) -> DomainResult<bool>;
    /// Whether a registered (non-placeholder) account has this phone.
    async fn phone_registered(&self, phone: &Phone) -> DomainResult<bool>;
    /// In one transaction: consumes the unused, unexpired verification token and creates the
    /// account for its phone (taking over a placeholder with that phone, if any).
    /// Errors: `NotFound("verification_token")`, `Conflict` if the phone is already registered.
    async fn register(&self, token_hash: &str, account: NewAccount) -> DomainResult<UserId>;
    /// In one transaction: consumes the token, sets the password of its phone's account and
    /// revokes every session of that account. Errors: `NotFound("verification_token")`.
    async fn reset_password(
        &self,
        token_hash: &str,
        now: Millis,
        password_hash: &str,
    ) -> DomainResult<UserId>;
    /// The login record of a registered account.
    async fn find_login(&self, phone: &Phone) -> DomainResult<Option<LoginRecord>>;
    /// The login record by id (for change_password).
    async fn login_by_id(&self, user: UserId) -> DomainResult<Option<LoginRecord>>;
    /// Stores new soft-lock counters.
    async fn set_throttle(&self, user: UserId, throttle: LoginThrottle) -> DomainResult<()>;
    /// Replaces the password hash; when `revoke_except` is set, revokes every other session of
    /// the user in the same transaction (`Some(None)` revokes all).
    async fn set_password_hash(
        &self,
        user: UserId,
        hash: &str,
        revoke_except: Option<Option<String>>,
    ) -> DomainResult<()>;
    /// Stores a new session.
    async fn create_session(&self, session: SessionRecord) -> DomainResult<()>;
    /// Looks a session up by token hash.
    async fn get_session(&self, token_hash: &str) -> DomainResult<Option<SessionRecord>>;
    /// Records use of a session.
    async fn touch_session(&self, token_hash: &str, now: Millis) -> DomainResult<()>;
    /// Revokes one session.
    async fn delete_session(&self, token_hash: &str) -> DomainResult<()>;
    /// A user by id (placeholders included).
    async fn get_user(&self, user: UserId) -> DomainResult<Option<UserProfile>>;
    /// A user by phone (placeholders included).
    async fn find_by_phone(&self, phone: &Phone) -> DomainResult<Option<UserProfile>>;
    /// Changes a profile and records the change for sync.
    async fn update_profile(
        &self,
        user: UserId,
        change: ProfileChange,
        now: Millis,
    ) -> DomainResult<()>;
    /// Whether the database answers.
    async fn ping(&self) -> DomainResult<()>;
}

/// What a transition's decision knows of the other user: read by the store in the
/// transition's own transaction, so a rule never rests on a read made before it (and a request
/// pays no read of its own for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counterpart {
    /// A registered account, not a placeholder a phone-book upload made.
    pub registered: bool,
    /// Their [`Privacy::friend_verification`]: friend requests wait for their answer.
    pub friend_verification: bool,
}

impl Counterpart {
    /// What a store passes for `user`.
    pub fn of(user: &UserProfile) -> Self {
        Self {
            registered: user.registered,
            friend_verification: user.privacy.friend_verification,
        }
    }
}

/// Decides a pair's next state inside the store's transaction, from the pair and the other
/// user (`None`: no such user). Built from [`crate::relationship::apply`]; the store only
/// reads, calls it, and writes.
///
/// A pure function of what it is given, so a store may call it again when a transaction is
/// rolled back and retried (a store that commits several transitions in one transaction does,
/// when one of them fails); only the last call's result counts.
pub type Decide = Box<
    dyn Fn(
            &crate::relationship::Pair,
            Option<Counterpart>,
        ) -> DomainResult<crate::relationship::Transition>
        + Send
        + Sync,
>;

/// Which rows of an owner's relationships a list wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SideFilter {
    /// Every row with any state (contacts v1's list).
    Any,
    /// Rows with a SealTalk friendship status (10/11/20/21/30).
    Friendship,
    /// Friends.
    Friends,
    /// Pending requests to me (not ignored).
    Incoming,
    /// My pending requests.
    Outgoing,
    /// People I follow.
    Following,
    /// People who follow me (their row on me has `following`).
    Followers,
    /// People I block.
    Blocking,
}

/// A window of a list, ordered by the other user's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Only users with an id greater than this.
    pub after: Option<UserId>,
    /// At most this many rows.
    pub limit: u32,
}

/// One row of a relationship list: the other user, my row on them and their row on me.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Related {
    /// The other user.
    pub user: UserProfile,
    /// My row on them.
    pub mine: crate::relationship::Side,
    /// Their row on me.
    pub theirs: crate::relationship::Side,
}

/// Storage of relationships: one row per ordered pair, written in transactions that also record
/// the change for incremental sync.
#[async_trait]
pub trait RelationshipStore: Send + Sync + std::fmt::Debug {
    /// In one transaction, serialised with every other transition on the same pair: reads the
    /// rows (me, other) and (other, me) (missing rows are empty) and the other user's
    /// [`Counterpart`], calls `decide`, writes the rows it changed (upserts), and for each
    /// owner whose row changed bumps that owner's sync version and records a change entry. Returns what `decide` returned; on an error nothing is written. A store may
    /// commit transitions on different pairs in one transaction, and call `decide` again when
    /// it retries one.
    async fn transition(
        &self,
        me: UserId,
        other: UserId,
        decide: Decide,
    ) -> DomainResult<crate::relationship::Transition>;
    /// The current pair (empty sides when no rows exist).
    async fn pair(&self, me: UserId, other: UserId) -> DomainResult<crate::relationship::Pair>;
    /// The owner's rows that match `filter`, with the other user, by ascending other id. Each
    /// row is shared, so that a store may hand out rows it keeps (a cache) without copying them.
    async fn list(
        &self,
        owner: UserId,
        filter: SideFilter,
        page: Page,
    ) -> DomainResult<Vec<std::sync::Arc<Related>>>;
    /// The other user of a pending request with this id in which `owner` takes part.
    async fn find_request(
        &self,
        owner: UserId,
        request_id: crate::ids::RequestId,
    ) -> DomainResult<Option<UserId>>;
    /// How many pending requests wait for `owner`'s answer.
    async fn count_incoming(&self, owner: UserId) -> DomainResult<u64>;
    /// The user with this phone, creating a placeholder (id `candidate`) when none exists.
    async fn ensure_user(
        &self,
        phone: &Phone,
        candidate: UserId,
        now: Millis,
    ) -> DomainResult<UserProfile>;
}

/// Decides a contact's next state inside the store's transaction, from the current one. Built
/// by [`crate::addressbook::AddressBookService`]; it checks the revision and makes the next.
pub type ContactChange = Box<
    dyn FnOnce(&crate::addressbook::Contact) -> DomainResult<crate::addressbook::Contact> + Send,
>;

/// Storage of address books: each user's contacts and tags. Every write is one transaction
/// that also bumps the owner's sync version and records a change entry (kind `contact` or
/// `tag`). Another owner's contact or tag is `NotFound`, exactly like a missing one.
#[async_trait]
pub trait AddressBookStore: Send + Sync + std::fmt::Debug {
    /// Stores a new contact. `Invalid("tag_ids")` when a tag is not one of the owner's.
    async fn insert_contact(
        &self,
        owner: UserId,
        contact: crate::addressbook::Contact,
    ) -> DomainResult<()>;
    /// One contact of the owner.
    async fn contact(
        &self,
        owner: UserId,
        id: crate::addressbook::ContactId,
    ) -> DomainResult<Option<crate::addressbook::Contact>>;
    /// In one transaction: reads the contact (`NotFound` when missing), calls `change`, checks
    /// the new tags are the owner's, and writes the result. On any error nothing is written.
    async fn update_contact(
        &self,
        owner: UserId,
        id: crate::addressbook::ContactId,
        change: ContactChange,
    ) -> DomainResult<crate::addressbook::Contact>;
    /// In one transaction: deletes the contact if `expected` (when given) is its revision
    /// (`Conflict("_rev")` otherwise; `NotFound` when missing).
    async fn delete_contact(
        &self,
        owner: UserId,
        id: crate::addressbook::ContactId,
        expected: Option<crate::addressbook::Revision>,
        now: Millis,
    ) -> DomainResult<()>;
    /// The matches of a search: their count, and the window's rows in (lower-cased name, id)
    /// order plus, when more follow, one extra row.
    async fn search_contacts(
        &self,
        owner: UserId,
        query: crate::addressbook::ContactQuery,
    ) -> DomainResult<crate::addressbook::ContactPage>;
    /// Stores a new tag.
    async fn insert_tag(&self, owner: UserId, tag: crate::addressbook::Tag) -> DomainResult<()>;
    /// The owner's tags, by name then id.
    async fn tags(&self, owner: UserId) -> DomainResult<Vec<crate::addressbook::Tag>>;
    /// Renames a tag (`NotFound` when it is not the owner's).
    async fn rename_tag(
        &self,
        owner: UserId,
        id: crate::addressbook::TagId,
        name: crate::addressbook::TagName,
        now: Millis,
    ) -> DomainResult<crate::addressbook::Tag>;
    /// In one transaction: deletes the tag and removes it from every contact that has it, each
    /// of which gets its next revision.
    async fn delete_tag(
        &self,
        owner: UserId,
        id: crate::addressbook::TagId,
        now: Millis,
    ) -> DomainResult<()>;
    /// In one transaction: creates the plan's tags whose names the owner lacks, then writes
    /// each entry in order, merging it ([`crate::addressbook::merge`]) into the first contact
    /// (by id) with a number whose digits end with one of its `match_digits`, or creating it.
    /// An entry the merge makes invalid is skipped. On any other error nothing is written.
    async fn import(
        &self,
        owner: UserId,
        plan: crate::addressbook::ImportPlan,
    ) -> DomainResult<crate::addressbook::ImportReport>;
    /// The owner's country calling code, which numbers written without one are read in.
    async fn owner_region(&self, owner: UserId) -> DomainResult<Option<String>>;
    /// Among these E.164 numbers, those of registered users who let others find them by
    /// phone, with their ids.
    async fn findable_users(&self, phones: Vec<String>) -> DomainResult<Vec<(String, UserId)>>;
}

/// A stored image captcha: only a keyed hash of its answer is kept, next to its image.
#[derive(Clone, PartialEq, Eq)]
pub struct CaptchaRecord {
    /// The id handed to the client (`verifyId`).
    pub id: crate::captcha::CaptchaId,
    /// Keyed hash of the answer.
    pub answer_hash: String,
    /// The rendered PNG.
    pub png: Vec<u8>,
    /// When it dies.
    pub expires_at: Millis,
}

impl std::fmt::Debug for CaptchaRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptchaRecord")
            .field("id", &self.id)
            .field("png_bytes", &self.png.len())
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Storage of image captchas. Each is single use: [`CaptchaStore::take_captcha`] removes it.
#[async_trait]
pub trait CaptchaStore: Send + Sync + std::fmt::Debug {
    /// Stores a new captcha, and deletes those already expired at `now`.
    async fn put_captcha(&self, captcha: CaptchaRecord, now: Millis) -> DomainResult<()>;
    /// The image of the captcha, if it is still alive at `now` and unused.
    async fn captcha_png(
        &self,
        id: &crate::captcha::CaptchaId,
        now: Millis,
    ) -> DomainResult<Option<Vec<u8>>>;
    /// Atomically deletes the captcha and returns its answer hash if it was alive at `now`.
    /// Of concurrent calls for one captcha, at most one gets `Some`.
    async fn take_captcha(
        &self,
        id: &crate::captcha::CaptchaId,
        now: Millis,
    ) -> DomainResult<Option<String>>;
}

/// Draws a captcha's answer as an image. Pure computation, so it is not async.
pub trait CaptchaRenderer: Send + Sync + std::fmt::Debug {
    /// A PNG showing `answer` (upper-case letters and digits), distorted and noisy with
    /// randomness from `random`.
    fn render(&self, answer: &str, random: &dyn Random) -> DomainResult<Vec<u8>>;
}

/// What an IM token is issued for: the user as the IM service should know them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImTokenRequest {
    /// The user.
    pub user_id: UserId,
    /// Their nickname.
    pub name: String,
    /// Their portrait URL ("" when unset).
    pub portrait_uri: String,
    /// When the token is asked for.
    pub now: Millis,
}

/// Issues the token a client presents to the IM service (RongCloud's, or a gateway of the
/// deployment's own that checks a token Kith signed).
#[async_trait]
pub trait ImTokenIssuer: Send + Sync + std::fmt::Debug {
    /// A token for the user. A provider that fails or does not answer in time is
    /// `DomainError::Unavailable`.
    async fn issue(&self, request: &ImTokenRequest) -> DomainResult<String>;
}

/// A token for uploading files straight to cloud storage (SealTalk's `get_image_token`).
#[derive(Clone, PartialEq, Eq)]
pub struct UploadToken {
    /// The storage kind, e.g. `qiniu`.
    pub target: String,
    /// The domain uploaded files are served from.
    pub domain: String,
    /// The upload token.
    pub token: String,
}

impl std::fmt::Debug for UploadToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadToken")
            .field("target", &self.target)
            .field("domain", &self.domain)
            .field("token", &"***")
            .finish()
    }
}

/// Issues cloud-storage upload tokens.
#[async_trait]
pub trait UploadTokenIssuer: Send + Sync + std::fmt::Debug {
    /// A token valid from `now` for the issuer's configured lifetime.
    async fn issue(&self, now: Millis) -> DomainResult<UploadToken>;
}
