//! The relationship state machine: pure transitions of one ordered pair of users.
//!
//! Every API (contacts v1, friends 001, SealTalk friendship 004, the 003 blacklist) reads and
//! writes the same two rows per pair of users, one per direction. [`apply`] is the only place
//! that decides how a command changes them; the stores persist what it returns and nothing else.

use serde::{Deserialize, Serialize};

use crate::error::{DomainError, DomainResult};
use crate::ids::{Millis, RequestId};
use crate::values::{Description, DisplayName, ImageUri, RequestMessage};

#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod tests;

/// One day in milliseconds.
const DAY_MS: Millis = 24 * 60 * 60 * 1000;

/// The longest remark phone number or region, in characters.
const REMARK_SHORT_MAX: usize = 32;

/// Where one direction of a pair stands on friendship.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Friendship {
    /// No friendship and no pending request.
    #[default]
    None,
    /// I sent a request that is still pending (also while they have ignored it).
    Requested,
    /// They sent me a request I have not answered.
    RequestedBy,
    /// We are friends.
    Friends,
    /// They sent me a request and I ignored it.
    Ignored,
    /// We were friends until one of us deleted the other.
    Deleted,
}

impl Friendship {
    /// Every state, for storage round trips and exhaustive tests.
    pub const ALL: [Friendship; 6] = [
        Self::None,
        Self::Requested,
        Self::RequestedBy,
        Self::Friends,
        Self::Ignored,
        Self::Deleted,
    ];

    /// The status SealTalk's friend list shows (10, 11, 20, 21, 30); `None` is not listed.
    pub fn sealtalk_status(&self) -> Option<i32> {
        match self {
            Self::None => None,
            Self::Requested => Some(10),
            Self::RequestedBy => Some(11),
            Self::Friends => Some(20),
            Self::Ignored => Some(21),
            Self::Deleted => Some(30),
        }
    }

    /// The name stored in the database.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Requested => "requested",
            Self::RequestedBy => "requested_by",
            Self::Friends => "friends",
            Self::Ignored => "ignored",
            Self::Deleted => "deleted",
        }
    }

    /// Reads a stored name back; `None` for anything [`Friendship::as_str`] does not write.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == raw)
    }

    /// Whether a friend request between us exists in any direction as seen from this side.
    pub fn has_request(&self) -> bool {
        matches!(self, Self::Requested | Self::RequestedBy | Self::Ignored)
    }
}

/// Which list of contact v1's conversation list the conversation with this contact is in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConvType {
    /// An ordinary conversation.
    #[default]
    Normal,
    /// Pinned to the top.
    Sticky,
    /// Archived.
    Archive,
}

impl ConvType {
    /// The name the API and the database use.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Sticky => "sticky",
            Self::Archive => "archive",
        }
    }

    /// Parses `normal`, `sticky` or `archive`, exactly as contacts v1 spells them.
    pub fn parse(raw: &str) -> DomainResult<Self> {
        match raw {
            "normal" => Ok(Self::Normal),
            "sticky" => Ok(Self::Sticky),
            "archive" => Ok(Self::Archive),
            _ => Err(DomainError::invalid(
                "conv_type",
                "must be normal, sticky or archive",
            )),
        }
    }
}

/// One direction of a pair: everything `me` holds about `other`, stored as one row.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Side {
    /// Where we stand on friendship, from my point of view.
    pub friendship: Friendship,
    /// The pending request's id; the same on both sides while a request exists.
    pub request_id: Option<RequestId>,
    /// The pending request's message, kept on both sides so each can list it.
    pub request_message: Option<String>,
    /// When the pending request was last (re)sent.
    pub request_at: Option<Millis>,
    /// When I ignored their request (only while `friendship` is `Ignored`).
    pub ignored_at: Option<Millis>,
    /// When we became friends (only while `friendship` is `Friends`).
    pub friends_since: Option<Millis>,
    /// I follow them.
    pub following: bool,
    /// When I started following them.
    pub followed_at: Option<Millis>,
    /// I starred them.
    pub starred: bool,
    /// I block them.
    pub blocking: bool,
    /// When I blocked them.
    pub blocked_at: Option<Millis>,
    /// My private name for them.
    pub display_name: Option<String>,
    /// My private description of them.
    pub description: Option<String>,
    /// A phone number I noted for them.
    pub remark_phone: Option<String>,
    /// The region code of that phone number.
    pub remark_region: Option<String>,
    /// A picture I attached to them.
    pub remark_image_uri: Option<String>,
    /// Which conversation list our conversation is in.
    pub conv_type: ConvType,
    /// Their phone number is visible to me (set when I upload my phone book).
    pub phone_visible: bool,
    /// When this row was first written.
    pub created_at: Millis,
    /// When this row last changed.
    pub updated_at: Millis,
}

