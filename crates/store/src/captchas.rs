//! [`CaptchaStore`] on the database: image captchas, single use, purged once expired.

use async_trait::async_trait;
use diesel::prelude::*;
use kith_domain::captcha::CaptchaId;
use kith_domain::ports::{CaptchaRecord, CaptchaStore};
use kith_domain::{DomainResult, Millis};

use crate::conn::write_tx;
use crate::schema::captchas;
use crate::store::Store;

#[async_trait]
impl CaptchaStore for Store {
    async fn put_captcha(&self, captcha: CaptchaRecord, now: Millis) -> DomainResult<()> {
        self.serial_write(move |conn| {
            write_tx(conn, |conn| {
                // Purging on every put bounds the table by the issue rate times the lifetime,
                // without a background job.
                diesel::delete(captchas::table.filter(captchas::expires_at.le(now)))
                    .execute(conn)?;
                diesel::insert_into(captchas::table)
                    .values((
                        captchas::id.eq(captcha.id.as_str()),
                        captchas::answer_hash.eq(&captcha.answer_hash),
                        captchas::png.eq(&captcha.png),
                        captchas::expires_at.eq(captcha.expires_at),
                    ))
                    .execute(conn)?;
                Ok(())
            })
        })
        .await
    }

    async fn captcha_png(&self, id: &CaptchaId, now: Millis) -> DomainResult<Option<Vec<u8>>> {
        let id = id.as_str().to_owned();
        self.run(move |conn| {
            Ok(captchas::table
                .find(&id)
                .filter(captchas::expires_at.gt(now))
                .select(captchas::png)
                .first::<Vec<u8>>(conn)
                .optional()?)
        })
        .await
    }

    async fn take_captcha(&self, id: &CaptchaId, now: Millis) -> DomainResult<Option<String>> {
        let id = id.as_str().to_owned();
        self.serial_write(move |conn| {
            write_tx(conn, |conn| {
                let Some((hash, expires_at)) = captchas::table
                    .find(&id)
                    .select((captchas::answer_hash, captchas::expires_at))
                    .first::<(String, i64)>(conn)
                    .optional()?
                else {
                    return Ok(None);
                };
                // The delete decides races: a concurrent taker that read the same row deletes
                // nothing (PostgreSQL re-checks the row after the winner commits; SQLite's
                // BEGIN IMMEDIATE lets it read only after the winner is done).
                let deleted = diesel::delete(captchas::table.find(&id)).execute(conn)?;
                Ok((deleted == 1 && expires_at > now).then_some(hash))
            })
        })
        .await
    }
}
