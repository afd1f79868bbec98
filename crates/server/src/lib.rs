//! The `kith` binary's library half: configuration, the adapters that need no database, and the
//! wiring that builds every adapter and runs the server.

pub mod app;
pub mod captcha;
pub mod config;
pub mod hasher;
pub mod sms;
pub mod system;
pub mod telemetry;
pub mod tokens;
