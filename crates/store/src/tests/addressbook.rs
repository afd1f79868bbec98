//! Address book storage tests: revisions, ownership, tags, change records, search and races.

use kith_domain::addressbook::{
    AddressBookPorts, AddressBookService, ContactDraft, SearchParams, SearchResult,
};
use kith_domain::memory::{ManualClock, SeqRandom};

use super::*;
use crate::schema::{contact_digits, contact_tags, contact_terms, contacts};

fn service(store: &Store) -> AddressBookService {
    AddressBookService::new(AddressBookPorts {
        store: Arc::new(store.clone()),
        clock: Arc::new(ManualClock::new(NOW)),
        random: Arc::new(SeqRandom::new(rand::random())),
    })
}

async fn owner(store: &Store, n: i64) -> UserId {
    let p = phone(u32::try_from(n).unwrap());
    store.create_placeholder(uid(n), &p, NOW).await.unwrap()
}

fn draft(name: &str, numbers: &[&str]) -> ContactDraft {
    ContactDraft {
        name: name.into(),
        numbers: numbers
            .iter()
            .map(|n| ("Home".to_owned(), (*n).to_owned()))
            .collect(),
        ..ContactDraft::default()
    }
}

fn mail(local: &str, domain: &str) -> String {
    format!("{local}{}{domain}", '@')
}

