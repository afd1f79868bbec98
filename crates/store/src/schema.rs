//! The Diesel table definitions, matching both migration sets (`migrations/sqlite`, `migrations/postgres`).

diesel::table! {
    /// Accounts, including placeholders created by phone-book uploads.
    users (id) {
        /// The user's one id.
        id -> BigInt,
        /// E.164, unique.
        phone -> Text,
        /// Country calling code.
        region -> Text,
        /// False for a placeholder.
        registered -> Bool,
        /// Public nickname.
        nickname -> Text,
        /// Portrait URL, "" when unset.
        portrait_uri -> Text,
        /// bcrypt hash; NULL for placeholders.
        password_hash -> Nullable<Text>,
        /// Optional user name.
        user_name -> Nullable<Text>,
        /// Optional gender.
        gender -> Nullable<Text>,
        /// Optional birth date.
        birth_date -> Nullable<Text>,
        /// Optional email.
        email -> Nullable<Text>,
        /// Privacy: show user name.
        show_user_name -> Bool,
        /// Privacy: show age.
        show_age -> Bool,
        /// Privacy: show gender.
        show_gender -> Bool,
        /// Privacy: friend requests need approval.
        friend_verification -> Bool,
        /// Privacy: findable by phone.
        findable_by_phone -> Bool,
        /// Privacy: non-friends may add to groups.
        allow_group_invites -> Bool,
        /// Soft lock: failures in the window.
        login_failures -> Integer,
        /// Soft lock: window start.
        login_window_start -> BigInt,
        /// Soft lock: refused until.
        locked_until -> BigInt,
        /// Soft lock: escalation level.
        lock_level -> Integer,
        /// Per-user sync counter.
        version -> BigInt,
        /// Moves when the user's friend list changes with no change of theirs (the store's
        /// friend-list cache; never shown).
        list_stamp -> BigInt,
        /// Creation instant.
        created_at -> BigInt,
        /// Last profile change.
        updated_at -> BigInt,
    }
}

diesel::table! {
    /// The live SMS code of each phone.
    sms_codes (phone) {
        /// E.164.
        phone -> Text,
        /// Keyed hash of the code.
        code_hash -> Text,
        /// When it was sent.
        sent_at -> BigInt,
        /// When it dies.
        expires_at -> BigInt,
        /// Wrong tries so far.
        attempts -> Integer,
    }
}