impl Side {
    /// A side holding nothing, as for two users who never interacted.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Whether nothing in this side is worth storing (timestamps aside): the row may be deleted.
    pub fn is_empty(&self) -> bool {
        let Side {
            friendship,
            request_id,
            request_message,
            request_at,
            ignored_at,
            friends_since,
            following,
            followed_at: _,
            starred,
            blocking,
            blocked_at: _,
            display_name,
            description,
            remark_phone,
            remark_region,
            remark_image_uri,
            conv_type,
            phone_visible,
            created_at: _,
            updated_at: _,
        } = self;
        // Destructuring makes a new field a compile error here until someone decides its fate.
        *friendship == Friendship::None
            && request_id.is_none()
            && request_message.is_none()
            && request_at.is_none()
            && ignored_at.is_none()
            && friends_since.is_none()
            && !following
            && !starred
            && !blocking
            && display_name.is_none()
            && description.is_none()
            && remark_phone.is_none()
            && remark_region.is_none()
            && remark_image_uri.is_none()
            && *conv_type == ConvType::Normal
            && !phone_visible
    }

    /// We are friends.
    pub fn is_friend(&self) -> bool {
        self.friendship == Friendship::Friends
    }

    /// They sent me a request I have not answered yet (ignored requests are answered).
    pub fn pending_incoming(&self) -> bool {
        self.friendship == Friendship::RequestedBy
    }

    /// I sent them a request that is still pending (whether or not they ignored it).
    pub fn pending_outgoing(&self) -> bool {
        self.friendship == Friendship::Requested
    }

    /// Forgets every trace of a request on this side.
    fn clear_request(&mut self) {
        self.request_id = None;
        self.request_message = None;
        self.request_at = None;
        self.ignored_at = None;
    }
}

/// Both rows of an ordered pair (me, other).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Pair {
    /// The row (me → other).
    pub mine: Side,
    /// The row (other → me).
    pub theirs: Side,
}

impl Pair {
    /// The same pair seen from the other user.
    pub fn swap(self) -> Self {
        Self {
            mine: self.theirs,
            theirs: self.mine,
        }
    }
}

/// My private remark on a contact, as a patch: `None` leaves a field, `Some("")` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemarkPatch {
    /// My name for them (at most 32 characters).
    pub display_name: Option<String>,
    /// My description of them (at most 500 characters).
    pub description: Option<String>,
    /// A phone number for them (at most 32 characters).
    pub phone: Option<String>,
    /// The region code of that number (at most 32 characters).
    pub region: Option<String>,
    /// An http(s) picture URI.
    pub image_uri: Option<String>,
}

/// Something `me` does to `other`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Ask to be friends (SealTalk invite, 001 friend request). A `None` message on a re-send keeps
    /// the earlier message.
    Invite {
        /// The request message (at most 64 characters).
        message: Option<String>,
    },
    /// Push my pending request again, with no cooldown (001 `resend`).
    Resend {
        /// A new message, or `None` to keep the earlier one.
        message: Option<String>,
    },
    /// Accept their request (pending or ignored).
    Accept,
    /// Ignore their pending request.
    Ignore,
    /// Withdraw my pending request.
    Withdraw,
    /// End our friendship.
    Delete,
    /// Follow them.
    Follow,
    /// Stop following them.
    Unfollow,
    /// Star them.
    Star,
    /// Remove the star.
    Unstar,
    /// Block them.
    Block,
    /// Lift my block.
    Unblock,
    /// Change my private remark on them.
    SetRemark(RemarkPatch),
    /// Move our conversation to another list.
    SetConvType(ConvType),
    /// Show or hide their phone number to me.
    SetPhoneVisible(bool),
}

/// The cooldowns that stop an invite from being re-sent too often.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// How long my pending request must wait before an invite sends it again.
    pub pending_cooldown_ms: Millis,
    /// How long after they ignored my request an invite may send it again.
    pub ignored_cooldown_ms: Millis,
}