async fn find(svc: &AddressBookService, me: UserId, keyword: &str) -> Vec<String> {
    let r = svc
        .search(
            me,
            SearchParams {
                keyword: Some(keyword.into()),
                items: Some(1000),
                ..SearchParams::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(r.total as usize, r.rows.len());
    r.rows
        .into_iter()
        .map(|c| c.fields.name().as_str().to_owned())
        .collect()
}

both_backends!(
    contacts_round_trip_with_revisions,
    |store: Store| async move {
        let svc = service(&store);
        let me = owner(&store, 1).await;
        let mut d = draft("Cai", &["17314141431", "+86 162-1313-1313"]);
        d.emails = vec![("Company".into(), mail("cai", "example.com"))];
        d.note = Some("met at\nthe fair".into());
        let tag = svc.create_tag(me, "Fair").await.unwrap();
        d.tag_ids = vec![tag.id.to_string()];
        let c = svc.create(me, d).await.unwrap();
        let id = c.id.to_string();
        assert_eq!(svc.get(me, &id).await.unwrap(), c);

        let stale = c.rev.to_string();
        let mut renamed = draft("Caiwei", &[]);
        renamed.tag_ids = vec![tag.id.to_string()];
        let c2 = svc.update(me, &id, Some(&stale), renamed).await.unwrap();
        assert_eq!(c2.rev.seq(), 2);
        assert_eq!(
            svc.update(me, &id, Some(&stale), draft("Lost", &[])).await,
            Err(DomainError::Conflict("_rev"))
        );
        assert_eq!(svc.get(me, &id).await.unwrap(), c2);
        // The old numbers left the digit index with the update.
        assert!(find(&svc, me, "1731414").await.is_empty());
        assert_eq!(
            svc.delete(me, &id, Some(&stale)).await,
            Err(DomainError::Conflict("_rev"))
        );
        svc.delete(me, &id, None).await.unwrap();
        assert_eq!(
            svc.get(me, &id).await,
            Err(DomainError::NotFound("contact"))
        );
        // The index tables have no foreign keys (migration 000005): the store deletes them.
        let left: (i64, i64, i64) = store
            .run(|c| {
                Ok((
                    contact_digits::table.count().get_result(c)?,
                    contact_terms::table.count().get_result(c)?,
                    contact_tags::table.count().get_result(c)?,
                ))
            })
            .await
            .unwrap();
        assert_eq!(left, (0, 0, 0), "index rows go with the contact");

        let log = changes_of(&store, me).await;
        let kinds: Vec<&str> = log.iter().map(|(_, k, _, _)| k.as_str()).collect();
        assert_eq!(kinds, ["tag", "contact", "contact", "contact"]);
        assert!(log[1..].iter().all(|(_, _, s, _)| *s == Some(c.id.get())));
        assert_eq!(version_of(&store, me).await, log.last().unwrap().0);
    }
);

both_backends!(
    another_owners_contact_is_not_found,
    |store: Store| async move {
        let svc = service(&store);
        let (a, b) = (owner(&store, 1).await, owner(&store, 2).await);
        let c = svc.create(a, draft("Mine", &["123"])).await.unwrap();
        let id = c.id.to_string();
        assert_eq!(svc.get(b, &id).await, Err(DomainError::NotFound("contact")));
        assert_eq!(
            svc.update(b, &id, None, draft("x", &[])).await,
            Err(DomainError::NotFound("contact"))
        );
        assert_eq!(
            svc.delete(b, &id, None).await,
            Err(DomainError::NotFound("contact"))
        );
        assert!(find(&svc, b, "Mine").await.is_empty());
        assert_eq!(svc.get(a, &id).await.unwrap(), c);
    }
);

both_backends!(
    tags_are_checked_and_deleting_untags,
    |store: Store| async move {
        let svc = service(&store);
        let (a, b) = (owner(&store, 1).await, owner(&store, 2).await);
        let theirs = svc.create_tag(b, "Theirs").await.unwrap();
        let family = svc.create_tag(a, "Family").await.unwrap();
        let work = svc.create_tag(a, "Work").await.unwrap();
        let mut d = draft("x", &[]);
        d.tag_ids = vec![family.id.to_string(), theirs.id.to_string()];
        assert!(matches!(
            svc.create(a, d.clone()).await,
            Err(DomainError::Invalid {
                field: "tag_ids",
                ..
            })
        ));
        d.tag_ids = vec![work.id.to_string(), family.id.to_string()];
        let c = svc.create(a, d).await.unwrap();
        assert_eq!(find(&svc, a, &family.id.to_string()).await, ["x"]);

        let renamed = svc
            .rename_tag(a, &work.id.to_string(), "Job")
            .await
            .unwrap();
        assert_eq!(renamed.modified_at, Some(NOW));
        assert_eq!(
            svc.rename_tag(b, &work.id.to_string(), "Mine now").await,
            Err(DomainError::NotFound("tag"))
        );
        let names: Vec<String> = svc
            .tags(a)
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name.as_str().to_owned())
            .collect();
        assert_eq!(names, ["Family", "Job"]);

        svc.delete_tag(a, &family.id.to_string()).await.unwrap();
        let after = svc.get(a, &c.id.to_string()).await.unwrap();
        assert_eq!(after.fields.tag_ids(), [work.id]);
        assert_eq!(after.rev.seq(), 2);
        assert!(find(&svc, a, &family.id.to_string()).await.is_empty());
        assert_eq!(
            svc.delete_tag(a, &family.id.to_string()).await,
            Err(DomainError::NotFound("tag"))
        );
    }
);

both_backends!(
    search_matches_names_digits_emails_and_tags,
    |store: Store| async move {
        let svc = service(&store);
        let me = owner(&store, 1).await;
        let mut haiyan = draft("haiyan", &["164732443242", "+86 154-7324-43242"]);
        haiyan.emails = vec![("Company".into(), mail("Hai.Yan", "Example.com"))];
        svc.create(me, haiyan).await.unwrap();
        svc.create(me, draft("Tom", &["16483244 3241"]))
            .await
            .unwrap();
        svc.create(me, draft("Alen", &["13912345678"]))
            .await
            .unwrap();
        svc.create(me, draft("100% real_name", &[])).await.unwrap();
        svc.create(me, draft("ÉLODIE", &[])).await.unwrap();

        assert_eq!(find(&svc, me, "154732").await, ["haiyan"]);
        assert_eq!(find(&svc, me, "16").await, ["haiyan", "Tom"]);
        assert_eq!(find(&svc, me, "+86 139 1234 5678").await, ["Alen"]);
        assert_eq!(find(&svc, me, "139-1234").await, ["Alen"]);
        assert_eq!(find(&svc, me, "YAN").await, ["haiyan"]);
        assert_eq!(find(&svc, me, "example.COM").await, ["haiyan"]);
        assert_eq!(find(&svc, me, "élo").await, ["ÉLODIE"]);
        assert_eq!(find(&svc, me, "%").await, ["100% real_name"]);
        assert_eq!(find(&svc, me, "_").await, ["100% real_name"]);
        assert!(find(&svc, me, "'").await.is_empty());
        assert!(find(&svc, me, "a%n").await.is_empty());
        assert_eq!(find(&svc, me, "").await.len(), 5);
        // Longer than the indexed terms: found by the first 24 characters, then checked in full.
        svc.create(me, draft("A Very Long Contact Name That Goes On", &[]))
            .await
            .unwrap();
        assert_eq!(
            find(&svc, me, "very long contact name that goes").await,
            ["A Very Long Contact Name That Goes On"]
        );
        assert!(find(&svc, me, "very long contact name that stops")
            .await
            .is_empty());
    }
);

async fn page(svc: &AddressBookService, me: UserId, params: SearchParams) -> SearchResult {
    svc.search(me, params).await.unwrap()
}

fn names(r: &SearchResult) -> Vec<String> {
    r.rows
        .iter()
        .map(|c| c.fields.name().as_str().to_owned())
        .collect()
}

both_backends!(
    paging_is_stable_and_cursors_survive_inserts,
    |store: Store| async move {
        let svc = service(&store);
        let me = owner(&store, 1).await;
        for name in ["bob", "Alice", "carol", "alice", "Dave", "erin", "Frank"] {
            svc.create(me, draft(name, &[])).await.unwrap();
        }
        let by_page = |page| SearchParams {
            items: Some(3),
            page: Some(page),
            ..SearchParams::default()
        };
        let p1 = page(&svc, me, by_page(1)).await;
        assert_eq!(p1.total, 7);
        assert_eq!(names(&p1)[2], "bob");
        assert_eq!(
            page(&svc, me, by_page(1)).await,
            p1,
            "the same query, the same page"
        );
        let p3 = page(&svc, me, by_page(3)).await;
        assert_eq!(names(&p3), ["Frank"]);
        assert!(page(&svc, me, by_page(4)).await.rows.is_empty());

        let cursor = p1.next_cursor.clone().unwrap();
        svc.create(me, draft("aaron", &[])).await.unwrap();
        svc.create(me, draft("zed", &[])).await.unwrap();
        let next = page(
            &svc,
            me,
            SearchParams {
                items: Some(3),
                cursor: Some(cursor),
                ..SearchParams::default()
            },
        )
        .await;
        assert_eq!(names(&next), ["carol", "Dave", "erin"]);
        assert_eq!(next.total, 9);
        assert!(next.next_cursor.is_some());
    }
);

both_backends!(
    one_of_racing_updates_with_a_revision_wins,
    |store: Store| async move {
        let svc = Arc::new(service(&store));
        let me = owner(&store, 1).await;
        let c = svc.create(me, draft("start", &["123"])).await.unwrap();
        let (id, rev) = (c.id.to_string(), c.rev.to_string());
        let results = race(&store, |_, i| {
            let (svc, id, rev) = (svc.clone(), id.clone(), rev.clone());
            async move {
                svc.update(me, &id, Some(&rev), draft(&format!("racer {i}"), &["456"]))
                    .await
            }
        })
        .await;
        let won = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(won, 1, "{results:?}");
        assert!(results
            .iter()
            .all(|r| r.is_ok() || *r == Err(DomainError::Conflict("_rev"))));
        let now = svc.get(me, &id).await.unwrap();
        assert_eq!(now.rev.seq(), 2);
        let rows: i64 = store
            .run(|c| Ok(contacts::table.count().get_result(c)?))
            .await
            .unwrap();
        assert_eq!(rows, 1);
    }
);

const VCF: &str = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Hai Yan\r\nTEL;TYPE=CELL:+86 139 1234 5678\r\nCATEGORIES:Family,Work\r\nEND:VCARD\r\n\
BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Same Number\r\nTEL:13912345678\r\nNOTE:merged\r\nEND:VCARD\r\n\
BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Other\r\nTEL:+1 555 0100 123\r\nCATEGORIES:Work\r\nEND:VCARD\r\n\
BEGIN:VCARD\r\nVERSION:4.0\r\nTEL:12345\r\nEND:VCARD\r\n";

both_backends!(
    import_merges_creates_tags_and_is_all_or_nothing,
    |store: Store| async move {
        let svc = service(&store);
        let me = owner(&store, 1).await;
        let family = svc.create_tag(me, "Family").await.unwrap();

        // A broken file writes nothing, not even the cards before the break.
        let broken = format!("{VCF}BEGIN:VCARD\r\nFN x\r\n");
        assert!(matches!(
            svc.import_vcard(me, broken.as_bytes()).await,
            Err(DomainError::Invalid { field: "vcard", .. })
        ));
        assert_eq!(find(&svc, me, "").await.len(), 0);
        assert_eq!(svc.tags(me).await.unwrap().len(), 1);

        let report = svc.import_vcard(me, VCF.as_bytes()).await.unwrap();
        assert_eq!((report.created, report.merged), (2, 1), "{report:?}");
        assert_eq!(report.skipped.len(), 1);
        assert_eq!(report.skipped[0].line, 19);
        assert_eq!(find(&svc, me, "").await, ["Hai Yan", "Other"]);
        let tags = svc.tags(me).await.unwrap();
        assert_eq!(tags.len(), 2);
        let work = tags.iter().find(|t| t.name.as_str() == "Work").unwrap();
        assert_eq!(
            find(&svc, me, &work.id.to_string()).await,
            ["Hai Yan", "Other"]
        );
        assert_eq!(find(&svc, me, &family.id.to_string()).await, ["Hai Yan"]);
        let hai = svc
            .search(
                me,
                SearchParams {
                    keyword: Some("hai".into()),
                    ..SearchParams::default()
                },
            )
            .await
            .unwrap()
            .rows
            .remove(0);
        assert_eq!(hai.fields.note(), Some("merged"));
        assert_eq!(hai.fields.numbers().len(), 1);

        let again = svc.import_vcard(me, VCF.as_bytes()).await.unwrap();
        assert_eq!((again.created, again.merged), (0, 3));
        let vcf = svc
            .export(me, kith_domain::addressbook::ExportFormat::VCard)
            .await
            .unwrap();
        assert_eq!(vcf.matches("BEGIN:VCARD").count(), 2);
        assert!(vcf.contains("CATEGORIES:Family,Work\r\n"), "{vcf}");
    }
);

both_backends!(
    only_registered_findable_users_are_linked,
    |store: Store| async move {
        use kith_domain::ports::AddressBookStore;
        let svc = service(&store);
        let me = registered(&store, &phone(1), 101, "me").await;
        let friend = registered(&store, &phone(2), 102, "friend").await;
        let hidden = registered(&store, &phone(3), 103, "hidden").await;
        store
            .update_profile(
                hidden,
                ProfileChange::Privacy(Privacy {
                    findable_by_phone: false,
                    ..Privacy::default()
                }),
                NOW,
            )
            .await
            .unwrap();
        owner(&store, 4).await; // a placeholder, not registered
        assert_eq!(store.owner_region(me).await.unwrap().as_deref(), Some("86"));
        let mut contacts = Vec::new();
        for n in [2u32, 3, 4] {
            let national = phone(n).national().to_owned();
            contacts.push(
                svc.create(me, draft(&format!("c{n}"), &[&national]))
                    .await
                    .unwrap(),
            );
        }
        let links = svc.links(me, &contacts).await.unwrap();
        assert_eq!(links.len(), 1);
        assert_eq!(links.get(&contacts[0].id), Some(&friend));
    }
);

/// Seeds `n` contacts for `owner` directly, 100 to a transaction (PostgreSQL slows down
/// when one transaction updates the same `users` row thousands of times).
async fn seed(store: &Store, owner: UserId, n: u32) {
    use kith_domain::addressbook::{Contact, ContactFields, ContactId};
    const FIRST: [&str; 8] = [
        "Li", "Wang", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao",
    ];
    for start in (0..n).step_by(100) {
        let end = (start + 100).min(n);
        store
            .run(move |conn| {
                crate::conn::write_tx(conn, |conn| {
                    for i in start..end {
                        let mut d = draft(
                            &format!("{} {i:06}", FIRST[i as usize % FIRST.len()]),
                            &[&format!("+86 139{:08}", i), &format!("010-{:08}", i * 7)],
                        );
                        d.emails = vec![("Work".into(), mail(&format!("user{i}"), "example.com"))];
                        let fields = ContactFields::new(d).map_err(StoreError::Rule)?;
                        let c = Contact::create(
                            ContactId::from_random(u64::from(i) * 7919 + 1),
                            fields,
                            NOW,
                        );
                        crate::addressbook::insert_new(conn, owner.get(), &c, true)?;
                    }
                    Ok(())
                })
            })
            .await
            .unwrap();
    }
}

/// Times searches over a 100,000-contact book. Run with
/// `cargo test -p kith-store --release --lib -- --ignored --nocapture search_at_100k`.
async fn search_at_100k(store: Store) {
    let svc = service(&store);
    let me = owner(&store, 1).await;
    let other = owner(&store, 2).await;
    let t = std::time::Instant::now();
    seed(&store, me, 100_000).await;
    seed(&store, other, 1_000).await;
    println!("[{}] seeded 100k in {:?}", store.backend(), t.elapsed());
    // First as loaded, then after what autovacuum (on by default) does by itself after a bulk
    // load: PostgreSQL plans from table statistics and needs the visibility map for index-only
    // counts; this machine's PostgreSQL runs with autovacuum off.
    for analysed in [false, true] {
        if analysed {
            let maintain = match store.backend() {
                "postgres" => "VACUUM ANALYZE",
                _ => "ANALYZE",
            };
            let t = std::time::Instant::now();
            store
                .run(move |c| Ok(diesel::sql_query(maintain).execute(c)?))
                .await
                .unwrap();
            println!("[{}] {maintain} took {:?}", store.backend(), t.elapsed());
        }
        measure_searches(&svc, &store, me, analysed).await;
    }
}

/// One round of the 100k searches, printed.
async fn measure_searches(svc: &AddressBookService, store: &Store, me: UserId, analysed: bool) {
    let stats = if analysed { "maintained" } else { "as loaded" };
    let mut cursor = None;
    for (label, keyword, page) in [
        ("no keyword, page 1", None, 1),
        ("no keyword, page 2500", None, 2500),
        ("digits 1390004", Some("1390004"), 1),
        ("digits 00042", Some("00042"), 1),
        ("name 'zhao 0000'", Some("zhao 0000"), 1),
        ("name 'li'", Some("li"), 1),
        ("email 'user4242@'", Some("user4242@"), 1),
        ("no match 'qqq'", Some("qqq"), 1),
    ] {
        for round in 0..2 {
            let t = std::time::Instant::now();
            let r = svc
                .search(
                    me,
                    SearchParams {
                        keyword: keyword.map(str::to_owned),
                        items: Some(20),
                        page: Some(page),
                        cursor: None,
                    },
                )
                .await
                .unwrap();
            if round == 1 {
                println!(
                    "[{}, {stats}] {label}: total {} rows {} in {:?}",
                    store.backend(),
                    r.total,
                    r.rows.len(),
                    t.elapsed()
                );
            }
            cursor = r.next_cursor.or(cursor);
        }
    }
    let t = std::time::Instant::now();
    let r = svc
        .search(
            me,
            SearchParams {
                items: Some(20),
                cursor,
                ..SearchParams::default()
            },
        )
        .await
        .unwrap();
    println!(
        "[{}, {stats}] cursor page: {} rows in {:?}",
        store.backend(),
        r.rows.len(),
        t.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement: seeds 100,000 contacts"]
async fn search_at_100k_sqlite() {
    let db = TestDb::sqlite();
    search_at_100k(db.store().clone()).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement: seeds 100,000 contacts"]
async fn search_at_100k_postgres() {
    let Some(db) = TestDb::postgres() else { return };
    search_at_100k(db.store().clone()).await;
}
