//! The address-book workload (issue 4): `kith-bench prepare-book`, which fills one user's v2
//! address book through `/api/v2/contacts/batch`, and the `addressbook-search` requests.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use hyper::body::Bytes;
use hyper::StatusCode;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::http::{Conn, Req, Target};
use crate::users::{self, User};
use crate::BoxError;

/// Contacts `prepare-book` puts in the book unless told otherwise; `addressbook-search` picks
/// its keywords among these, so a smaller book shows up as errors rather than as fast misses.
pub const BOOK_SIZE: usize = 100_000;
/// The batch endpoint's limit.
const BATCH: usize = 200;
/// The users-file index of the book's owner.
const OWNER: usize = 0;
const FIRST: [&str; 8] = [
    "Li", "Wang", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao",
];

/// Contact `i` of the book: the same shapes as the store-level measurement
/// (`crates/store/src/tests/addressbook.rs`), so the two figures compare.
pub fn contact_doc(i: usize) -> Value {
    let (name, numbers, email) = contact_parts(i);
    let numbers: Vec<Value> = numbers
        .into_iter()
        .map(|(kind, number)| json!({"type": kind, "number": number}))
        .collect();
    json!({
        "name": name,
        "numbers": numbers,
        "emails": [{"type": "Work", "email": email}],
    })
}

/// Contact `i`'s name, `(type, number)` pairs and work email: shared by `prepare-book` (through
/// HTTP) and the bulk seed (through the store), so `addressbook-search` finds both.
pub fn contact_parts(i: usize) -> (String, Vec<(String, String)>, String) {
    (
        format!("{} {i:06}", FIRST[i % FIRST.len()]),
        vec![
            ("Mobile".to_owned(), format!("+86 139{i:08}")),
            ("Home".to_owned(), format!("010-{:08}", i * 7)),
        ],
        format!("user{i}@example.com"),
    )
}

/// A selective keyword search for request `n`: a full name, a run of a mobile number's digits
/// or an email prefix of one contact, in turn, each matching a handful of contacts.
pub fn search_request(users: &[User], n: usize) -> Req {
    // 7919 is prime: consecutive requests touch contacts spread over the whole book.
    let i = n.wrapping_mul(7919) % BOOK_SIZE;
    let keyword = match n % 3 {
        0 => format!("{}%20{i:06}", FIRST[i % FIRST.len()]),
        1 => format!("139{i:08}")[3..].to_owned(),
        _ => format!("user{i}%40"),
    };
    let mut req = Req::get(format!("/api/v2/contacts?keyword={keyword}&items=20"));
    req.bearer = users.get(OWNER).map(|u| u.token.clone());
    req
}

/// A search must answer 200 with at least one row: every keyword names an existing contact.
pub fn judge_search(status: StatusCode, body: &Bytes) -> Result<(), String> {
    if !status.is_success() {
        return Err(format!("http {}", status.as_u16()));
    }
    let v: Value = serde_json::from_slice(body).map_err(|_| "body is not JSON".to_owned())?;
    match v.get("totalRows").and_then(Value::as_u64) {
        Some(0) => Err("no match: is the book prepared (kith-bench prepare-book)?".to_owned()),
        Some(_) => Ok(()),
        None => Err("no totalRows".to_owned()),
    }
}

/// Arguments of `kith-bench prepare-book`.
#[derive(Debug, Args)]
pub struct PrepareBookArgs {
    /// The server, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    url: String,
    /// The users file written by `kith-bench seed`; the first user owns the book.
    #[arg(long)]
    tokens: PathBuf,
    /// How many contacts the book should hold.
    #[arg(long, default_value_t = BOOK_SIZE)]
    contacts: usize,
}

async fn total_rows(conn: &mut Conn, owner: &User) -> Result<usize, BoxError> {
    let mut req = Req::get("/api/v2/contacts?items=1");
    req.bearer = Some(owner.token.clone());
    let (status, body) = conn.send(&req).await?;
    let v: Value = serde_json::from_slice(&body)?;
    match (
        status.is_success(),
        v.get("totalRows").and_then(Value::as_u64),
    ) {
        (true, Some(n)) => Ok(usize::try_from(n)?),
        _ => Err(format!("counting the book: http {status}: {v}").into()),
    }
}

/// `kith-bench prepare-book`: tops the first user's book up to `--contacts` contacts.
pub async fn prepare_book(args: PrepareBookArgs) -> Result<(), BoxError> {
    let users = users::load(&args.tokens)?;
    let owner = users.get(OWNER).ok_or("the users file is empty")?;
    let target = Arc::new(Target::parse(&args.url)?);
    let mut conn = Conn::new(target);
    let started = Instant::now();
    let have = total_rows(&mut conn, owner).await?;
    for start in (have..args.contacts).step_by(BATCH) {
        let end = (start + BATCH).min(args.contacts);
        let ops: Vec<Value> = (start..end)
            .map(|i| json!({"op": "create", "doc": contact_doc(i)}))
            .collect();
        let mut req = Req::post_json("/api/v2/contacts/batch", &json!({ "ops": ops }));
        req.bearer = Some(owner.token.clone());
        let (status, body) = conn.send(&req).await?;
        let v: Value = serde_json::from_slice(&body)?;
        let failed = v.get("results").and_then(Value::as_array).map(|r| {
            r.iter()
                .filter(|x| x.get("ok") != Some(&json!(true)))
                .count()
        });
        if !status.is_success() || failed != Some(0) {
            return Err(format!("batch at {start}: http {status}: {v}").into());
        }
    }
    let now = total_rows(&mut conn, owner).await?;
    println!(
        "book of user {} holds {now} contacts ({} added in {:.1} s)",
        owner.id,
        now.saturating_sub(have),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn keywords_name_existing_contacts_in_turn() {
        let users = vec![User {
            id: "7".into(),
            token: "t".into(),
            phone: "13900000000".into(),
            password: "pw".into(),
        }];
        let paths: Vec<String> = (0..3).map(|n| search_request(&users, n).path).collect();
        assert_eq!(paths[0], "/api/v2/contacts?keyword=Li%20000000&items=20");
        // n = 1: contact 7919, digits without the "139" prefix.
        assert_eq!(paths[1], "/api/v2/contacts?keyword=00007919&items=20");
        assert_eq!(paths[2], "/api/v2/contacts?keyword=user15838%40&items=20");
        assert_eq!(search_request(&users, 1).bearer.as_deref(), Some("t"));
        let doc = contact_doc(7919);
        assert_eq!(doc["name"], "Zhao 007919");
        assert_eq!(doc["numbers"][0]["number"], "+86 13900007919");
    }

    #[test]
    fn an_empty_answer_is_a_failure() {
        let some = Bytes::from_static(br#"{"totalRows":1,"rows":[{}]}"#);
        let none = Bytes::from_static(br#"{"totalRows":0,"rows":[]}"#);
        assert_eq!(judge_search(StatusCode::OK, &some), Ok(()));
        assert!(judge_search(StatusCode::OK, &none).is_err());
        assert!(judge_search(StatusCode::BAD_REQUEST, &some).is_err());
    }
}
