//! Captcha storage tests: round trips, expiry, purging, and single use under concurrent takers.

use kith_domain::captcha::CaptchaId;
use kith_domain::ports::{CaptchaRecord, CaptchaStore};

use super::*;
use crate::schema::captchas;

fn id(n: u8) -> CaptchaId {
    CaptchaId::parse(&format!("{n:032x}")).unwrap()
}

fn captcha(n: u8, expires_at: Millis) -> CaptchaRecord {
    CaptchaRecord {
        id: id(n),
        answer_hash: format!("hash-{n}"),
        png: vec![0x89, b'P', b'N', b'G', 0, 255, n],
        expires_at,
    }
}

async fn stored_ids(store: &Store) -> Vec<String> {
    store
        .run(|c| {
            Ok(captchas::table
                .select(captchas::id)
                .order(captchas::id)
                .load::<String>(c)?)
        })
        .await
        .unwrap()
}

both_backends!(a_captcha_round_trips_once, |store: Store| async move {
    store
        .put_captcha(captcha(1, NOW + 5 * MINUTE), NOW)
        .await
        .unwrap();
    assert_eq!(
        store.captcha_png(&id(1), NOW).await.unwrap(),
        Some(vec![0x89, b'P', b'N', b'G', 0, 255, 1]),
        "binary survives the round trip"
    );
    assert_eq!(store.captcha_png(&id(2), NOW).await.unwrap(), None);
    assert_eq!(store.take_captcha(&id(2), NOW).await.unwrap(), None);
    assert_eq!(
        store.take_captcha(&id(1), NOW).await.unwrap(),
        Some("hash-1".to_owned())
    );
    assert_eq!(store.take_captcha(&id(1), NOW).await.unwrap(), None);
    assert_eq!(store.captcha_png(&id(1), NOW).await.unwrap(), None);
    assert!(stored_ids(&store).await.is_empty());
});

both_backends!(
    expired_captchas_are_dead_and_purged,
    |store: Store| async move {
        let expiry = NOW + 5 * MINUTE;
        store.put_captcha(captcha(1, expiry), NOW).await.unwrap();
        store.put_captcha(captcha(2, expiry), NOW).await.unwrap();
        assert!(store
            .captcha_png(&id(1), expiry - 1)
            .await
            .unwrap()
            .is_some());
        assert_eq!(store.captcha_png(&id(1), expiry).await.unwrap(), None);
        // Taking an expired captcha answers nothing, and deletes it all the same.
        assert_eq!(store.take_captcha(&id(1), expiry).await.unwrap(), None);
        assert_eq!(stored_ids(&store).await, vec![id(2).to_string()]);
        // The next put purges every captcha expired by then.
        store
            .put_captcha(captcha(3, expiry + 5 * MINUTE), expiry)
            .await
            .unwrap();
        assert_eq!(stored_ids(&store).await, vec![id(3).to_string()]);
    }
);

both_backends!(a_duplicate_id_is_refused, |store: Store| async move {
    store
        .put_captcha(captcha(1, NOW + MINUTE), NOW)
        .await
        .unwrap();
    assert!(store
        .put_captcha(captcha(1, NOW + MINUTE), NOW)
        .await
        .is_err());
    assert_eq!(
        store.take_captcha(&id(1), NOW).await.unwrap(),
        Some("hash-1".to_owned())
    );
});

both_backends!(
    concurrent_takers_get_one_answer,
    |store: Store| async move {
        for round in 0..5u8 {
            store
                .put_captcha(captcha(round, NOW + MINUTE), NOW)
                .await
                .unwrap();
            let taken = race(&store, move |s, _| async move {
                s.take_captcha(&id(round), NOW).await.unwrap()
            })
            .await;
            let winners: Vec<_> = taken.iter().flatten().collect();
            assert_eq!(winners, vec![&format!("hash-{round}")], "{taken:?}");
        }
    }
);
