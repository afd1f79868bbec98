//! The store's error type and its mapping onto [`DomainError`].

use diesel::result::{DatabaseErrorInformation, DatabaseErrorKind, Error as DieselError};
use kith_domain::DomainError;
use thiserror::Error;

/// Everything the store can fail with. Messages are for logs: they may name tables, never values.
/// `Clone`, so one failed batch of transitions can answer each of its callers.
#[derive(Debug, Clone, Error)]
pub enum StoreError {
    /// The database URL or options are unusable.
    #[error("bad store configuration: {0}")]
    Config(String),
    /// No connection could be made or borrowed (database down, pool exhausted).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A unique constraint refused the write; the text names the clashing field.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// A row the operation needs does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Running the migrations failed.
    #[error("migration failed: {0}")]
    Migration(String),
    /// A stored row could not be turned into a domain value.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A domain rule refused a change decided inside a transaction; the transaction rolled back.
    #[error("refused: {0}")]
    Rule(DomainError),
    /// Any other database or runtime failure.
    #[error("database error: {0}")]
    Internal(String),
}

impl From<DieselError> for StoreError {
    fn from(err: DieselError) -> Self {
        match err {
            DieselError::NotFound => Self::NotFound("record"),
            DieselError::DatabaseError(kind, info) => classify(kind, info.as_ref()),
            DieselError::BrokenTransactionManager => {
                Self::Unavailable("broken transaction manager".to_owned())
            }
            other => Self::Internal(other.to_string()),
        }
    }
}

impl StoreError {
    /// `err` from a write that names users, with a foreign-key violation read as a user who
    /// does not exist (or was deleted meanwhile).
    pub(crate) fn user_reference(err: DieselError) -> Self {
        match err {
            DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => {
                Self::NotFound("user")
            }
            other => other.into(),
        }
    }
}

impl From<diesel::ConnectionError> for StoreError {
    fn from(err: diesel::ConnectionError) -> Self {
        Self::Unavailable(err.to_string())
    }
}

impl From<r2d2::Error> for StoreError {
    fn from(err: r2d2::Error) -> Self {
        Self::Unavailable(err.to_string())
    }
}

/// Sorts a database error into retryable, conflict and the rest.
fn classify(
    kind: DatabaseErrorKind,
    info: &(dyn DatabaseErrorInformation + Send + Sync),
) -> StoreError {
    let message = info.message();
    match kind {
        DatabaseErrorKind::UniqueViolation => StoreError::Conflict(conflict_field(info)),
        DatabaseErrorKind::ClosedConnection
        | DatabaseErrorKind::UnableToSendCommand
        | DatabaseErrorKind::SerializationFailure
        // A PostgreSQL standby after failover refuses writes until the client reconnects.
        | DatabaseErrorKind::ReadOnlyTransaction => StoreError::Unavailable(message.to_owned()),
        // PostgreSQL's 40P01: the server rolled the transaction back, so running it again is safe.
        _ if message.contains("deadlock detected") => StoreError::Unavailable(message.to_owned()),
        // libpq reports a lost server as a plain error with no SQLSTATE, and a server shutting
        // down (57P01..57P03) in its own words; both are an outage, not a bug.
        _ if is_connection_loss(message) => StoreError::Unavailable(message.to_owned()),
        // SQLITE_BUSY / SQLITE_LOCKED outlasting busy_timeout: another writer held the file.
        _ if message.contains("database is locked") || message.contains("database table is locked") => {
            StoreError::Unavailable(message.to_owned())
        }
        _ => StoreError::Internal(format!("{kind:?}: {message}")),
    }
}

/// Whether a driver message says the connection to PostgreSQL is gone or the server is going.
fn is_connection_loss(message: &str) -> bool {
    [
        "server closed the connection",
        "no connection to the server",
        "could not send data to server",
        "could not receive data from server",
        "connection to server",
        "terminating connection",
        "the database system is shutting down",
        "the database system is starting up",
        "the database system is in recovery mode",
        "SSL connection has been closed",
        "Connection timed out",
        "Connection reset by peer",
        "Broken pipe",
    ]
    .iter()
    .any(|needle| message.contains(needle))
}

/// Names the field behind a unique violation. PostgreSQL reports the constraint
/// (`users_phone_key`), SQLite only the message (`UNIQUE constraint failed: users.phone`).
fn conflict_field(info: &(dyn DatabaseErrorInformation + Send + Sync)) -> &'static str {
    let text = format!(
        "{} {} {}",
        info.constraint_name().unwrap_or_default(),
        info.table_name().unwrap_or_default(),
        info.message()
    );
    if text.contains("phone") {
        "phone"
    } else if text.contains("sessions") {
        "session"
    } else if text.contains("verification_tokens") {
        "verification_token"
    } else if text.contains("users") {
        "user_id"
    } else if text.contains("changes") {
        "change"
    } else if text.contains("relationships") {
        "relationship"
    } else if text.contains("settings") {
        "setting"
    } else {
        "record"
    }
}

impl From<StoreError> for DomainError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(msg) => DomainError::Unavailable(msg),
            StoreError::Conflict(field) => DomainError::Conflict(field),
            StoreError::NotFound(what) => DomainError::NotFound(what),
            StoreError::Rule(err) => err,
            other => DomainError::Internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_domain_errors() {
        assert_eq!(
            DomainError::from(StoreError::Unavailable("down".into())),
            DomainError::Unavailable("down".into())
        );
        assert_eq!(
            DomainError::from(StoreError::Conflict("phone")),
            DomainError::Conflict("phone")
        );
        assert_eq!(
            DomainError::from(StoreError::NotFound("user")),
            DomainError::NotFound("user")
        );
        assert_eq!(
            DomainError::from(StoreError::Rule(DomainError::AlreadyFriends)),
            DomainError::AlreadyFriends
        );
        for lost in [
            "server closed the connection unexpectedly\n\tThis probably means the server \
             terminated abnormally",
            "no connection to the server\n",
            "could not receive data from server: Connection timed out",
            "terminating connection due to administrator command",
        ] {
            assert!(is_connection_loss(lost), "{lost}");
        }
        assert!(!is_connection_loss("relation \"users\" does not exist"));
        assert!(matches!(
            DomainError::from(StoreError::Migration("x".into())),
            DomainError::Internal(_)
        ));
        assert!(matches!(
            DomainError::from(StoreError::from(DieselError::RollbackTransaction)),
            DomainError::Internal(_)
        ));
    }
}
