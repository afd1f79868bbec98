//! Identifiers and instants: user ids, request ids and millisecond timestamps.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::DomainError;

/// The largest id plus one: ids stay exact in a JavaScript number (below 2^53).
pub const ID_LIMIT: i64 = 1 << 53;

/// Milliseconds since the Unix epoch. Every stored instant uses it.
pub type Millis = i64;

/// Validates a raw id: positive and below 2^53.
fn check_id(field: &'static str, raw: i64) -> Result<i64, DomainError> {
    if raw > 0 && raw < ID_LIMIT {
        Ok(raw)
    } else {
        Err(DomainError::invalid(
            field,
            "must be a positive integer below 2^53",
        ))
    }
}

/// Parses a decimal id as the string-id APIs send it ("5Vg2Xh9f"-style ids are not ours: they are 404).
fn parse_id(field: &'static str, raw: &str) -> Result<i64, DomainError> {
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > 16 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DomainError::invalid(field, "must be a decimal id"));
    }
    let n: i64 = raw
        .parse()
        .map_err(|_| DomainError::invalid(field, "must be a decimal id"))?;
    check_id(field, n)
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "i64", into = "i64")]
        pub struct $name(i64);

        impl $name {
            /// Validates a raw number: positive and below 2^53.
            pub fn new(raw: i64) -> Result<Self, DomainError> {
                check_id($field, raw).map(Self)
            }
            /// Parses the decimal form used by string-id APIs.
            pub fn parse(raw: &str) -> Result<Self, DomainError> {
                parse_id($field, raw).map(Self)
            }
            /// The number, for storage and numeric APIs.
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl TryFrom<i64> for $name {
            type Error = DomainError;
            fn try_from(raw: i64) -> Result<Self, DomainError> {
                Self::new(raw)
            }
        }

        impl From<$name> for i64 {
            fn from(id: $name) -> i64 {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type!(
    /// A user's one identity in every API: random, positive, below 2^53.
    UserId,
    "user_id"
);
id_type!(
    /// A friend request's number, as the friends API (001) shows it.
    RequestId,
    "friend_request_id"
);
id_type!(
    /// A SealTalk group's id: random, positive, below 2^53, like user ids.
    GroupId,
    "groupId"
);

impl UserId {
    /// Turns 64 random bits into an id in range; callers supply the randomness.
    pub fn from_random(bits: u64) -> Self {
        // The top 11 bits are dropped so the id fits below 2^53; 0 is mapped to 1.
        let n = (bits >> 11) as i64;
        Self(if n == 0 { 1 } else { n })
    }
}

impl RequestId {
    /// Turns 64 random bits into a request id in range.
    pub fn from_random(bits: u64) -> Self {
        let n = (bits >> 11) as i64;
        Self(if n == 0 { 1 } else { n })
    }
}

impl GroupId {
    /// Turns 64 random bits into a group id in range.
    pub fn from_random(bits: u64) -> Self {
        let n = (bits >> 11) as i64;
        Self(if n == 0 { 1 } else { n })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_must_be_positive_and_below_2_pow_53() {
        assert!(UserId::new(0).is_err());
        assert!(UserId::new(-5).is_err());
        assert!(UserId::new(ID_LIMIT).is_err());
        assert_eq!(UserId::new(ID_LIMIT - 1).map(UserId::get), Ok(ID_LIMIT - 1));
    }

    #[test]
    fn parse_accepts_decimal_only() {
        assert_eq!(UserId::parse("42").map(UserId::get), Ok(42));
        for bad in [
            "",
            "5Vg2Xh9f",
            "-1",
            "1e3",
            "0",
            "99999999999999999999",
            " ",
        ] {
            assert!(UserId::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn random_ids_are_always_in_range() {
        for bits in [0, 1, u64::MAX, 1 << 11, 12345 << 20] {
            let id = UserId::from_random(bits);
            assert!(id.get() > 0 && id.get() < ID_LIMIT);
        }
    }
}
