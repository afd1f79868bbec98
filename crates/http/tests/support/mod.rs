//! Shared fixtures for the HTTP tests: the app state over in-memory ports.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::sync::Arc;

use actix_web::dev::{Service, ServiceResponse};
use actix_web::test;
use kith_domain::account::{AccountPolicy, AccountPorts, AccountService};
use kith_domain::addressbook::{AddressBookPorts, AddressBookService};
use kith_domain::memory::{
    ManualClock, MemoryAccountStore, MemoryAddressBookStore, MemoryRelationshipStore, MemorySms,
    PlainHasher, SeqRandom,
};
use kith_domain::phone::Phone;
use kith_domain::secret::ServerKey;
use kith_domain::social::{RelationshipPolicy, RelationshipPorts, RelationshipService};
use kith_http::{AppState, CookieSettings};
use serde_json::Value;

/// A fresh state, the SMS outbox (to read codes) and the clock (to move time).
pub fn state() -> (AppState, Arc<MemorySms>, Arc<ManualClock>) {
    let sms = Arc::new(MemorySms::default());
    let store = Arc::new(MemoryAccountStore::default());
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    // Shared with the group service, which reads friendships and blocks.
    let pairs = Arc::new(MemoryRelationshipStore::new(store.clone()));
    let relationships = RelationshipService::new(
        RelationshipPorts {
            store: pairs.clone(),
            accounts: store.clone(),
            clock: clock.clone(),
            random: Arc::new(SeqRandom::new(6)),
        },
        RelationshipPolicy::default(),
    );
    let addressbook = AddressBookService::new(AddressBookPorts {
        store: Arc::new(MemoryAddressBookStore::new(store.clone())),
        clock: clock.clone(),
        random: Arc::new(SeqRandom::new(7)),
    });
    let groups = kith_domain::group::GroupService::new(
        kith_domain::group::GroupPorts {
            store: Arc::new(kith_domain::memory::MemoryGroupStore::new(store.clone())),
            relationships: pairs,
            accounts: store.clone(),
            clock: clock.clone(),
            random: Arc::new(SeqRandom::new(8)),
        },
        kith_domain::group::GroupPolicy::default(),
    );
    // The token service reads profiles from the same accounts.
    let state_accounts_store = store.clone();
    let ports = AccountPorts {
        store,
        sms: sms.clone(),
        hasher: Arc::new(PlainHasher::new(12)),
        clock: clock.clone(),
        random: Arc::new(SeqRandom::new(5)),
    };
    let accounts = AccountService::new(
        ports,
        ServerKey::new(vec![3; 32]).unwrap(),
        AccountPolicy::default(),
    );
    (
        AppState {
            accounts: Arc::new(accounts),
            relationships: Arc::new(relationships),
            addressbook: Arc::new(addressbook),
            groups: Arc::new(groups),
            cookie: CookieSettings::default(),
            sync: Arc::new(kith_domain::sync::SyncService::new(
                kith_domain::sync::SyncPorts {
                    store: Arc::new(CannedSync::default()),
                    clock: clock.clone(),
                },
                kith_domain::sync::SyncPolicy::default(),
            )),
            tokens: Arc::new(kith_domain::tokens::TokenService::new(
                kith_domain::tokens::TokenPorts {
                    accounts: state_accounts_store,
                    im: Arc::new(kith_domain::memory::MemoryImTokens::default()),
                    upload: None,
                    clock: clock.clone(),
                },
            )),
            rendered: Arc::new(kith_http::rendered::RenderedPages::for_rows(1000)),
            public_url: None,
        },
        sms,
        clock,
    )
}

/// Signs `+86 139000000NN` up through the domain and returns (id, session token).
pub async fn sign_up(
    state: &AppState,
    sms: &MemorySms,
    n: u32,
    nickname: &str,
) -> (String, String) {
    let phone = Phone::parse("86", &format!("1390000{n:04}")).unwrap();
    state
        .accounts
        .send_code(&phone, &format!("ip{n}"), None)
        .await
        .unwrap();
    let code = sms.last_code(&phone).unwrap();
    let vt = state.accounts.verify_code(&phone, &code).await.unwrap();
    let li = state
        .accounts
        .register(
            kith_domain::values::Nickname::new(nickname).unwrap(),
            kith_domain::values::Password::new_secret("password", "kith-Secret1").unwrap(),
            vt.expose(),
        )
        .await
        .unwrap();
    (li.user_id.to_string(), li.token.expose().to_owned())
}

/// Status, JSON body (`Null` when empty) and `Link` header of one call.
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub link: Option<String>,
}

pub async fn call(
    app: &impl Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
    method: &str,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> Answer {
    let mut req = match method {
        "GET" => test::TestRequest::get(),
        "POST" => test::TestRequest::post(),
        "DELETE" => test::TestRequest::delete(),
        other => panic!("method {other}"),
    }
    .uri(path);
    if let Some(b) = body {
        req = req.set_json(b);
    }
    if let Some(t) = token {
        req = req.insert_header(("Authorization", format!("Bearer {t}")));
    }
    let res = test::call_service(app, req.to_request()).await;
    let status = res.status().as_u16();
    let link = res
        .headers()
        .get("link")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = test::read_body(res).await;
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    Answer { status, body, link }
}

/// A sync store that answers one canned read (there is no in-memory change log; the real one is
/// tested in kith-store and end to end) and records what it was asked.
#[derive(Debug, Default)]
pub struct CannedSync {
    pub read: std::sync::Mutex<kith_domain::sync::SyncRead>,
    pub asked: std::sync::Mutex<Vec<(kith_domain::UserId, kith_domain::sync::SyncVersion)>>,
}

type Answered<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = kith_domain::DomainResult<T>> + Send + 'a>>;

// Written out as `#[async_trait]` would expand it: kith-http does not depend on that crate.
impl kith_domain::sync::SyncStore for CannedSync {
    fn read_since<'life0, 'async_trait>(
        &'life0 self,
        owner: kith_domain::UserId,
        since: kith_domain::sync::SyncVersion,
    ) -> Answered<'async_trait, kith_domain::sync::SyncRead>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        self.asked.lock().unwrap().push((owner, since));
        let read = self.read.lock().unwrap().clone();
        Box::pin(std::future::ready(Ok(read)))
    }

    fn compact<'life0, 'async_trait>(
        &'life0 self,
        _before: kith_domain::Millis,
    ) -> Answered<'async_trait, kith_domain::sync::Compacted>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(std::future::ready(Ok(
            kith_domain::sync::Compacted::default(),
        )))
    }
}
