//! Phone numbers: region plus national number in, one E.164 mobile number out.

use phonenumber::{country, Mode, PhoneNumber, Type};

use crate::error::DomainError;

/// Longest raw input accepted before parsing, so hostile strings never reach the parser.
const MAX_RAW: usize = 32;

/// A valid mobile number in E.164 form (`+8613912345678`). One phone is one account.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Phone {
    e164: String,
    region: String,
    national: String,
}

/// Keeps digits only, refusing anything that is not a digit or common punctuation.
fn digits(field: &'static str, raw: &str) -> Result<String, DomainError> {
    if raw.len() > MAX_RAW {
        return Err(DomainError::invalid(field, "must be at most 32 characters"));
    }
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '0'..='9' => out.push(c),
            ' ' | '-' | '(' | ')' | '.' | '+' => {}
            _ => return Err(DomainError::invalid(field, "must contain digits only")),
        }
    }
    if out.is_empty() {
        return Err(DomainError::invalid(field, "must contain digits"));
    }
    Ok(out)
}

impl Phone {
    /// Parses SealTalk's pair: `region` is the country calling code (86), `phone` the national number.
    pub fn parse(region: &str, phone: &str) -> Result<Self, DomainError> {
        let region_digits = digits("region", region)?;
        if region_digits.len() > 3 {
            return Err(DomainError::invalid(
                "region",
                "must be a country calling code",
            ));
        }
        let national = digits("phone", phone)?;
        // A number already written with its country code ("+86 139…") is accepted as such.
        let full = if phone.trim_start().starts_with('+') {
            format!("+{national}")
        } else {
            format!("+{region_digits}{national}")
        };
        Self::from_international(&full, "phone")
    }

    /// Parses a number from a phone book, where the country code may be missing; `default_region`
    /// is the uploader's own calling code.
    pub fn parse_loose(default_region: &str, raw: &str) -> Result<Self, DomainError> {
        let d = digits("tel", raw)?;
        let trimmed = raw.trim_start();
        if trimmed.starts_with('+') {
            return Self::from_international(&format!("+{d}"), "tel");
        }
        if let Some(rest) = d.strip_prefix("00") {
            return Self::from_international(&format!("+{rest}"), "tel");
        }
        let region = digits("region", default_region)?;
        // With the region's code prefixed the number may already carry it ("8613912345678").
        Self::from_international(&format!("+{region}{d}"), "tel")
            .or_else(|_| Self::from_international(&format!("+{d}"), "tel"))
    }

    /// Parses an E.164 string as stored.
    pub fn from_e164(raw: &str) -> Result<Self, DomainError> {
        if !raw.starts_with('+') {
            return Err(DomainError::invalid("phone", "must start with +"));
        }
        Self::from_international(&format!("+{}", digits("phone", raw)?), "phone")
    }

    /// Rebuilds a phone that was validated when it was stored, from its E.164 form and calling
    /// code, without the full parse: re-validating every stored row made list reads cost
    /// milliseconds. Only the shape is checked.
    pub fn from_stored(e164: &str, region: &str) -> Result<Self, DomainError> {
        let bad = || DomainError::Internal("stored phone is malformed".into());
        let digits_only = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let rest = e164.strip_prefix('+').ok_or_else(bad)?;
        let national = rest.strip_prefix(region).ok_or_else(bad)?;
        if !digits_only(region) || !digits_only(national) || rest.len() > 15 {
            return Err(bad());
        }
        Ok(Self {
            e164: e164.to_owned(),
            region: region.to_owned(),
            national: national.to_owned(),
        })
    }

