//! Kith's pure core: value types, the relationship state machine, account rules and port traits.
//!
//! This crate does no I/O. Adapters (the Diesel store, the Actix HTTP faces, SMS gateways, the
//! bcrypt hasher) implement the traits in [`ports`]; the services in [`account`] and
//! [`relationship`] hold every business rule and call those ports. Other Rust services may link
//! this crate directly; the `memory` feature adds in-memory ports for their tests.

pub mod account;
pub mod addressbook;
pub mod captcha;
pub mod dates;
pub mod error;
pub mod group;
pub mod ids;
pub mod phone;
pub mod ports;
pub mod ratelimit;
pub mod relationship;
pub mod secret;
pub mod social;
pub mod sync;
pub mod tokens;
pub mod values;

#[cfg(any(test, feature = "memory"))]
pub mod memory;

pub use error::{DomainError, DomainResult};
pub use ids::{Millis, UserId};
