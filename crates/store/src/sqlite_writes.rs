//! The writes of one relationship transition on SQLite: fixed statements in plain SQL.
//!
//! PostgreSQL's transitions write through the query builder (`transition_attempt!`) or one
//! batched statement (`crate::batch`). On SQLite one writer connection applies every
//! transition, so its cost per transition sets the write rate, and callgrind showed where the
//! query-builder writes spent it (docs/benchmarks.md, 2026-12-07): `RETURNING` makes SQLite
//! buffer each result row in an ephemeral b-tree, opened and closed per statement; walking the
//! upsert's query tree for its binds on every run, and binding each value twice (once to insert,
//! once to set), cost a quarter of the writer's instructions. Here the two rows of a pair are
//! one upsert whose update takes `excluded` values, each owner's version moves in a one-row
//! `UPDATE`, and its change-log entry is an `INSERT … SELECT` that reads the version just taken:
//! no `RETURNING`, each value bound once, and the binds pushed straight from plain fields.

use std::marker::PhantomData;

use diesel::dsl::SqlTypeOf;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Text};
use diesel::sqlite::{Sqlite, SqliteConnection};
use diesel::{QueryResult, RunQueryDsl};

use crate::error::StoreError;
use crate::relationships::{OwnerEffect, SideValues, CHANGE_KIND_RELATIONSHIP};
use crate::schema::relationships as r;

/// Defines the upsert from the columns of `SideValues`, listed once: the SQL's head (before the
/// rows) and tail (every column set from the row that clashed, as the query builder's upsert
/// set them), and the push of one row's binds in the same order. The push destructures
/// `SideValues` whole, so a new field fails to compile until it is listed here.
macro_rules! side_upsert {
    ($first:ident $(, $column:ident)*) => {
        /// The upsert's head, before its rows.
        const UPSERT_HEAD: &str = concat!(
            "INSERT INTO relationships (owner, other, ",
            stringify!($first) $(, ", ", stringify!($column))*,
            ") VALUES "
        );

        /// The upsert's tail, after its rows.
        const UPSERT_TAIL: &str = concat!(
            " ON CONFLICT (owner, other) DO UPDATE SET ",
            stringify!($first), " = excluded.", stringify!($first)
            $(, ", ", stringify!($column), " = excluded.", stringify!($column))*
        );

        /// Pushes one row's binds, each as its column's type, `, `-separated after `other`.
        fn push_side<'b>(
            out: &mut AstPass<'_, 'b, Sqlite>,
            values: &'b SideValues<'_>,
        ) -> QueryResult<()> {
            let SideValues { $first, $($column),* } = values;
            out.push_sql(", ");
            out.push_bind_param::<SqlTypeOf<r::$first>, _>($first)?;
            $(
                out.push_sql(", ");
                out.push_bind_param::<SqlTypeOf<r::$column>, _>($column)?;
            )*
            Ok(())
        }
    };
}

side_upsert!(
    friendship,
    request_id,
    request_message,
    request_at,
    ignored_at,
    friends_since,
    following,
    followed_at,
    starred,
    blocking,
    blocked_at,
    display_name,
    description,
    remark_phone,
    remark_region,
    remark_image_uri,
    conv_type,
    phone_visible,
    active,
    created_at,
    updated_at
);

/// Upserts the rows (owner → other) with their values; `N` is 1 or 2, one prepared statement
/// each.
struct Upsert<'a, const N: usize> {
    rows: [(i64, i64, SideValues<'a>); N],
}

impl<const N: usize> QueryId for Upsert<'_, N> {
    type QueryId = Upsert<'static, N>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<const N: usize> QueryFragment<Sqlite> for Upsert<'_, N> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        // The placeholders come from the binds (`push_bind_param`): the SQL text is only
        // written when the statement is first prepared, and later runs only collect binds.
        out.push_sql(UPSERT_HEAD);
        for (i, (owner, other, values)) in self.rows.iter().enumerate() {
            out.push_sql(if i == 0 { "(" } else { "), (" });
            out.push_bind_param::<SqlTypeOf<r::owner>, _>(owner)?;
            out.push_sql(", ");
            out.push_bind_param::<SqlTypeOf<r::other>, _>(other)?;
            push_side(&mut out, values)?;
        }
        out.push_sql(")");
        out.push_sql(UPSERT_TAIL);
        Ok(())
    }

    fn is_safe_to_cache_prepared(&self, _backend: &Sqlite) -> QueryResult<bool> {
        Ok(true)
    }
}

