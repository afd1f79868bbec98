#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use futures_executor::block_on;
use proptest::prelude::*;

use super::*;
use crate::memory::{ManualClock, MemoryAccountStore, MemoryAddressBookStore, SeqRandom};
use crate::phone::Phone;

const T0: Millis = 1_700_000_000_000;

fn draft(name: &str) -> ContactDraft {
    ContactDraft {
        name: name.into(),
        ..ContactDraft::default()
    }
}

fn with_number(name: &str, number: &str) -> ContactDraft {
    ContactDraft {
        name: name.into(),
        numbers: vec![("Home".into(), number.into())],
        ..ContactDraft::default()
    }
}

fn mail(local: &str, domain: &str) -> String {
    format!("{local}{}{domain}", '@')
}

fn field_of(err: DomainError) -> &'static str {
    match err {
        DomainError::Invalid { field, .. } => field,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

struct Fixture {
    svc: AddressBookService,
    accounts: Arc<MemoryAccountStore>,
    clock: Arc<ManualClock>,
}

fn fixture() -> Fixture {
    let accounts = Arc::new(MemoryAccountStore::default());
    let clock = Arc::new(ManualClock::new(T0));
    let svc = AddressBookService::new(AddressBookPorts {
        store: Arc::new(MemoryAddressBookStore::new(accounts.clone())),
        clock: clock.clone(),
        random: Arc::new(SeqRandom::new(3)),
    });
    Fixture {
        svc,
        accounts,
        clock,
    }
}

impl Fixture {
    fn user(&self, n: u32) -> UserId {
        let id = UserId::new(i64::from(n) * 1000 + 7).unwrap();
        let phone = Phone::parse("86", &format!("139{n:08}")).unwrap();
        self.accounts
            .add_user(id, &phone, &format!("U{n}"), T0)
            .unwrap();
        id
    }
}

#[test]
fn names_are_1_to_256_characters() {
    assert_eq!(field_of(ContactFields::new(draft("")).unwrap_err()), "name");
    assert_eq!(
        field_of(ContactFields::new(draft("  ")).unwrap_err()),
        "name"
    );
    assert_eq!(
        field_of(ContactFields::new(draft(&"é".repeat(257))).unwrap_err()),
        "name"
    );
    assert!(ContactFields::new(draft(&"é".repeat(256))).is_ok());
    assert_eq!(
        field_of(ContactFields::new(draft("a\u{0}b")).unwrap_err()),
        "name"
    );
}

#[test]
fn numbers_emails_and_tags_are_bounded_and_checked() {
    let mut d = draft("x");
    d.numbers = vec![("Home".into(), "123".into()); 51];
    assert_eq!(
        field_of(ContactFields::new(d.clone()).unwrap_err()),
        "numbers"
    );
    d.numbers.truncate(50);
    assert!(ContactFields::new(d.clone()).is_ok());
    for bad in ["", "abc", "12<script>", &"1".repeat(33)] {
        let d = with_number("x", bad);
        assert_eq!(
            field_of(ContactFields::new(d).unwrap_err()),
            "numbers",
            "{bad:?}"
        );
    }
    assert!(ContactFields::new(with_number("x", "+86 (154) 7324-43242")).is_ok());

    let mut d = draft("x");
    d.emails = vec![("Work".into(), mail("yan", "Example.COM")); 51];
    assert_eq!(
        field_of(ContactFields::new(d.clone()).unwrap_err()),
        "emails"
    );
    for bad in ["", "a", "a@", "@b.c", "a@b", "a b@c.d", "a@b..c", "a@-b.c"] {
        d.emails = vec![("Work".into(), bad.into())];
        assert_eq!(
            field_of(ContactFields::new(d.clone()).unwrap_err()),
            "emails",
            "{bad:?}"
        );
    }
    d.emails = vec![("Work".into(), mail("yan", "Example.COM"))];
    assert!(ContactFields::new(d).is_ok());

    let mut d = draft("x");
    d.tag_ids = vec!["nope".into()];
    assert_eq!(
        field_of(ContactFields::new(d.clone()).unwrap_err()),
        "tag_ids"
    );
    d.tag_ids = (1..=101).map(|n| format!("{n:016x}")).collect();
    assert_eq!(
        field_of(ContactFields::new(d.clone()).unwrap_err()),
        "tag_ids"
    );
    d.tag_ids = vec!["00000000000000aa".into(), "00000000000000AA".into()];
    assert_eq!(ContactFields::new(d).unwrap().tag_ids().len(), 1);

    let mut d = draft("x");
    d.note = Some("n".repeat(NOTE_MAX + 1));
    assert_eq!(field_of(ContactFields::new(d.clone()).unwrap_err()), "note");
    d.note = Some("line 1\nline 2".into());
    assert!(ContactFields::new(d).is_ok());
}

#[test]
fn revisions_count_changes_and_hash_content() {
    let a = ContactFields::new(with_number("Cai", "17314141431")).unwrap();
    let b = ContactFields::new(with_number("Cai", "17314141432")).unwrap();
    let r1 = Revision::next(None, &a);
    assert_eq!(r1.seq(), 1);
    assert_eq!(r1, Revision::next(None, &a), "same content, same revision");
    assert_ne!(r1, Revision::next(None, &b));
    let r2 = Revision::next(Some(&r1), &b);
    assert_eq!(r2.seq(), 2);
    let text = r2.to_string();
    assert!(text.starts_with("2-") && text.len() == 34, "{text}");
    assert_eq!(Revision::parse("_rev", &text).unwrap(), r2);
    assert_eq!(Revision::parse("_rev", &format!("\"{text}\"")).unwrap(), r2);
    for bad in [
        "",
        "1",
        "1-",
        "x-00",
        "0-0123456789abcdef0123456789abcdef",
        "1-xyz",
    ] {
        assert_eq!(field_of(Revision::parse("_rev", bad).unwrap_err()), "_rev");
    }
}

#[test]
fn keywords_normalise_digits_case_and_tags() {
    assert_eq!(Keyword::new("  ").unwrap(), None);
    let k = Keyword::new("154-732").unwrap().unwrap();
    assert_eq!(k.digits, vec!["154732".to_owned()]);
    let k = Keyword::new("+86 139 1234 5678").unwrap().unwrap();
    assert_eq!(
        k.digits,
        vec!["8613912345678".to_owned(), "13912345678".to_owned()]
    );
    let k = Keyword::new("Tom").unwrap().unwrap();
    assert_eq!(k.lower, "tom");
    assert!(k.digits.is_empty() && k.tag.is_none());
    let k = Keyword::new("00000000000000ab").unwrap().unwrap();
    assert_eq!(k.tag, TagId::try_parse("00000000000000ab"));
    let k = Keyword::new("50%_o\\").unwrap().unwrap();
    assert_eq!(k.like_pattern(), "%50\\%\\_o\\\\%");
    assert_eq!(
        field_of(Keyword::new(&"a".repeat(257)).unwrap_err()),
        "keyword"
    );
}

#[test]
fn keyword_matching_follows_the_rules() {
    let mut d = with_number("Haiyan Li", "+86 154-7324-43242");
    d.emails = vec![("Work".into(), mail("yan", "Example.COM"))];
    let f = ContactFields::new(d).unwrap();
    let hit = |kw: &str| Keyword::new(kw).unwrap().unwrap().matches(&f);
    assert!(hit("154732"));
    assert!(hit("154732443242"));
    assert!(hit("YAN"));
    assert!(hit("example.com"));
    assert!(!hit("999"));
    assert!(!hit("%"));
    let national = ContactFields::new(with_number("A", "13912345678")).unwrap();
    assert!(Keyword::new("+86 139 1234 5678")
        .unwrap()
        .unwrap()
        .matches(&national));
}

#[test]
fn cursors_round_trip_and_reject_garbage() {
    let key = SortKey {
        name_lower: "zoë.x".into(),
        id: ContactId::from_random(99),
    };
    assert_eq!(SortKey::decode(&key.encode()).unwrap(), key);
    for bad in ["", "x", "zz.00", "0000000000000001.zz"] {
        assert_eq!(field_of(SortKey::decode(bad).unwrap_err()), "cursor");
    }
}

#[test]
fn ids_are_opaque_hex_and_foreign_forms_are_not_found() {
    let id = ContactId::from_random(u64::MAX);
    assert_eq!(ContactId::parse(&id.to_string()).unwrap(), id);
    for bad in [
        "",
        "1",
        "zzzzzzzzzzzzzzzz",
        "0000000000000000",
        "8000000000000000",
    ] {
        assert_eq!(ContactId::parse(bad), Err(DomainError::NotFound("contact")));
    }
}

#[test]
fn create_update_delete_with_revisions() {
    let f = fixture();
    let me = f.user(1);
    let v0 = f.accounts.version(me);
    let c = block_on(f.svc.create(me, with_number("Cai", "17314141431"))).unwrap();
    assert_eq!(c.rev.seq(), 1);
    assert_eq!(c.modified_at, None);
    assert_eq!(f.accounts.version(me), v0 + 1);
    let id = c.id.to_string();

    f.clock.advance(5);
    let stale = c.rev.to_string();
    let c2 = block_on(f.svc.update(me, &id, Some(&stale), draft("Caiwei"))).unwrap();
    assert_eq!(c2.rev.seq(), 2);
    assert_eq!(c2.modified_at, Some(T0 + 5));
    assert_eq!(c2.created_at, T0);

    let err = block_on(f.svc.update(me, &id, Some(&stale), draft("Lost"))).unwrap_err();
    assert_eq!(err, DomainError::Conflict("_rev"));
    assert_eq!(block_on(f.svc.get(me, &id)).unwrap(), c2);
    // Without a revision the last write wins.
    let c3 = block_on(f.svc.update(me, &id, None, draft("Won"))).unwrap();
    assert_eq!(c3.rev.seq(), 3);

    assert_eq!(
        block_on(f.svc.delete(me, &id, Some(&c2.rev.to_string()))),
        Err(DomainError::Conflict("_rev"))
    );
    block_on(f.svc.delete(me, &id, Some(&c3.rev.to_string()))).unwrap();
    assert_eq!(
        block_on(f.svc.get(me, &id)),
        Err(DomainError::NotFound("contact"))
    );
    assert_eq!(f.accounts.version(me), v0 + 4);
}

#[test]
fn another_users_contact_is_not_found() {
    let f = fixture();
    let (a, b) = (f.user(1), f.user(2));
    let c = block_on(f.svc.create(a, draft("Mine"))).unwrap();
    let id = c.id.to_string();
    assert_eq!(
        block_on(f.svc.get(b, &id)),
        Err(DomainError::NotFound("contact"))
    );
    assert_eq!(
        block_on(f.svc.update(b, &id, None, draft("x"))),
        Err(DomainError::NotFound("contact"))
    );
    assert_eq!(
        block_on(f.svc.delete(b, &id, None)),
        Err(DomainError::NotFound("contact"))
    );
    assert_eq!(block_on(f.svc.get(a, &id)).unwrap(), c);
}

#[test]
fn tags_must_be_the_owners_and_deleting_one_untags_contacts() {
    let f = fixture();
    let (a, b) = (f.user(1), f.user(2));
    let theirs = block_on(f.svc.create_tag(b, "Theirs")).unwrap();
    let mine = block_on(f.svc.create_tag(a, "Mine")).unwrap();
    let mut d = draft("x");
    d.tag_ids = vec![theirs.id.to_string()];
    assert_eq!(
        field_of(block_on(f.svc.create(a, d.clone())).unwrap_err()),
        "tag_ids"
    );
    d.tag_ids = vec![mine.id.to_string()];
    let c = block_on(f.svc.create(a, d)).unwrap();

    let renamed = block_on(f.svc.rename_tag(a, &mine.id.to_string(), "Family")).unwrap();
    assert_eq!(renamed.name.as_str(), "Family");
    assert_eq!(
        block_on(f.svc.rename_tag(b, &mine.id.to_string(), "x")),
        Err(DomainError::NotFound("tag"))
    );
    assert_eq!(block_on(f.svc.tags(a)).unwrap(), vec![renamed]);

    block_on(f.svc.delete_tag(a, &mine.id.to_string())).unwrap();
    let after = block_on(f.svc.get(a, &c.id.to_string())).unwrap();
    assert!(after.fields.tag_ids().is_empty());
    assert_eq!(after.rev.seq(), 2);
    assert!(block_on(f.svc.tags(a)).unwrap().is_empty());
}

#[test]
fn search_pages_in_a_stable_order_and_cursors_survive_inserts() {
    let f = fixture();
    let me = f.user(1);
    for name in ["bob", "Alice", "carol", "alice", "Dave"] {
        block_on(f.svc.create(me, with_number(name, "16473243224"))).unwrap();
    }
    let params = |items, page| SearchParams {
        items: Some(items),
        page: Some(page),
        ..SearchParams::default()
    };
    let p1 = block_on(f.svc.search(me, params(2, 1))).unwrap();
    assert_eq!(p1.total, 5);
    let names: Vec<String> = p1.rows.iter().map(|c| c.fields.name().lower()).collect();
    assert_eq!(names, ["alice", "alice"]);
    let p3 = block_on(f.svc.search(me, params(2, 3))).unwrap();
    assert_eq!(p3.rows.len(), 1);
    assert_eq!(p3.next_cursor, None);

    let cursor = p1.next_cursor.clone().unwrap();
    block_on(f.svc.create(me, draft("aaron"))).unwrap();
    let next = block_on(f.svc.search(
        me,
        SearchParams {
            items: Some(2),
            cursor: Some(cursor),
            ..SearchParams::default()
        },
    ))
    .unwrap();
    let names: Vec<String> = next.rows.iter().map(|c| c.fields.name().lower()).collect();
    assert_eq!(names, ["bob", "carol"]);

    let bad = block_on(f.svc.search(me, params(1001, 1))).unwrap_err();
    assert_eq!(field_of(bad), "items");
    let bad = block_on(f.svc.search(me, params(10, 0))).unwrap_err();
    assert_eq!(field_of(bad), "currentpage");
}

#[test]
fn batch_answers_per_item() {
    let f = fixture();
    let me = f.user(1);
    let ops = vec![
        BatchOp::Create(draft("ok")),
        BatchOp::Create(draft("")),
        BatchOp::Delete {
            id: "0000000000000001".into(),
            rev: None,
        },
    ];
    let out = block_on(f.svc.batch(me, ops)).unwrap();
    assert!(matches!(out[0], BatchResult::Saved(_)));
    assert!(matches!(
        out[1],
        BatchResult::Failed(DomainError::Invalid { field: "name", .. })
    ));
    assert_eq!(
        out[2],
        BatchResult::Failed(DomainError::NotFound("contact"))
    );
    let too_many = vec![BatchOp::Create(draft("x")); BATCH_MAX + 1];
    assert_eq!(
        field_of(block_on(f.svc.batch(me, too_many)).unwrap_err()),
        "ops"
    );
}

proptest! {
    #[test]
    fn keyword_parsing_never_panics(raw in "\\PC{0,80}") {
        let _ = Keyword::new(&raw);
    }

    #[test]
    fn digit_search_finds_every_substring(number in "[0-9]{1,20}", start in 0usize..20, len in 1usize..20) {
        let f = ContactFields::new(with_number("x", &number)).unwrap();
        let start = start.min(number.len() - 1);
        let end = (start + len).min(number.len());
        let k = Keyword::new(&number[start..end]).unwrap().unwrap();
        prop_assert!(k.matches(&f));
        let terms = f.digit_terms();
        prop_assert!(terms.iter().any(|t| t.starts_with(&number[start..end])));
    }
}

const VCF: &str = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Hai Yan\r\nTEL;TYPE=CELL:+86 139 1234 5678\r\nCATEGORIES:Family,Work\r\nEND:VCARD\r\n\
BEGIN:VCARD\r\nVERSION:4.0\r\nFN:No Name Needed\r\nTEL:13912345678\r\nEMAIL:hy@example.org\r\nNOTE:second card\r\nEND:VCARD\r\n\
BEGIN:VCARD\r\nVERSION:4.0\r\nTEL:12345\r\nEND:VCARD\r\n\
BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Bad Mail\r\nEMAIL:nope\r\nEND:VCARD\r\n";

#[test]
fn import_merges_by_number_creates_tags_and_skips_with_reasons() {
    let f = fixture();
    let me = f.user(1);
    let family = block_on(f.svc.create_tag(me, "Family")).unwrap();
    let report = block_on(f.svc.import_vcard(me, VCF.as_bytes())).unwrap();
    assert_eq!((report.created, report.merged), (1, 1), "{report:?}");
    let lines: Vec<usize> = report.skipped.iter().map(|s| s.line).collect();
    assert_eq!(lines, [14, 18]);
    assert!(report.skipped[0].reason.starts_with("name:"), "{report:?}");
    assert!(
        report.skipped[1].reason.starts_with("emails:"),
        "{report:?}"
    );

    let all = block_on(f.svc.search(me, SearchParams::default())).unwrap();
    assert_eq!(all.total, 1);
    let c = &all.rows[0];
    assert_eq!(c.fields.name().as_str(), "Hai Yan");
    assert_eq!(
        c.fields.numbers().len(),
        1,
        "the national form is the same number"
    );
    assert_eq!(c.fields.emails().len(), 1);
    assert_eq!(c.fields.note(), Some("second card"));
    assert_eq!(c.rev.seq(), 2);
    let tags = block_on(f.svc.tags(me)).unwrap();
    assert_eq!(tags.len(), 2, "Family reused, Work created");
    assert!(c.fields.tag_ids().contains(&family.id));

    // Importing the same file again only merges.
    let again = block_on(f.svc.import_vcard(me, VCF.as_bytes())).unwrap();
    assert_eq!((again.created, again.merged), (0, 2));
}

#[test]
fn broken_vcard_imports_nothing() {
    let f = fixture();
    let me = f.user(1);
    let text = format!("{VCF}BEGIN:VCARD\r\nFN x\r\n");
    let err = block_on(f.svc.import_vcard(me, text.as_bytes())).unwrap_err();
    match err {
        DomainError::Invalid {
            field: "vcard",
            reason,
        } => assert!(reason.starts_with("line 24:"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        block_on(f.svc.search(me, SearchParams::default()))
            .unwrap()
            .total,
        0
    );
    assert!(block_on(f.svc.tags(me)).unwrap().is_empty());
}

#[test]
fn export_round_trips_through_import() {
    let f = fixture();
    let me = f.user(1);
    let tag = block_on(f.svc.create_tag(me, "Friends")).unwrap();
    let mut d = with_number("Zoë, the; first", "+86 139 1234 5678");
    d.emails = vec![("Work".into(), mail("zoe", "example.org"))];
    d.tag_ids = vec![tag.id.to_string()];
    d.note = Some("likes\ncommas, and; semicolons".into());
    block_on(f.svc.create(me, d)).unwrap();
    block_on(f.svc.create(me, draft("Adam"))).unwrap();
    let vcf = block_on(f.svc.export(me, ExportFormat::VCard)).unwrap();
    assert_eq!(vcf.matches("BEGIN:VCARD").count(), 2);
    assert!(vcf.find("FN:Adam").unwrap() < vcf.find("FN:Zo").unwrap());
    let csv = block_on(f.svc.export(me, ExportFormat::Csv)).unwrap();
    assert!(csv.starts_with("Name,Notes,Group Membership,"));
    assert!(csv.contains("\"Zoë, the; first\""));

    let g = fixture();
    let other = g.user(2);
    let report = block_on(g.svc.import_vcard(other, vcf.as_bytes())).unwrap();
    assert_eq!((report.created, report.skipped.len()), (2, 0));
    let back = block_on(g.svc.export(other, ExportFormat::VCard)).unwrap();
    assert_eq!(back, vcf);
}
