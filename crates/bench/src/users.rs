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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_users_file_reads_back_what_was_written() {
        let dir = std::env::temp_dir().join(format!("kith-bench-users-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("users.jsonl");
        let users: Vec<User> = (0..3)
            .map(|i| User {
                id: format!("{}", 4_503_599_627_370_497_u64 + i),
                token: format!("{i:064x}"),
                phone: format!("1390000000{i}"),
                password: "kith-bench-pw".into(),
            })
            .collect();
        save(&path, &users).unwrap();
        // Blank lines are skipped.
        std::fs::write(
            &path,
            format!("{}\n\n", std::fs::read_to_string(&path).unwrap()),
        )
        .unwrap();
        let back = load(&path).unwrap();
        assert_eq!(back.len(), 3);
        for (a, b) in users.iter().zip(&back) {
            assert_eq!(
                (&a.id, &a.token, &a.phone, &a.password),
                (&b.id, &b.token, &b.phone, &b.password)
            );
        }
        std::fs::write(&path, "{\"id\":\"1\"}\n").unwrap();
        assert!(load(&path).unwrap_err().to_string().contains("line 1"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
