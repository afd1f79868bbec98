//! Secrets and their hashes: random tokens, SMS codes, and the keyed hashes that are all we store.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::error::DomainError;
use crate::ports::Random;

/// A server key for keyed hashes of low-entropy secrets (SMS codes, captcha answers).
#[derive(Clone)]
pub struct ServerKey(Vec<u8>);

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerKey(***)")
    }
}

impl ServerKey {
    /// Wraps key bytes; at least 16 are required.
    pub fn new(bytes: Vec<u8>) -> Result<Self, DomainError> {
        if bytes.len() < 16 {
            return Err(DomainError::Internal(
                "server key shorter than 16 bytes".into(),
            ));
        }
        Ok(Self(bytes))
    }

    /// HMAC-SHA256 of `data` under this key, bound to `purpose`, as hex.
    pub fn keyed_hash(&self, purpose: &str, data: &str) -> String {
        // new_from_slice only fails for fixed-size-key MACs; HMAC takes any length.
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.0) {
            Ok(mac) => mac,
            Err(_) => return sha256_hex(&format!("{purpose}\0{data}")),
        };
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(data.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// SHA-256 as hex: enough for high-entropy tokens, which cannot be guessed from their hash.
pub fn sha256_hex(data: &str) -> String {
    hex::encode(Sha256::digest(data.as_bytes()))
}

/// An opaque bearer secret (session or verification token): 256 random bits as 64 hex digits.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

impl Token {
    /// Draws a fresh token.
    pub fn generate(random: &dyn Random) -> Self {
        let mut bytes = [0u8; 32];
        random.fill(&mut bytes);
        Self(hex::encode(bytes))
    }

    /// Parses a token as a client sends it (cookie, Bearer header or body). Anything that is not
    /// exactly 64 hex digits is refused before any lookup.
    pub fn parse(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        if raw.len() == 64 && raw.bytes().all(|b| b.is_ascii_hexdigit()) {
            Some(Self(raw.to_ascii_lowercase()))
        } else {
            None
        }
    }

    /// The secret, to hand to the client once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The stored form.
    pub fn hash(&self) -> String {
        sha256_hex(&self.0)
    }
}

/// Draws a six-digit SMS code, uniform over 000000..=999999.
pub fn sms_code(random: &dyn Random) -> String {
    loop {
        let mut b = [0u8; 4];
        random.fill(&mut b);
        let n = u32::from_le_bytes(b);
        // Rejection sampling keeps the distribution uniform.
        if n < 4_294_000_000 {
            return format!("{:06}", n % 1_000_000);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::memory::SeqRandom;

    #[test]
    fn token_round_trips_and_refuses_junk() {
        let r = SeqRandom::new(7);
        let t = Token::generate(&r);
        assert_eq!(t.expose().len(), 64);
        assert_eq!(Token::parse(t.expose()), Some(t.clone()));
        assert_eq!(Token::parse(&t.expose().to_uppercase()), Some(t.clone()));
        for bad in ["", "abc", &"g".repeat(64), &"a".repeat(65)] {
            assert!(Token::parse(bad).is_none());
        }
        assert_ne!(t.hash(), t.expose());
        assert_eq!(format!("{t:?}"), "Token(***)");
    }

    #[test]
    fn keyed_hash_depends_on_key_and_purpose() {
        let k1 = ServerKey::new(vec![1; 32]).unwrap();
        let k2 = ServerKey::new(vec![2; 32]).unwrap();
        assert_eq!(
            k1.keyed_hash("sms", "123456"),
            k1.keyed_hash("sms", "123456")
        );
        assert_ne!(
            k1.keyed_hash("sms", "123456"),
            k2.keyed_hash("sms", "123456")
        );
        assert_ne!(
            k1.keyed_hash("sms", "123456"),
            k1.keyed_hash("captcha", "123456")
        );
        assert!(ServerKey::new(vec![0; 8]).is_err());
    }

    #[test]
    fn sms_codes_are_six_digits() {
        let r = SeqRandom::new(1);
        for _ in 0..200 {
            let c = sms_code(&r);
            assert_eq!(c.len(), 6);
            assert!(c.bytes().all(|b| b.is_ascii_digit()));
        }
    }
}
