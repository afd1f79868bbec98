//! The `kith` command line: help, bad configuration, and `kith migrate`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn kith() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kith"));
    for (k, _) in std::env::vars() {
        if k.starts_with("KITH_") {
            c.env_remove(k);
        }
    }
    c
}

#[test]
fn help_documents_every_setting() {
    let out = kith().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for word in [
        "serve",
        "migrate",
        "KITH_BIND",
        "KITH_DATABASE_URL",
        "KITH_SMS",
        "KITH_SMS_OUTBOX",
        "KITH_LOG_FORMAT",
        "KITH_COOKIE_SECURE",
        "KITH_SESSION_IDLE_SECS",
        "KITH_BCRYPT_COST",
    ] {
        assert!(help.contains(word), "--help lacks {word}");
    }
}

#[test]
fn invalid_configuration_stops_start_up_with_a_clear_message() {
    let out = kith()
        .env("KITH_BCRYPT_COST", "4")
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("KITH_BCRYPT_COST"), "{err}");

    let out = kith()
        .env("KITH_DATABASE_URL", "mysql://x")
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("KITH_DATABASE_URL"));
}

#[test]
fn migrate_creates_the_database_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sub").join("kith.db");
    for _ in 0..2 {
        let out = kith()
            .env("KITH_DATABASE_URL", format!("sqlite://{}", db.display()))
            .env("KITH_LOG", "warn")
            .arg("migrate")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(db.exists());
}

#[test]
fn the_default_database_is_kith_db_in_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = kith()
        .current_dir(dir.path())
        .env("KITH_LOG", "warn")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("kith.db").exists());
}
