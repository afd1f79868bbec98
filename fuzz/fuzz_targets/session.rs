//! The session secret parser: `Authorization` and `Cookie` headers through
//! `kith_http::common::session_secret` and `kith_domain::secret::Token::parse`, then the same
//! headers on a real authenticated call. Never a panic or 5xx, the token shape holds, and only
//! A's own session (in any letter case) gets in; anything else is a 401.
#![no_main]

use actix_web::http::header::{HeaderValue, AUTHORIZATION, COOKIE};
use actix_web::test::TestRequest;
use kith_domain::secret::Token;
use kith_fuzz::{block_on, substitute, with_app};
use libfuzzer_sys::fuzz_target;

fn check_token(t: &Token) {
    let s = t.expose();
    assert_eq!(s.len(), 64);
    assert!(
        s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "{s:?}"
    );
    assert_eq!(Token::parse(s).as_ref(), Some(t));
    assert_eq!(Token::parse(&s.to_ascii_uppercase()).as_ref(), Some(t));
    let h = t.hash();
    assert!(h.len() == 64 && h != s);
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    // The raw string parser alone, on anything.
    if let Ok(s) = std::str::from_utf8(rest) {
        if let Some(t) = Token::parse(s) {
            check_token(&t);
        }
    }
    let rest = rest.to_vec();
    block_on(with_app(|ids, app| async move {
        let rest = substitute(&rest, &ids);
        // "authorization\ncookie": either header is sent only when its flag bit is set.
        let (auth, cookie) = match rest.iter().position(|b| *b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (&rest[..], &[][..]),
        };
        let mut headers = Vec::new();
        if flags & 1 == 1 {
            let Ok(v) = HeaderValue::from_bytes(auth) else {
                return;
            };
            headers.push((AUTHORIZATION, v));
        }
        if flags & 2 == 2 {
            let Ok(v) = HeaderValue::from_bytes(cookie) else {
                return;
            };
            headers.push((COOKIE, v));
        }
        let req = || {
            headers
                .iter()
                .fold(TestRequest::get().uri("/friends"), |r, h| {
                    r.insert_header(h.clone())
                })
        };
        let secret = kith_http::common::session_secret(&req().to_http_request(), "kith_session");
        let token = secret.as_deref().and_then(Token::parse);
        if let Some(t) = &token {
            check_token(t);
        }
        let is_a = token.as_ref().is_some_and(|t| t.expose() == ids.token_a);
        let (status, body) = app.send(req().to_request()).await;
        let expected = if is_a { 200 } else { 401 };
        assert_eq!(
            status,
            expected,
            "secret {secret:?}: {}",
            String::from_utf8_lossy(&body)
        );
    }));
});