    fn from_international(full: &str, field: &'static str) -> Result<Self, DomainError> {
        let parsed: PhoneNumber = phonenumber::parse(None::<country::Id>, full)
            .map_err(|_| DomainError::invalid(field, "is not a phone number"))?;
        if !phonenumber::is_valid(&parsed) {
            return Err(DomainError::invalid(field, "is not a valid phone number"));
        }
        match parsed.number_type(&phonenumber::metadata::DATABASE) {
            Type::Mobile | Type::FixedLineOrMobile => {}
            _ => return Err(DomainError::invalid(field, "must be a mobile number")),
        }
        let region = parsed.code().value().to_string();
        let e164 = parsed.format().mode(Mode::E164).to_string();
        // What follows the calling code in E.164, leading zeros included: the parser's national
        // number is an integer and drops them (+225 07…, +881 0…), which would make `national`
        // disagree with `e164` and with the phone rebuilt by `from_stored`.
        let national = e164
            .strip_prefix('+')
            .and_then(|rest| rest.strip_prefix(region.as_str()))
            .filter(|n| !n.is_empty())
            .ok_or_else(|| DomainError::invalid(field, "is not a valid phone number"))?
            .to_owned();
        Ok(Self {
            e164,
            region,
            national,
        })
    }

    /// The E.164 form, the stored key.
    pub fn e164(&self) -> &str {
        &self.e164
    }

    /// The country calling code ("86"), as SealTalk's `region`.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The national number ("13912345678"), as SealTalk's `phone`.
    pub fn national(&self) -> &str {
        &self.national
    }

    /// A masked form for logs: the country code and last two digits only.
    pub fn masked(&self) -> String {
        let tail: String = self
            .national
            .chars()
            .rev()
            .take(2)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("+{} ****{}", self.region, tail)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn chinese_mobile_normalises_to_e164() {
        let p = Phone::parse("86", "13912345678").unwrap();
        assert_eq!(p.e164(), "+8613912345678");
        assert_eq!(p.region(), "86");
        assert_eq!(p.national(), "13912345678");
        assert_eq!(Phone::parse("+86", "139-1234-5678").unwrap(), p);
        assert_eq!(Phone::parse("86", "+86 139 1234 5678").unwrap(), p);
        assert_eq!(Phone::from_e164("+8613912345678").unwrap(), p);
        assert_eq!(p.masked(), "+86 ****78");
    }

    #[test]
    fn rejects_letters_long_input_and_non_mobiles() {
        assert!(Phone::parse("86", "1391234567a").is_err());
        assert!(Phone::parse("86", &"1".repeat(33)).is_err());
        assert!(Phone::parse("86", "").is_err());
        assert!(Phone::parse("86", "123").is_err());
        assert!(Phone::parse("x", "13912345678").is_err());
        let p = Phone::parse("86", "13912345678").unwrap();
        assert_eq!(Phone::from_stored(p.e164(), p.region()).unwrap(), p);
        assert!(Phone::from_stored("8613912345678", "86").is_err());
        assert!(
            Phone::from_stored("+8613912345678", "1").is_err(),
            "region must prefix"
        );
        assert!(Phone::from_stored("+86", "86").is_err());
        assert!(Phone::parse("8600", "13912345678").is_err());
        // A Beijing fixed line is a valid number but not a mobile.
        assert!(Phone::parse("86", "1065529988").is_err());
    }

    /// Found by the `phone` fuzz target (fuzz/): a number whose national part starts with a
    /// zero lost it in `national()`, so `e164` was not `+region national` and the phone rebuilt
    /// from the stored row differed from the parsed one.
    #[test]
    fn national_keeps_leading_zeros() {
        let p = Phone::parse_loose("1", "00+8810153-567728").unwrap();
        assert_eq!(p.e164(), "+8810153567728");
        assert_eq!((p.region(), p.national()), ("881", "0153567728"));
        assert_eq!(Phone::from_stored(p.e164(), p.region()).unwrap(), p);
        assert_eq!(Phone::parse(p.region(), p.national()).unwrap(), p);
    }

    #[test]
    fn loose_parsing_uses_the_uploaders_region() {
        let p = Phone::parse_loose("86", "18012345678").unwrap();
        assert_eq!(p.e164(), "+8618012345678");
        assert_eq!(Phone::parse_loose("86", "+86 180 1234 5678").unwrap(), p);
        assert_eq!(Phone::parse_loose("1", "008618012345678").unwrap(), p);
        assert!(Phone::parse_loose("86", "hello").is_err());
    }
}
