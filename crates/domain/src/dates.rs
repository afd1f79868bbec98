//! Calendar dates: parsing `YYYY-MM-DD`, the UTC date of an instant, and ages.

use crate::ids::Millis;

/// A calendar date: (year, month 1–12, day 1–31).
pub type Date = (i64, u32, u32);

/// Reads a real calendar day written `YYYY-MM-DD`; anything else is `None`.
pub fn parse_date(raw: &str) -> Option<Date> {
    let b = raw.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| raw.get(r).and_then(|s| s.parse::<u32>().ok());
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    (1..=days).contains(&d).then_some((i64::from(y), m, d))
}

/// The UTC calendar date of an instant (Howard Hinnant's `civil_from_days`).
pub fn date_of(ms: Millis) -> Date {
    let days = ms.div_euclid(1000).div_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both are in range by construction (1..=31, 1..=12).
    (year, month as u32, day as u32)
}

/// Whole years from a `YYYY-MM-DD` birth date to `today`; `None` for an unreadable or future date.
pub fn age_on(birth_date: &str, today: Date) -> Option<u32> {
    let (year, month, day) = parse_date(birth_date)?;
    let (ty, tm, td) = today;
    let years = ty - year - i64::from((tm, td) < (month, day));
    u32::try_from(years).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_counts_whole_years() {
        let today = (2023, 11, 14);
        assert_eq!(age_on("2000-11-14", today), Some(23));
        assert_eq!(age_on("2000-11-15", today), Some(22));
        assert_eq!(age_on("2023-12-01", today), None);
        for bad in ["", "2000-13-01", "2000/01/01", "20000-1-01", "abcd-ef-gh"] {
            assert_eq!(age_on(bad, today), None, "{bad}");
        }
    }

    #[test]
    fn dates_of_instants_and_real_days() {
        assert_eq!(date_of(0), (1970, 1, 1));
        assert_eq!(date_of(951_782_400_123), (2000, 2, 29));
        assert_eq!(parse_date("2000-02-29"), Some((2000, 2, 29)));
        assert_eq!(parse_date("2001-02-29"), None);
    }
}