impl Default for Policy {
    /// SealTalk's values: three days for a pending request, one day after an ignore.
    fn default() -> Self {
        Self {
            pending_cooldown_ms: 3 * DAY_MS,
            ignored_cooldown_ms: DAY_MS,
        }
    }
}

/// What a transition may depend on besides the pair and the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    /// The current instant.
    pub now: Millis,
    /// The id a new request gets; unused unless a request is created.
    pub new_request_id: RequestId,
    /// Invite cooldowns.
    pub policy: Policy,
    /// The other user wants to approve friend requests; when false, invites befriend at once.
    pub they_require_verification: bool,
}

impl Context {
    /// A context with the default policy, for a target who requires verification.
    pub fn new(now: Millis, new_request_id: RequestId) -> Self {
        Self {
            now,
            new_request_id,
            policy: Policy::default(),
            they_require_verification: true,
        }
    }
}

/// The result of an invite, as SealTalk names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InviteOutcome {
    /// They had asked me first: we are friends now.
    Added,
    /// Nothing was sent: they block me, or my request is still cooling down.
    None,
    /// The request was sent (or sent again).
    Sent,
    /// They do not require verification: we are friends now.
    AddDirectly,
}

impl InviteOutcome {
    /// SealTalk's `action` string.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Added => "Added",
            Self::None => "None",
            Self::Sent => "Sent",
            Self::AddDirectly => "AddDirectly",
        }
    }
}

/// How a command ended, besides the new state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// An invite, with SealTalk's action.
    Invite(InviteOutcome),
    /// The command changed the pair.
    Done,
    /// The command was allowed but there was nothing to change (idempotent repeats).
    Unchanged,
}

/// Something that happened, from the actor's (`mine`) point of view: what to push or log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// I sent (or sent again) a friend request.
    FriendRequested,
    /// We became friends.
    FriendAdded,
    /// I ignored their request (never pushed to them).
    RequestIgnored,
    /// I withdrew my request (never pushed to them, as 001 says).
    RequestWithdrawn,
    /// I ended our friendship.
    FriendDeleted,
    /// My block dissolved a pending request between us.
    RequestDissolved,
    /// I started following them.
    Followed,
    /// I stopped following them (also when my block dropped my follow).
    Unfollowed,
    /// My block made them stop following me.
    FollowerDropped,
    /// I starred them.
    Starred,
    /// I removed the star.
    Unstarred,
    /// I blocked them.
    Blocked,
    /// I lifted my block.
    Unblocked,
    /// My remark on them changed.
    RemarkChanged,
    /// Our conversation moved to another list.
    ConvTypeChanged,
    /// Their phone number's visibility to me changed.
    PhoneVisibilityChanged,
}

/// The result of [`apply`]: the new pair and what the store must do with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The pair after the command.
    pub pair: Pair,
    /// How the command ended.
    pub outcome: Outcome,
    /// My row changed: write it and bump my sync version.
    pub mine_changed: bool,
    /// Their row changed: write it and bump their sync version.
    pub theirs_changed: bool,
    /// What happened, in order. Empty when nothing changed.
    pub events: Vec<Event>,
}

impl Transition {
    /// Whether either row must be written.
    pub fn changed(&self) -> bool {
        self.mine_changed || self.theirs_changed
    }
}

/// Applies `cmd`, done by `me` to `other`, to their pair.
///
/// Total: every state and command yields `Ok` or a [`DomainError`], even for pairs that break
/// [`check_pair`]. On `Err`, and whenever both change flags are false, nothing is to be written.
/// Changed sides get `updated_at = now`, and `created_at = now` when they were empty before.
/// Self-commands and unknown users are the caller's to refuse.
pub fn apply(pair: &Pair, cmd: &Command, ctx: &Context) -> DomainResult<Transition> {
    let mut next = pair.clone();
    let mut events = Vec::new();
    let outcome = step(&mut next, cmd, ctx, &mut events)?;

    let mine_changed = next.mine != pair.mine;
    let theirs_changed = next.theirs != pair.theirs;
    stamp(&mut next.mine, &pair.mine, mine_changed, ctx.now);
    stamp(&mut next.theirs, &pair.theirs, theirs_changed, ctx.now);
    let changed = mine_changed || theirs_changed;
    if !changed {
        events.clear();
    }
    let outcome = match outcome {
        Outcome::Done if !changed => Outcome::Unchanged,
        other => other,
    };
    Ok(Transition {
        pair: next,
        outcome,
        mine_changed,
        theirs_changed,
        events,
    })
}

