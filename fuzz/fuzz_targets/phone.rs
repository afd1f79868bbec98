//! Phone normalisation: `Phone::parse` (SealTalk's region + phone pair), `parse_loose` (phone-book
//! uploads), `from_e164` and `from_stored`. Never panics, and every accepted phone round-trips
//! through each way back in.
#![no_main]

use kith_domain::phone::Phone;
use libfuzzer_sys::fuzz_target;

/// Everything an accepted phone must satisfy, whichever constructor made it.
fn check(p: &Phone, how: &str) {
    let e164 = p.e164();
    assert_eq!(
        e164,
        format!("+{}{}", p.region(), p.national()),
        "{how}: e164 is not +region national"
    );
    assert!(
        e164.len() <= 16 && e164[1..].bytes().all(|b| b.is_ascii_digit()),
        "{how}: e164 {e164:?} is not E.164"
    );
    assert_eq!(Phone::from_e164(e164).as_ref(), Ok(p), "{how}: from_e164");
    assert_eq!(
        Phone::from_stored(e164, p.region()).as_ref(),
        Ok(p),
        "{how}: from_stored"
    );
    assert_eq!(
        Phone::parse(p.region(), p.national()).as_ref(),
        Ok(p),
        "{how}: parse(region, national)"
    );
    assert_eq!(
        Phone::parse_loose(p.region(), p.national()).as_ref(),
        Ok(p),
        "{how}: parse_loose(region, national)"
    );
    let masked = p.masked();
    assert!(!masked.contains(p.national()) || p.national().len() <= 2);
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // "region\nphone": the first line is the region (or the uploader's region).
    let (region, phone) = text.split_once('\n').unwrap_or(("86", text));
    if let Ok(p) = Phone::parse(region, phone) {
        check(&p, "parse");
    }
    if let Ok(p) = Phone::parse_loose(region, phone) {
        check(&p, "parse_loose");
    }
    if let Ok(p) = Phone::from_e164(phone) {
        check(&p, "from_e164");
    }
    if let Ok(p) = Phone::from_stored(phone, region) {
        // Only the shape is checked on this path, so only the shape is promised.
        assert_eq!(p.e164(), phone);
        assert_eq!(p.region(), region);
    }
});