diesel::table! {
    /// Proofs that a phone was verified, spent by registration or password reset.
    verification_tokens (token_hash) {
        /// SHA-256 of the token.
        token_hash -> Text,
        /// The verified phone.
        phone -> Text,
        /// When it dies.
        expires_at -> BigInt,
        /// When it was spent.
        used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// Login sessions, by token hash.
    sessions (token_hash) {
        /// SHA-256 of the token.
        token_hash -> Text,
        /// Its user.
        user_id -> BigInt,
        /// Creation instant.
        created_at -> BigInt,
        /// Last use.
        last_seen_at -> BigInt,
    }
}

diesel::table! {
    /// Instance-wide settings shared by every instance.
    settings (name) {
        /// Key.
        name -> Text,
        /// Value.
        value -> Text,
    }
}

diesel::table! {
    /// The incremental-sync change log.
    changes (owner, version) {
        /// Whose view changed.
        owner -> BigInt,
        /// The owner's version after the change.
        version -> BigInt,
        /// What changed: "user" (a profile) or "relationship" (the owner's row on `subject`).
        kind -> Text,
        /// The changed thing's id, if any.
        subject -> Nullable<BigInt>,
        /// When.
        at -> BigInt,
        /// A second id for changes that name a pair, such as (group, member).
        detail -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// One row per directed pair: everything `owner` holds about `other` (a domain `Side`).
    relationships (owner, other) {
        /// Whose row it is.
        owner -> BigInt,
        /// The user it is about.
        other -> BigInt,
        /// `Friendship::as_str`.
        friendship -> Text,
        /// The pending request's id.
        request_id -> Nullable<BigInt>,
        /// The pending request's message.
        request_message -> Nullable<Text>,
        /// When the request was last sent.
        request_at -> Nullable<BigInt>,
        /// When the owner ignored it.
        ignored_at -> Nullable<BigInt>,
        /// When they became friends.
        friends_since -> Nullable<BigInt>,
        /// The owner follows the other.
        following -> Bool,
        /// Since when.
        followed_at -> Nullable<BigInt>,
        /// The owner starred the other.
        starred -> Bool,
        /// The owner blocks the other.
        blocking -> Bool,
        /// Since when.
        blocked_at -> Nullable<BigInt>,
        /// Remark: name.
        display_name -> Nullable<Text>,
        /// Remark: description.
        description -> Nullable<Text>,
        /// Remark: phone.
        remark_phone -> Nullable<Text>,
        /// Remark: phone region.
        remark_region -> Nullable<Text>,
        /// Remark: picture.
        remark_image_uri -> Nullable<Text>,
        /// `ConvType::as_str`.
        conv_type -> Text,
        /// The other's phone is visible to the owner.
        phone_visible -> Bool,
        /// Not `Side::is_empty()`.
        active -> Bool,
        /// First write.
        created_at -> BigInt,
        /// Last change.
        updated_at -> BigInt,
    }
}

diesel::table! {
    /// Address book contacts (document 002), one row per contact.
    contacts (owner, id) {
        /// Whose book it is in.
        owner -> BigInt,
        /// The contact's id.
        id -> BigInt,
        /// CouchDB-style revision.
        rev -> Text,
        /// The name as written.
        name -> Text,
        /// The lower-cased name: sort key and name search.
        name_lower -> Text,
        /// JSON `[[type, number], ...]`.
        numbers -> Text,
        /// JSON `[[type, email], ...]`.
        emails -> Text,
        /// Lower-cased addresses, one per line.
        emails_lower -> Text,
        /// Tag ids separated by spaces.
        tag_ids -> Text,
        /// Free text.
        note -> Nullable<Text>,
        /// Creation instant.
        created_at -> BigInt,
        /// Last change.
        modified_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// Every suffix of every contact number's digits, for digit searches.
    contact_digits (owner, digits, contact_id) {
        /// Whose book.
        owner -> BigInt,
        /// A suffix of a number's digits.
        digits -> Text,
        /// The contact.
        contact_id -> BigInt,
    }
}

diesel::table! {
    /// Every suffix (cut to 24 characters) of each contact's lower-cased name and emails.
    contact_terms (owner, term, contact_id) {
        /// Whose book.
        owner -> BigInt,
        /// A suffix of the name or an address.
        term -> Text,
        /// The contact.
        contact_id -> BigInt,
    }
}

diesel::table! {
    /// Address book tags.
    tags (owner, id) {
        /// Whose book.
        owner -> BigInt,
        /// The tag's id.
        id -> BigInt,
        /// Its name.
        name -> Text,
        /// Creation instant.
        created_at -> BigInt,
        /// Last rename.
        modified_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// Which contacts carry which tag.
    contact_tags (owner, tag_id, contact_id) {
        /// Whose book.
        owner -> BigInt,
        /// The tag.
        tag_id -> BigInt,
        /// The contact.
        contact_id -> BigInt,
    }
}

diesel::table! {
    /// SealTalk groups; a dismissed group keeps its row for sync tombstones.
    chat_groups (id) {
        /// Random id below 2^53.
        id -> BigInt,
        /// Group name.
        name -> Text,
        /// Portrait URL, "" when unset.
        portrait_uri -> Text,
        /// The current creator (changes on transfer, or when the creator quits).
        creator_id -> BigInt,
        /// The bulletin, "" when unset.
        bulletin -> Text,
        /// When the bulletin was last set.
        bulletin_at -> BigInt,
        /// Current members.
        member_count -> Integer,
        /// True once dismissed.
        dismissed -> Bool,
        /// The group information's timestamp (SealTalk `group.timestamp`).
        stamp -> BigInt,
        /// Creation time.
        created_at -> BigInt,
    }
}

diesel::table! {
    /// Current group members (leaving deletes the row; the change log keeps the tombstone).
    group_members (group_id, member_id) {
        /// The group.
        group_id -> BigInt,
        /// The member.
        member_id -> BigInt,
        /// 0 creator, 1 member, 2 manager.
        role -> Integer,
        /// The member's display name in this group, "" when unset.
        display_name -> Text,
        /// When the member joined (the oldest member inherits a group its creator leaves).
        joined_at -> BigInt,
        /// The membership row's timestamp.
        stamp -> BigInt,
    }
}

diesel::table! {
    /// Per-user compaction floor: change rows at or below it were deleted.
    sync_floors (owner) {
        /// Whose log.
        owner -> BigInt,
        /// The highest compacted version.
        floor -> BigInt,
    }
}

diesel::table! {
    /// Image captchas: a keyed hash of the answer and the PNG; single use.
    captchas (id) {
        /// Opaque id (the SealTalk `verifyId`).
        id -> Text,
        /// Keyed hash of the answer.
        answer_hash -> Text,
        /// The image.
        png -> Binary,
        /// Expiry.
        expires_at -> BigInt,
    }
}

diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(group_members -> chat_groups (group_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    sms_codes,
    verification_tokens,
    sessions,
    settings,
    changes,
    relationships,
    contacts,
    contact_digits,
    contact_terms,
    tags,
    contact_tags,
    chat_groups,
    group_members,
    sync_floors,
    captchas
);