/// Sets the row timestamps of a side that changed.
fn stamp(side: &mut Side, before: &Side, changed: bool, now: Millis) {
    if changed {
        if before.is_empty() {
            side.created_at = now;
        }
        side.updated_at = now;
    }
}

/// Mutates `pair` for `cmd`; [`apply`] works out what changed.
fn step(
    pair: &mut Pair,
    cmd: &Command,
    ctx: &Context,
    events: &mut Vec<Event>,
) -> DomainResult<Outcome> {
    let now = ctx.now;
    match cmd {
        Command::Invite { message } => invite(pair, message.as_deref(), ctx, events),
        Command::Resend { message } => {
            let message = check_message(message.as_deref())?;
            if !pair.mine.pending_outgoing() {
                return Err(DomainError::NotFound("friend_request"));
            }
            // An ignored request stays ignored, and SealTalk hides ignores from the requester:
            // the resend succeeds for them and does nothing.
            if pair.theirs.friendship == Friendship::Ignored {
                return Ok(Outcome::Unchanged);
            }
            send_again(pair, message, ctx);
            events.push(Event::FriendRequested);
            Ok(Outcome::Done)
        }
        Command::Accept => {
            if !matches!(
                pair.mine.friendship,
                Friendship::RequestedBy | Friendship::Ignored
            ) {
                return Err(DomainError::NotFound("friend_request"));
            }
            make_friends(pair, now);
            events.push(Event::FriendAdded);
            Ok(Outcome::Done)
        }
        Command::Ignore => match pair.mine.friendship {
            Friendship::RequestedBy => {
                // Their side stays Requested: the requester is never told.
                pair.mine.friendship = Friendship::Ignored;
                pair.mine.ignored_at = Some(now);
                events.push(Event::RequestIgnored);
                Ok(Outcome::Done)
            }
            Friendship::Ignored => Ok(Outcome::Unchanged),
            _ => Err(DomainError::NotFound("friend_request")),
        },
        Command::Withdraw => {
            if !pair.mine.pending_outgoing() {
                return Err(DomainError::NotFound("friend_request"));
            }
            dissolve_request(pair);
            events.push(Event::RequestWithdrawn);
            Ok(Outcome::Done)
        }
        Command::Delete => {
            if !pair.mine.is_friend() {
                return Err(DomainError::NotFound("friend"));
            }
            for side in [&mut pair.mine, &mut pair.theirs] {
                side.friendship = Friendship::Deleted;
                side.friends_since = None;
                side.clear_request();
            }
            events.push(Event::FriendDeleted);
            Ok(Outcome::Done)
        }
        Command::Follow => {
            if pair.theirs.blocking {
                return Err(DomainError::Forbidden("blocked"));
            }
            if pair.mine.blocking {
                return Err(DomainError::Conflict("blocked"));
            }
            if !pair.mine.following {
                pair.mine.following = true;
                pair.mine.followed_at = Some(now);
                events.push(Event::Followed);
            }
            Ok(Outcome::Done)
        }
        Command::Unfollow => {
            if pair.mine.following {
                events.push(Event::Unfollowed);
            }
            pair.mine.following = false;
            pair.mine.followed_at = None;
            Ok(Outcome::Done)
        }
        Command::Star | Command::Unstar => {
            let star = matches!(cmd, Command::Star);
            if pair.mine.starred != star {
                pair.mine.starred = star;
                events.push(if star {
                    Event::Starred
                } else {
                    Event::Unstarred
                });
            }
            Ok(Outcome::Done)
        }
        Command::Block => {
            block(pair, now, events);
            Ok(Outcome::Done)
        }
        Command::Unblock => {
            if pair.mine.blocking {
                events.push(Event::Unblocked);
            }
            pair.mine.blocking = false;
            pair.mine.blocked_at = None;
            Ok(Outcome::Done)
        }
        Command::SetRemark(patch) => {
            let before = pair.mine.clone();
            set_remark(&mut pair.mine, patch)?;
            if pair.mine != before {
                events.push(Event::RemarkChanged);
            }
            Ok(Outcome::Done)
        }
        Command::SetConvType(conv_type) => {
            if pair.mine.conv_type != *conv_type {
                pair.mine.conv_type = *conv_type;
                events.push(Event::ConvTypeChanged);
            }
            Ok(Outcome::Done)
        }
        Command::SetPhoneVisible(visible) => {
            if pair.mine.phone_visible != *visible {
                pair.mine.phone_visible = *visible;
                events.push(Event::PhoneVisibilityChanged);
            }
            Ok(Outcome::Done)
        }
    }
}

