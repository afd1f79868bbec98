//! The seeded users file: one JSON line per user, written by `seed` and read by `run`.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::BoxError;

/// One seeded user, with a live session token and the credentials to log in again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    /// The user id as the SealTalk API writes it (a decimal string).
    pub id: String,
    /// A session token, sent as `Authorization: Bearer`.
    pub token: String,
    /// The national number, without the region.
    pub phone: String,
    /// The password set at sign-up.
    pub password: String,
}

/// Reads a users file; blank lines are skipped.
pub fn load(path: &Path) -> Result<Vec<User>, BoxError> {
    let file = std::fs::File::open(path)
        .map_err(|e| format!("cannot open users file {}: {e}", path.display()))?;
    let mut users = Vec::new();
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let user: User = serde_json::from_str(&line)
            .map_err(|e| format!("{} line {}: {e}", path.display(), n + 1))?;
        users.push(user);
    }
    Ok(users)
}

/// Writes a users file, replacing any previous one.
pub fn save(path: &Path, users: &[User]) -> Result<(), BoxError> {
    let file = std::fs::File::create(path)
        .map_err(|e| format!("cannot create users file {}: {e}", path.display()))?;
    let mut out = BufWriter::new(file);
    for user in users {
        serde_json::to_writer(&mut out, user)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}
