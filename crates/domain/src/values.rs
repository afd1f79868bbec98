//! Validated user input: each type refuses bad values in its constructor, so holding one is proof.

use serde::Serialize;

use crate::error::DomainError;

/// Common passwords refused at registration, shipped with the code (one per line).
const COMMON_PASSWORDS: &str = include_str!("common_passwords.txt");

/// Counts characters the way users do: Unicode scalar values.
fn char_len(s: &str) -> usize {
    s.chars().count()
}

/// Refuses control characters other than ordinary whitespace in free text.
fn check_no_controls(field: &'static str, s: &str) -> Result<(), DomainError> {
    if s.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(DomainError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

macro_rules! text_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The text, exactly as the user sent it.
            pub fn as_str(&self) -> &str {
                &self.0
            }
            /// Takes the text out.
            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

text_type!(
    /// A user's public nickname: 1 to 32 bytes (SealTalk's rule), not blank.
    Nickname
);
impl Nickname {
    /// Validates a nickname. It is stored exactly as sent.
    pub fn new(raw: impl Into<String>) -> Result<Self, DomainError> {
        let raw = raw.into();
        if raw.is_empty() || raw.len() > 32 {
            return Err(DomainError::invalid("nickname", "must be 1 to 32 bytes"));
        }
        if raw.trim().is_empty() {
            return Err(DomainError::invalid("nickname", "must not be blank"));
        }
        check_no_controls("nickname", &raw)?;
        Ok(Self(raw))
    }
}

/// A password as typed: 6 to 20 bytes, no whitespace. Never logged, never serialised.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

impl Password {
    /// Validates the shape only (for login, where old accounts may predate the common list).
    pub fn parse(field: &'static str, raw: impl Into<String>) -> Result<Self, DomainError> {
        let raw = raw.into();
        if raw.len() < 6 || raw.len() > 20 {
            return Err(DomainError::invalid(field, "must be 6 to 20 bytes"));
        }
        if raw.chars().any(char::is_whitespace) {
            return Err(DomainError::invalid(field, "must not contain spaces"));
        }
        Ok(Self(raw))
    }

    /// Validates a new password: the shape, and not one of the most common passwords.
    pub fn new_secret(field: &'static str, raw: impl Into<String>) -> Result<Self, DomainError> {
        let pw = Self::parse(field, raw)?;
        let lower = pw.0.to_lowercase();
        if COMMON_PASSWORDS.lines().any(|common| common == lower) {
            return Err(DomainError::invalid(field, "is too common; choose another"));
        }
        Ok(pw)
    }

    /// The secret, for the hasher only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

text_type!(
    /// An http(s) URL of at most 256 characters: portraits and images.
    ImageUri
);
impl ImageUri {
    /// Validates an image URI. An empty string is refused; clearing is an `Option` at the call.
    pub fn new(field: &'static str, raw: impl Into<String>) -> Result<Self, DomainError> {
        let raw = raw.into();
        if char_len(&raw) > 256 {
            return Err(DomainError::invalid(
                field,
                "must be at most 256 characters",
            ));
        }
        let lower = raw.to_ascii_lowercase();
        let rest = lower
            .strip_prefix("https://")
            .or_else(|| lower.strip_prefix("http://"));
        match rest {
            Some(host) if !host.is_empty() && !host.starts_with('/') => {}
            _ => return Err(DomainError::invalid(field, "must be an http(s) URL")),
        }
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(DomainError::invalid(field, "must not contain spaces"));
        }
        Ok(Self(raw))
    }
}

text_type!(
    /// My private name for a contact: at most 32 characters (may be empty, which clears it).
    DisplayName
);
impl DisplayName {
    /// Validates a display name.
    pub fn new(field: &'static str, raw: impl Into<String>) -> Result<Self, DomainError> {
        let raw = raw.into();
        if char_len(&raw) > 32 {
            return Err(DomainError::invalid(field, "must be at most 32 characters"));
        }
        check_no_controls(field, &raw)?;
        Ok(Self(raw))
    }
}

text_type!(
    /// My private description of a contact: at most 500 characters.
    Description
);
impl Description {
    /// Validates a description.
    pub fn new(field: &'static str, raw: impl Into<String>) -> Result<Self, DomainError> {
        let raw = raw.into();
        if char_len(&raw) > 500 {
            return Err(DomainError::invalid(
                field,
                "must be at most 500 characters",
            ));
        }
        Ok(Self(raw))
    }
}

text_type!(
    /// The message sent with a friend request: at most 64 characters.
    RequestMessage
);
impl RequestMessage {
    /// Validates a request message.
    pub fn new(field: &'static str, raw: impl Into<String>) -> Result<Self, DomainError> {
        let raw = raw.into();
        if char_len(&raw) > 64 {
            return Err(DomainError::invalid(field, "must be at most 64 characters"));
        }
        check_no_controls(field, &raw)?;
        Ok(Self(raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nickname_is_1_to_32_bytes() {
        assert!(Nickname::new("").is_err());
        assert!(Nickname::new("   ").is_err());
        assert!(Nickname::new("a".repeat(33)).is_err());
        assert!(Nickname::new("a".repeat(32)).is_ok());
        // 11 three-byte characters are 33 bytes: too long although only 11 characters.
        assert!(Nickname::new("汉".repeat(11)).is_err());
        assert_eq!(
            Nickname::new(" Tom ").map(Nickname::into_inner),
            Ok(" Tom ".into())
        );
    }

    #[test]
    fn password_rules() {
        assert!(Password::parse("password", "12345").is_err());
        assert!(Password::parse("password", "a".repeat(21)).is_err());
        assert!(Password::parse("password", "abc def1").is_err());
        assert!(Password::parse("password", "P@ssw0rd").is_ok());
        assert!(Password::new_secret("password", "123456").is_err());
        assert!(Password::new_secret("password", "Password").is_err());
        assert!(Password::new_secret("password", "kith-Zebra-42").is_ok());
        assert_eq!(
            format!("{:?}", Password::parse("p", "secret99")),
            "Ok(Password(***))"
        );
    }

    #[test]
    fn image_uri_rules() {
        assert!(ImageUri::new("portraitUri", "http://test.com/a.jpg").is_ok());
        assert!(ImageUri::new("portraitUri", "HTTPS://x.y/z").is_ok());
        for bad in [
            "",
            "ftp://x",
            "javascript:alert(1)",
            "http://",
            "http:///x",
            "http://a b",
        ] {
            assert!(ImageUri::new("portraitUri", bad).is_err(), "{bad}");
        }
        let long = format!("http://x.com/{}", "a".repeat(250));
        assert!(ImageUri::new("portraitUri", long).is_err());
    }

    #[test]
    fn remark_lengths_count_characters() {
        assert!(DisplayName::new("displayName", "名".repeat(32)).is_ok());
        assert!(DisplayName::new("displayName", "名".repeat(33)).is_err());
        assert!(Description::new("description", "x".repeat(500)).is_ok());
        assert!(Description::new("description", "x".repeat(501)).is_err());
        assert!(RequestMessage::new("message", "m".repeat(64)).is_ok());
        assert!(RequestMessage::new("message", "m".repeat(65)).is_err());
    }
}