/// The invite rules, in SealTalk's order.
fn invite(
    pair: &mut Pair,
    message: Option<&str>,
    ctx: &Context,
    events: &mut Vec<Event>,
) -> DomainResult<Outcome> {
    let message = check_message(message)?;
    let now = ctx.now;
    let nothing = Ok(Outcome::Invite(InviteOutcome::None));

    // Checked before anything else so a blocked requester learns nothing about our state.
    if pair.theirs.blocking {
        return nothing;
    }
    if pair.mine.blocking {
        return Err(DomainError::Conflict("blocked"));
    }
    if pair.mine.is_friend() {
        return Err(DomainError::AlreadyFriends);
    }
    if matches!(
        pair.mine.friendship,
        Friendship::RequestedBy | Friendship::Ignored
    ) {
        make_friends(pair, now);
        events.push(Event::FriendAdded);
        return Ok(Outcome::Invite(InviteOutcome::Added));
    }
    if !ctx.they_require_verification {
        make_friends(pair, now);
        events.push(Event::FriendAdded);
        return Ok(Outcome::Invite(InviteOutcome::AddDirectly));
    }
    if pair.mine.pending_outgoing() {
        // Both cooldowns apply in turn, as in SealTalk: an ignore never shortens the wait.
        if cooling_down(pair.mine.request_at, now, ctx.policy.pending_cooldown_ms) {
            return nothing;
        }
        if pair.theirs.friendship == Friendship::Ignored
            && cooling_down(pair.theirs.ignored_at, now, ctx.policy.ignored_cooldown_ms)
        {
            return nothing;
        }
        send_again(pair, message, ctx);
    } else {
        for side in [&mut pair.mine, &mut pair.theirs] {
            side.clear_request();
            side.request_id = Some(ctx.new_request_id);
            side.request_message = message.clone().flatten();
            side.request_at = Some(now);
        }
        pair.mine.friendship = Friendship::Requested;
        pair.theirs.friendship = Friendship::RequestedBy;
    }
    events.push(Event::FriendRequested);
    Ok(Outcome::Invite(InviteOutcome::Sent))
}

/// Whether less than `cooldown` has passed since `since`. A clock that went back counts as
/// cooling down; a missing instant does not.
fn cooling_down(since: Option<Millis>, now: Millis, cooldown: Millis) -> bool {
    since.is_some_and(|at| now.saturating_sub(at) < cooldown)
}

/// Refreshes my pending request under its existing id; an ignore on their side is undone.
fn send_again(pair: &mut Pair, message: Option<Option<String>>, ctx: &Context) {
    let id = pair
        .mine
        .request_id
        .or(pair.theirs.request_id)
        .unwrap_or(ctx.new_request_id);
    let message = match message {
        Some(new) => new,
        None => pair
            .mine
            .request_message
            .clone()
            .or_else(|| pair.theirs.request_message.clone()),
    };
    pair.mine.friendship = Friendship::Requested;
    pair.theirs.friendship = Friendship::RequestedBy;
    for side in [&mut pair.mine, &mut pair.theirs] {
        side.request_id = Some(id);
        side.request_message = message.clone();
        side.request_at = Some(ctx.now);
        side.ignored_at = None;
    }
}

/// Validates a request message. `None` means "not given"; `Some(None)` is an empty message.
fn check_message(message: Option<&str>) -> DomainResult<Option<Option<String>>> {
    match message {
        None => Ok(None),
        Some("") => Ok(Some(None)),
        Some(text) => Ok(Some(Some(
            RequestMessage::new("message", text)?.into_inner(),
        ))),
    }
}

/// Both sides become friends from now on; the request is spent.
fn make_friends(pair: &mut Pair, now: Millis) {
    for side in [&mut pair.mine, &mut pair.theirs] {
        side.friendship = Friendship::Friends;
        side.friends_since = Some(now);
        side.clear_request();
    }
}

