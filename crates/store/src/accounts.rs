//! [`AccountStore`] on the database: codes, verification tokens, accounts, sessions and profiles.

use async_trait::async_trait;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text};
use kith_domain::phone::Phone;
use kith_domain::ports::{
    AccountStore, CodeRecord, LoginRecord, LoginThrottle, NewAccount, NewVerificationToken,
    Privacy, ProfileChange, SessionRecord, UserProfile,
};
use kith_domain::{DomainResult, Millis, UserId};

use crate::async_pg::read;
use crate::conn::{write_tx, DbConn};
use crate::error::StoreError;
use crate::schema::{changes, sessions, sms_codes, users, verification_tokens};
use crate::store::{to_user_id, NewUser, Store};
use crate::sync::Watchers;

/// The `changes.kind` of a profile change.
const CHANGE_KIND_USER: &str = "user";

/// A user as stored, minus secrets and counters.
#[derive(Queryable, Selectable)]
#[diesel(table_name = users)]
pub(crate) struct UserRow {
    id: i64,
    phone: String,
    region: String,
    registered: bool,
    nickname: String,
    portrait_uri: String,
    user_name: Option<String>,
    gender: Option<String>,
    birth_date: Option<String>,
    email: Option<String>,
    show_user_name: bool,
    show_age: bool,
    show_gender: bool,
    friend_verification: bool,
    findable_by_phone: bool,
    allow_group_invites: bool,
    created_at: i64,
    updated_at: i64,
}

