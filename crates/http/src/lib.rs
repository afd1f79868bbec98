//! Kith's Actix adapter: one module per API document, each mapping HTTP to domain calls and
//! domain results to that document's envelope. No business rule lives here.

pub mod addressbook;
pub mod common;
pub mod contacts_v1;
pub mod friends;
pub mod friendship;
pub mod group;
pub mod openapi;
pub mod rendered;
pub mod rest;
pub mod sealtalk;
pub mod shed;
pub mod sync;
pub mod user;
pub mod user_tokens;

use std::sync::Arc;

use actix_web::web;
use kith_domain::account::AccountService;
use kith_domain::addressbook::AddressBookService;
use kith_domain::group::GroupService;
use kith_domain::social::RelationshipService;
use kith_domain::sync::SyncService;
use kith_domain::tokens::TokenService;

pub use common::{CookieSettings, MAX_BODY_BYTES};

/// Everything the handlers need, shared by every worker.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Sign-up, login, sessions and profiles.
    pub accounts: Arc<AccountService>,
    /// Friend requests, follows, blocks, remarks and lists.
    pub relationships: Arc<RelationshipService>,
    /// Address books (document 002): contacts, tags, search.
    pub addressbook: Arc<AddressBookService>,
    /// SealTalk groups (`/group/...`, `/user/groups`).
    pub groups: Arc<GroupService>,
    /// How the session cookie is written.
    pub cookie: CookieSettings,
    /// Incremental sync across devices (`/user/sync/{version}`).
    pub sync: Arc<SyncService>,
    /// IM and upload tokens (SealTalk's `get_token`, `get_image_token`).
    pub tokens: Arc<TokenService>,
    /// Friend-list answers kept with the shared rows they were written from.
    pub rendered: Arc<rendered::RenderedPages>,
    /// This server's public base URL without a trailing slash, for absolute URLs it hands out
    /// (captcha images); `None` builds them from each request's Host.
    pub public_url: Option<String>,
}

/// Mounts every API of Kith on `cfg`.
pub fn configure(state: AppState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::new(state))
            .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
            .service(sealtalk::get("/health", common::health))
            .configure(user::routes)
            .configure(friends::routes)
            .configure(contacts_v1::routes)
            .configure(friendship::routes)
            .configure(addressbook::routes)
            .configure(group::routes)
            .configure(openapi::routes)
            .default_service(web::to(common::not_found));
    }
}
