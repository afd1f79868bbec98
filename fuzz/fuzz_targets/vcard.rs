//! The vCard parser of the address book import: arbitrary bytes never panic, and every card the
//! import would keep survives export and re-import unchanged (parse → write → parse).
#![no_main]

use kith_domain::addressbook::vcard::{self, Card, CardOut};
use kith_domain::addressbook::{ContactDraft, ContactFields, TagName, TAGS_MAX};
use libfuzzer_sys::fuzz_target;

/// What the import keeps of a card, or `None` when it would skip it (as `import_vcard` does).
fn kept(card: &Card) -> Option<(ContactFields, Vec<TagName>)> {
    let fields = ContactFields::new(ContactDraft {
        name: card.name.clone().unwrap_or_default(),
        numbers: card.numbers.clone(),
        emails: card.emails.clone(),
        tag_ids: Vec::new(),
        note: card.note.clone(),
    })
    .ok()?;
    if card.categories.len() > TAGS_MAX {
        return None;
    }
    let tags = card
        .categories
        .iter()
        .map(|c| TagName::new(c.clone()))
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    Some((fields, tags))
}

/// The card the export writes for a kept contact (as `card_out` does).
fn out<'a>(f: &'a ContactFields, tags: &'a [TagName]) -> CardOut<'a> {
    CardOut {
        name: f.name().as_str(),
        numbers: f.numbers().iter().map(|n| (n.kind(), n.number())).collect(),
        emails: f.emails().iter().map(|e| (e.kind(), e.email())).collect(),
        categories: tags.iter().map(TagName::as_str).collect(),
        note: f.note(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(cards) = vcard::parse(data) else {
        return;
    };
    assert!(cards.len() <= vcard::CARDS_MAX);
    let kept: Vec<_> = cards.iter().filter_map(kept).collect();
    let outs: Vec<CardOut<'_>> = kept.iter().map(|(f, t)| out(f, t)).collect();
    let written = vcard::write(&outs);
    let again = match vcard::parse(written.as_bytes()) {
        Ok(again) => again,
        Err(e) => panic!("export does not re-import: {e}\n{written}"),
    };
    assert_eq!(again.len(), kept.len(), "card count changed\n{written}");
    for ((fields, tags), card) in kept.iter().zip(&again) {
        let Some((f2, t2)) = self::kept(card) else {
            panic!("re-imported card is refused: {card:?}\n{written}");
        };
        assert_eq!(
            (fields, tags),
            (&f2, &t2),
            "round trip changed the card\n{written}"
        );
    }
    // The CSV export of the same cards must not panic either.
    let _ = vcard::write_csv(&outs);
});