/// One bind of a `Fixed` statement.
#[derive(Clone, Copy)]
enum Bind {
    /// A `BIGINT`.
    Int(i64),
    /// A `TEXT`.
    Text(&'static str),
}

/// A fixed statement: `sql` with a `?` for each of `binds`, in order.
struct Fixed<Id, const N: usize> {
    sql: &'static str,
    binds: [Bind; N],
    id: PhantomData<Id>,
}

impl<Id, const N: usize> Fixed<Id, N> {
    fn new(sql: &'static str, binds: [Bind; N]) -> Self {
        Self {
            sql,
            binds,
            id: PhantomData,
        }
    }
}

impl<Id: 'static, const N: usize> QueryId for Fixed<Id, N> {
    type QueryId = Id;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<Id, const N: usize> QueryFragment<Sqlite> for Fixed<Id, N> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        // `push_bind_param` writes each `?` itself, so the text goes in the pieces between.
        let mut pieces = self.sql.split('?');
        out.push_sql(pieces.next().unwrap_or_default());
        for (bind, piece) in self.binds.iter().zip(pieces) {
            match bind {
                Bind::Int(value) => out.push_bind_param::<BigInt, _>(value)?,
                Bind::Text(value) => out.push_bind_param::<Text, _>(value)?,
            }
            out.push_sql(piece);
        }
        Ok(())
    }

    fn is_safe_to_cache_prepared(&self, _backend: &Sqlite) -> QueryResult<bool> {
        Ok(true)
    }
}

impl<Q, const N: usize> RunQueryDsl<SqliteConnection> for Fixed<Q, N> {}
impl<const N: usize> RunQueryDsl<SqliteConnection> for Upsert<'_, N> {}

/// Marks the version bump.
struct BumpVersion;
/// Marks the list-stamp bump.
struct BumpStamp;
/// Marks the change log's insert.
struct LogChange;

// One users row per statement: `id IN (?, ?)` would make SQLite build an ephemeral index of the
// list on every run, which cost more than running a one-row statement twice (callgrind).

/// Moves a user's sync version on.
const BUMP_VERSION: &str = "UPDATE users SET version = version + 1 WHERE id = ?";

/// Moves a user's list stamp on (`ListCache`).
const BUMP_STAMP: &str = "UPDATE users SET list_stamp = list_stamp + 1 WHERE id = ?";

/// Logs a change (kind, subject, time) for a user at the version the user's row holds, the one
/// `BUMP_VERSION` just took.
const LOG_CHANGE: &str = "INSERT INTO changes (owner, version, kind, subject, detail, at) \
    SELECT id, version, ?, ?, NULL, ? FROM users WHERE id = ?";

/// Writes a transition's two rows (owner, subject, side, effect; `owner_rows`): the rows that
/// changed, then for each owner its version and a change-log entry (a logged change) or its
/// list stamp (`OwnerEffect`). Inside the transition's write transaction, which keeps every
/// other writer out, so the version the log reads back is the one just taken.
pub(crate) fn write(
    conn: &mut SqliteConnection,
    rows: [(i64, i64, SideValues<'_>, OwnerEffect); 2],
) -> Result<(), StoreError> {
    let [a, b] = rows;
    let upserted = match (a.3, b.3) {
        (OwnerEffect::Logged, OwnerEffect::Logged) => Upsert {
            rows: [(a.0, a.1, a.2), (b.0, b.1, b.2)],
        }
        .execute(conn),
        (OwnerEffect::Logged, _) => Upsert {
            rows: [(a.0, a.1, a.2)],
        }
        .execute(conn),
        (_, OwnerEffect::Logged) => Upsert {
            rows: [(b.0, b.1, b.2)],
        }
        .execute(conn),
        _ => Ok(0),
    };
    upserted.map_err(StoreError::user_reference)?;

    for (owner, subject, side, effect) in [a, b] {
        match effect {
            OwnerEffect::Logged => {
                let bumped =
                    Fixed::<BumpVersion, 1>::new(BUMP_VERSION, [Bind::Int(owner)]).execute(conn)?;
                let logged = Fixed::<LogChange, 4>::new(
                    LOG_CHANGE,
                    [
                        Bind::Text(CHANGE_KIND_RELATIONSHIP),
                        Bind::Int(subject),
                        Bind::Int(side.updated_at),
                        Bind::Int(owner),
                    ],
                )
                .execute(conn)?;
                // The owner's row was just upserted, so the user exists (its foreign key); a
                // miss here would lose a change from the log, so the transition fails whole.
                if (bumped, logged) != (1, 1) {
                    return Err(StoreError::NotFound("user"));
                }
            }
            OwnerEffect::Restamped => {
                Fixed::<BumpStamp, 1>::new(BUMP_STAMP, [Bind::Int(owner)]).execute(conn)?;
            }
            OwnerEffect::Untouched => {}
        }
    }
    Ok(())
}