impl UserRow {
    /// Checks the stored id and phone.
    pub(crate) fn into_profile(self) -> Result<UserProfile, StoreError> {
        Ok(UserProfile {
            id: to_user_id(self.id)?,
            phone: Phone::from_stored(&self.phone, &self.region)
                .map_err(|_| StoreError::Corrupt("stored phone is malformed".to_owned()))?,
            registered: self.registered,
            nickname: self.nickname,
            portrait_uri: self.portrait_uri,
            user_name: self.user_name,
            gender: self.gender,
            birth_date: self.birth_date,
            email: self.email,
            privacy: Privacy {
                show_user_name: self.show_user_name,
                show_age: self.show_age,
                show_gender: self.show_gender,
                friend_verification: self.friend_verification,
                findable_by_phone: self.findable_by_phone,
                allow_group_invites: self.allow_group_invites,
            },
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// What login reads.
#[derive(Queryable, Selectable)]
#[diesel(table_name = users)]
struct LoginRow {
    id: i64,
    password_hash: Option<String>,
    login_failures: i32,
    login_window_start: i64,
    locked_until: i64,
    lock_level: i32,
}

impl LoginRow {
    /// A registered account without a password cannot log in, so it has no login record.
    fn into_record(self) -> Result<Option<LoginRecord>, StoreError> {
        let Some(password_hash) = self.password_hash else {
            return Ok(None);
        };
        Ok(Some(LoginRecord {
            user_id: to_user_id(self.id)?,
            password_hash,
            throttle: LoginThrottle {
                failures: self.login_failures,
                window_start: self.login_window_start,
                locked_until: self.locked_until,
                lock_level: self.lock_level,
            },
        }))
    }
}

/// Optional profile details; `None` leaves a column alone, `Some(None)` clears it.
#[derive(AsChangeset)]
#[diesel(table_name = users)]
struct DetailsChange {
    user_name: Option<Option<String>>,
    gender: Option<Option<String>>,
    birth_date: Option<Option<String>>,
    email: Option<Option<String>>,
}

/// Checks a stored phone.
fn to_phone(e164: &str) -> Result<Phone, StoreError> {
    Phone::from_e164(e164).map_err(|_| StoreError::Corrupt("stored phone is not E.164".to_owned()))
}

/// Marks the unused, unexpired token used and returns its phone; the conditional UPDATE's row
/// lock makes exactly one of several concurrent spenders succeed.
fn spend_token(conn: &mut DbConn, token_hash: &str, now: Millis) -> Result<String, StoreError> {
    use crate::schema::verification_tokens::dsl as t;
    diesel::update(
        t::verification_tokens
            .find(token_hash)
            .filter(t::used_at.is_null())
            .filter(t::expires_at.gt(now)),
    )
    .set(t::used_at.eq(Some(now)))
    .returning(t::phone)
    .get_result::<String>(conn)
    .optional()?
    .ok_or(StoreError::NotFound("verification_token"))
}

/// Fails with `NotFound("user")` when an UPDATE by id touched nothing.
fn expect_user(updated: usize) -> Result<(), StoreError> {
    if updated == 0 {
        Err(StoreError::NotFound("user"))
    } else {
        Ok(())
    }
}

/// How many times a write that fans out to a user's watchers runs when the database refuses it
/// for a reason a retry cures.
const FAN_OUT_ATTEMPTS: u32 = 3;

/// Runs `tx` in a write transaction, again when PostgreSQL rolled it back: the rare deadlock
/// between fan-outs whose watchers changed between read and lock (`Watchers::lock`), which
/// locks the newcomers out of id order.
fn write_tx_retrying<T>(
    conn: &mut DbConn,
    what: &'static str,
    mut tx: impl FnMut(&mut DbConn) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let mut attempt = 1;
    loop {
        match write_tx(conn, &mut tx) {
            Err(err @ StoreError::Unavailable(_)) if attempt < FAN_OUT_ATTEMPTS => {
                tracing::warn!(error = %err, attempt, "{what} retried");
                attempt += 1;
            }
            done => return done,
        }
    }
}

/// One attempt at a profile change. A new nickname or portrait also shows in the views of
/// everyone who lists the user (friend lists, group member lists): their change entries are
/// recorded in the same transaction, with every affected user locked first in id order.
fn update_profile_tx(
    conn: &mut DbConn,
    user: UserId,
    change: ProfileChange,
    now: Millis,
) -> Result<(), StoreError> {
    use crate::schema::users::dsl::*;
    // Nickname and portrait are in the watchers' synced friend lists; every field is in
    // their friend-list pages, whose cache must see the change.
    let public = matches!(
        change,
        ProfileChange::Nickname(_) | ProfileChange::PortraitUri(_)
    );
    let watchers = Watchers::lock(conn, user.get())?;
    let target = users.find(user.get());
    // Every change takes the next version; the row lock the UPDATE holds until
    // commit keeps concurrent changes from taking the same one.
    let bump = (updated_at.eq(now), version.eq(version + 1));
    let new_version = match change {
        ProfileChange::Nickname(value) => diesel::update(target)
            .set((nickname.eq(value), bump))
            .returning(version)
            .get_result::<i64>(conn),
        ProfileChange::PortraitUri(value) => diesel::update(target)
            .set((portrait_uri.eq(value), bump))
            .returning(version)
            .get_result::<i64>(conn),
        ProfileChange::Details {
            user_name: user_name_,
            gender: gender_,
            birth_date: birth_date_,
            email: email_,
        } => {
            let details = DetailsChange {
                user_name: user_name_,
                gender: gender_,
                birth_date: birth_date_,
                email: email_,
            };
            diesel::update(target)
                .set((details, bump))
                .returning(version)
                .get_result::<i64>(conn)
        }
        ProfileChange::Privacy(p) => diesel::update(target)
            .set((
                (
                    show_user_name.eq(p.show_user_name),
                    show_age.eq(p.show_age),
                    show_gender.eq(p.show_gender),
                    friend_verification.eq(p.friend_verification),
                    findable_by_phone.eq(p.findable_by_phone),
                    allow_group_invites.eq(p.allow_group_invites),
                ),
                bump,
            ))
            .returning(version)
            .get_result::<i64>(conn),
    }
    .optional()?
    .ok_or(StoreError::NotFound("user"))?;
    diesel::insert_into(changes::table)
        .values((
            changes::owner.eq(user.get()),
            changes::version.eq(new_version),
            changes::kind.eq(CHANGE_KIND_USER),
            changes::subject.eq(Some(user.get())),
            changes::at.eq(now),
        ))
        .execute(conn)?;
    if public {
        watchers.record(conn, user.get(), now)?;
    }
    watchers.restamp_lists(conn)?;
    Ok(())
}

#[async_trait]
impl AccountStore for Store {
    async fn put_code(
        &self,
        phone: &Phone,
        code: CodeRecord,
        idle_since: Millis,
    ) -> DomainResult<bool> {
        let phone = phone.e164().to_owned();
        self.serial_write(move |conn| {
            // One statement, so the throttle check and the write cannot interleave with another
            // send: the row (or the unique index, for a first code) serialises them. The DSL
            // has no ON CONFLICT on MultiConnection; this SQL is valid on both backends.
            let stored = diesel::sql_query(
                "INSERT INTO sms_codes (phone, code_hash, sent_at, expires_at, attempts) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (phone) DO UPDATE SET code_hash = excluded.code_hash, \
                 sent_at = excluded.sent_at, expires_at = excluded.expires_at, \
                 attempts = excluded.attempts \
                 WHERE sms_codes.sent_at <= $6",
            )
            .bind::<Text, _>(phone)
            .bind::<Text, _>(code.code_hash)
            .bind::<BigInt, _>(code.sent_at)
            .bind::<BigInt, _>(code.expires_at)
            .bind::<Integer, _>(code.attempts)
            .bind::<BigInt, _>(idle_since)
            .execute(conn)?;
            Ok(stored == 1)
        })
        .await
    }

    async fn get_code(&self, phone: &Phone) -> DomainResult<Option<CodeRecord>> {
        let phone = phone.e164().to_owned();
        self.run(move |conn| {
            let row = sms_codes::table
                .find(phone)
                .select((
                    sms_codes::code_hash,
                    sms_codes::sent_at,
                    sms_codes::expires_at,
                    sms_codes::attempts,
                ))
                .first::<(String, i64, i64, i32)>(conn)
                .optional()?;
            Ok(
                row.map(|(code_hash, sent_at, expires_at, attempts)| CodeRecord {
                    code_hash,
                    sent_at,
                    expires_at,
                    attempts,
                }),
            )
        })
        .await
    }

    async fn add_code_attempt(&self, phone: &Phone) -> DomainResult<()> {
        let phone = phone.e164().to_owned();
        self.serial_write(move |conn| {
            diesel::update(sms_codes::table.find(phone))
                .set(sms_codes::attempts.eq(sms_codes::attempts + 1))
                .execute(conn)?;
            Ok(())
        })
        .await
    }

    async fn consume_code(
        &self,
        phone: &Phone,
        code_hash: &str,
        now: Millis,
        max_attempts: i32,
        token: NewVerificationToken,
    ) -> DomainResult<bool> {
        let phone = phone.e164().to_owned();
        let code_hash = code_hash.to_owned();
        self.serial_write(move |conn| {
            write_tx(conn, |conn| {
                // One conditional update decides the race: a second caller matches no row,
                // whatever it read before. The row stays (with a hash no code can match) so the
                // once-a-minute send throttle still sees when the code went out.
                let deleted = diesel::update(
                    sms_codes::table
                        .find(&phone)
                        .filter(sms_codes::code_hash.eq(&code_hash))
                        // A spent code's hash is "": no caller may consume it again.
                        .filter(sms_codes::code_hash.ne(""))
                        .filter(sms_codes::expires_at.gt(now))
                        .filter(sms_codes::attempts.lt(max_attempts)),
                )
                .set(sms_codes::code_hash.eq(""))
                .execute(conn)?;
                if deleted == 0 {
                    return Ok(false);
                }
                diesel::insert_into(verification_tokens::table)
                    .values((
                        verification_tokens::token_hash.eq(&token.token_hash),
                        verification_tokens::phone.eq(token.phone.e164()),
                        verification_tokens::expires_at.eq(token.expires_at),
                        verification_tokens::used_at.eq(None::<i64>),
                    ))
                    .execute(conn)?;
                Ok(true)
            })
        })
        .await
    }

    async fn phone_registered(&self, phone: &Phone) -> DomainResult<bool> {
        let phone = phone.e164().to_owned();
        self.run(move |conn| {
            let n = users::table
                .filter(users::phone.eq(phone))
                .filter(users::registered.eq(true))
                .count()
                .get_result::<i64>(conn)?;
            Ok(n > 0)
        })
        .await
    }

    async fn register(&self, token_hash: &str, account: NewAccount) -> DomainResult<UserId> {
        let token_hash = token_hash.to_owned();
        self.serial_write(move |conn| {
            write_tx_retrying(conn, "registration", |conn| {
                let phone = spend_token(conn, &token_hash, account.now)?;
                // A placeholder from a phone-book upload becomes the account, keeping its id so
                // the relationships pointing at it stay valid. Registration counts as creation.
                let placeholder = users::table
                    .filter(users::phone.eq(&phone))
                    .filter(users::registered.eq(false))
                    .select(users::id)
                    .first::<i64>(conn)
                    .optional()?;
                if let Some(id) = placeholder {
                    // The placeholder's nickname and dates change under any list showing it.
                    // Its watchers (and it) are locked in id order before its row, as in a
                    // profile change: a transition locks its two users in that order too, so
                    // taking the placeholder's row first deadlocked with an invite to it.
                    let watchers = Watchers::lock(conn, id)?;
                    let upgraded =
                        diesel::update(users::table.find(id).filter(users::registered.eq(false)))
                            .set((
                                users::registered.eq(true),
                                users::nickname.eq(&account.nickname),
                                users::password_hash.eq(Some(&account.password_hash)),
                                users::created_at.eq(account.now),
                                users::updated_at.eq(account.now),
                            ))
                            .execute(conn)?;
                    if upgraded == 1 {
                        watchers.restamp_lists(conn)?;
                        return to_user_id(id);
                    }
                }
                let taken = users::table
                    .filter(users::phone.eq(&phone))
                    .count()
                    .get_result::<i64>(conn)?;
                if taken > 0 {
                    return Err(StoreError::Conflict("phone"));
                }
                let region = to_phone(&phone)?.region().to_owned();
                NewUser {
                    id: account.candidate_id.get(),
                    phone: &phone,
                    region: &region,
                    registered: true,
                    nickname: &account.nickname,
                    password_hash: Some(&account.password_hash),
                    now: account.now,
                }
                .insert(conn)?;
                Ok(account.candidate_id)
            })
        })
        .await
    }

    async fn reset_password(
        &self,
        token_hash: &str,
        now: Millis,
        password_hash: &str,
    ) -> DomainResult<UserId> {
        let token_hash = token_hash.to_owned();
        let password_hash = password_hash.to_owned();
        self.serial_write(move |conn| {
            write_tx(conn, |conn| {
                let phone = spend_token(conn, &token_hash, now)?;
                // Proving the phone also lifts a login lock, as a successful login would.
                let unlocked = LoginThrottle::default();
                let id = diesel::update(
                    users::table
                        .filter(users::phone.eq(&phone))
                        .filter(users::registered.eq(true)),
                )
                .set((
                    users::password_hash.eq(Some(&password_hash)),
                    users::login_failures.eq(unlocked.failures),
                    users::login_window_start.eq(unlocked.window_start),
                    users::locked_until.eq(unlocked.locked_until),
                    users::lock_level.eq(unlocked.lock_level),
                ))
                .returning(users::id)
                .get_result::<i64>(conn)
                .optional()?
                // The rollback leaves the token unspent.
                .ok_or(StoreError::NotFound("verification_token"))?;
                diesel::delete(sessions::table.filter(sessions::user_id.eq(id))).execute(conn)?;
                to_user_id(id)
            })
        })
        .await
    }

    async fn find_login(&self, phone: &Phone) -> DomainResult<Option<LoginRecord>> {
        let phone = phone.e164().to_owned();
        self.run(move |conn| {
            users::table
                .filter(users::phone.eq(phone))
                .filter(users::registered.eq(true))
                .select(LoginRow::as_select())
                .first(conn)
                .optional()?
                .map_or(Ok(None), LoginRow::into_record)
        })
        .await
    }

    async fn login_by_id(&self, user: UserId) -> DomainResult<Option<LoginRecord>> {
        self.run(move |conn| {
            users::table
                .find(user.get())
                .filter(users::registered.eq(true))
                .select(LoginRow::as_select())
                .first(conn)
                .optional()?
                .map_or(Ok(None), LoginRow::into_record)
        })
        .await
    }

    async fn set_throttle(&self, user: UserId, throttle: LoginThrottle) -> DomainResult<()> {
        self.serial_write(move |conn| {
            let updated = diesel::update(users::table.find(user.get()))
                .set((
                    users::login_failures.eq(throttle.failures),
                    users::login_window_start.eq(throttle.window_start),
                    users::locked_until.eq(throttle.locked_until),
                    users::lock_level.eq(throttle.lock_level),
                ))
                .execute(conn)?;
            expect_user(updated)
        })
        .await
    }

    async fn set_password_hash(
        &self,
        user: UserId,
        hash: &str,
        revoke_except: Option<Option<String>>,
    ) -> DomainResult<()> {
        let hash = hash.to_owned();
        self.serial_write(move |conn| {
            write_tx(conn, |conn| {
                let updated = diesel::update(users::table.find(user.get()))
                    .set(users::password_hash.eq(Some(&hash)))
                    .execute(conn)?;
                expect_user(updated)?;
                let mine = sessions::table.filter(sessions::user_id.eq(user.get()));
                match revoke_except {
                    None => {}
                    Some(None) => {
                        diesel::delete(mine).execute(conn)?;
                    }
                    Some(Some(keep)) => {
                        diesel::delete(mine.filter(sessions::token_hash.ne(keep))).execute(conn)?;
                    }
                }
                Ok(())
            })
        })
        .await
    }

    async fn create_session(&self, session: SessionRecord) -> DomainResult<()> {
        self.serial_write(move |conn| {
            diesel::insert_into(sessions::table)
                .values((
                    sessions::token_hash.eq(&session.token_hash),
                    sessions::user_id.eq(session.user_id.get()),
                    sessions::created_at.eq(session.created_at),
                    sessions::last_seen_at.eq(session.last_seen_at),
                ))
                .execute(conn)
                .map_err(StoreError::user_reference)?;
            Ok(())
        })
        .await
    }

    async fn get_session(&self, token_hash: &str) -> DomainResult<Option<SessionRecord>> {
        use crate::schema::sessions::dsl as s;
        let token_hash = token_hash.to_owned();
        read!(
            self,
            s::sessions.find(token_hash).select((
                s::token_hash,
                s::user_id,
                s::created_at,
                s::last_seen_at
            )),
            get_result,
            |row: QueryResult<(String, i64, i64, i64)>| {
                row.optional()?
                    .map(|(token_hash, user_id, created_at, last_seen_at)| {
                        Ok(SessionRecord {
                            token_hash,
                            user_id: to_user_id(user_id)?,
                            created_at,
                            last_seen_at,
                        })
                    })
                    .transpose()
            }
        )
    }

    async fn touch_session(&self, token_hash: &str, now: Millis) -> DomainResult<()> {
        let token_hash = token_hash.to_owned();
        self.serial_write(move |conn| {
            diesel::update(sessions::table.find(token_hash))
                .set(sessions::last_seen_at.eq(now))
                .execute(conn)?;
            Ok(())
        })
        .await
    }

    async fn delete_session(&self, token_hash: &str) -> DomainResult<()> {
        let token_hash = token_hash.to_owned();
        self.serial_write(move |conn| {
            diesel::delete(sessions::table.find(token_hash)).execute(conn)?;
            Ok(())
        })
        .await
    }

    async fn get_user(&self, user: UserId) -> DomainResult<Option<UserProfile>> {
        read!(
            self,
            users::table.find(user.get()).select(UserRow::as_select()),
            get_result,
            |row: QueryResult<UserRow>| row.optional()?.map(UserRow::into_profile).transpose()
        )
    }

    async fn find_by_phone(&self, phone: &Phone) -> DomainResult<Option<UserProfile>> {
        let phone = phone.e164().to_owned();
        self.run(move |conn| {
            users::table
                .filter(users::phone.eq(phone))
                .select(UserRow::as_select())
                .first(conn)
                .optional()?
                .map(UserRow::into_profile)
                .transpose()
        })
        .await
    }

    async fn update_profile(
        &self,
        user: UserId,
        change: ProfileChange,
        now: Millis,
    ) -> DomainResult<()> {
        self.serial_write(move |conn| {
            write_tx_retrying(conn, "profile update", |conn| {
                update_profile_tx(conn, user, change.clone(), now)
            })
        })
        .await
    }

    async fn ping(&self) -> DomainResult<()> {
        self.run(|conn| {
            use diesel::r2d2::R2D2Connection;
            conn.ping()?;
            Ok(())
        })
        .await
    }
}