/// Removes a pending request in either direction, leaving friendships and deletions alone.
fn dissolve_request(pair: &mut Pair) {
    for side in [&mut pair.mine, &mut pair.theirs] {
        if side.friendship.has_request() {
            side.friendship = Friendship::None;
        }
        side.clear_request();
    }
}

/// 001's block: it never ends a friendship, dissolves requests both ways and drops both follows.
fn block(pair: &mut Pair, now: Millis, events: &mut Vec<Event>) {
    if !pair.mine.blocking {
        pair.mine.blocking = true;
        pair.mine.blocked_at = Some(now);
        events.push(Event::Blocked);
    }
    if pair.mine.friendship.has_request() || pair.theirs.friendship.has_request() {
        events.push(Event::RequestDissolved);
    }
    dissolve_request(pair);
    if pair.mine.following {
        pair.mine.following = false;
        pair.mine.followed_at = None;
        events.push(Event::Unfollowed);
    }
    if pair.theirs.following {
        pair.theirs.following = false;
        pair.theirs.followed_at = None;
        events.push(Event::FollowerDropped);
    }
}

/// Validates the whole patch first so a bad field leaves the remark untouched.
fn set_remark(side: &mut Side, patch: &RemarkPatch) -> DomainResult<()> {
    let display_name = patch_field(&patch.display_name, |v| {
        DisplayName::new("displayName", v).map(DisplayName::into_inner)
    })?;
    let description = patch_field(&patch.description, |v| {
        Description::new("description", v).map(Description::into_inner)
    })?;
    let phone = patch_field(&patch.phone, |v| check_short("phone", v))?;
    let region = patch_field(&patch.region, |v| check_short("region", v))?;
    let image_uri = patch_field(&patch.image_uri, |v| {
        ImageUri::new("imageUri", v).map(ImageUri::into_inner)
    })?;

    let targets = [
        (&mut side.display_name, display_name),
        (&mut side.description, description),
        (&mut side.remark_phone, phone),
        (&mut side.remark_region, region),
        (&mut side.remark_image_uri, image_uri),
    ];
    for (slot, value) in targets {
        if let Some(value) = value {
            *slot = value;
        }
    }
    Ok(())
}

/// One patch field: `None` leaves it, `Some("")` clears it, anything else must pass `check`.
fn patch_field(
    value: &Option<String>,
    check: impl FnOnce(&str) -> DomainResult<String>,
) -> DomainResult<Option<Option<String>>> {
    match value.as_deref() {
        None => Ok(None),
        Some("") => Ok(Some(None)),
        Some(v) => check(v).map(|v| Some(Some(v))),
    }
}

/// A remark phone number or region: short, single-line text.
fn check_short(field: &'static str, value: &str) -> DomainResult<String> {
    if value.chars().count() > REMARK_SHORT_MAX {
        return Err(DomainError::invalid(field, "must be at most 32 characters"));
    }
    if value.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(value.to_owned())
}

/// Checks the invariants that tie the two rows of a pair together; the error names the first
/// broken one.
pub fn check_pair(pair: &Pair) -> Result<(), &'static str> {
    check_directed(&pair.mine, &pair.theirs)?;
    check_directed(&pair.theirs, &pair.mine)?;
    let pending = pair.mine.friendship.has_request() || pair.theirs.friendship.has_request();
    if pending && (pair.mine.blocking || pair.theirs.blocking) {
        return Err("a request is pending across a block");
    }
    if (pair.mine.following || pair.theirs.following)
        && (pair.mine.blocking || pair.theirs.blocking)
    {
        return Err("a follow survives a block");
    }
    if pending && pair.mine.request_id != pair.theirs.request_id {
        return Err("the two sides disagree on the request id");
    }
    Ok(())
}

/// The invariants seen from `a`, whose counterpart is `b`.
fn check_directed(a: &Side, b: &Side) -> Result<(), &'static str> {
    use Friendship as F;
    let ok = match a.friendship {
        F::Friends => b.friendship == F::Friends,
        F::Requested => matches!(b.friendship, F::RequestedBy | F::Ignored),
        F::RequestedBy | F::Ignored => b.friendship == F::Requested,
        F::Deleted => matches!(b.friendship, F::Deleted | F::None),
        F::None => matches!(b.friendship, F::None | F::Deleted),
    };
    if !ok {
        return Err("the two sides disagree on friendship");
    }
    if a.friendship.has_request() != a.request_id.is_some() {
        return Err("a request id without a request, or a request without an id");
    }
    Ok(())
}
