//! Tokens for services beside Kith: the IM token (SealTalk's `get_token`) and the cloud-storage upload token (`get_image_token`).

use std::sync::Arc;

use crate::account::Caller;
use crate::error::{DomainError, DomainResult};
use crate::ids::UserId;
use crate::ports::{
    AccountStore, Clock, ImTokenIssuer, ImTokenRequest, UploadToken, UploadTokenIssuer,
};

/// What [`DomainError::NotConfigured`] names when no upload storage is configured.
pub const UPLOAD_STORAGE: &str = "image upload storage";

/// The ports the token service drives.
#[derive(Debug, Clone)]
pub struct TokenPorts {
    /// Where the caller's profile (name and portrait for the IM service) is read.
    pub accounts: Arc<dyn AccountStore>,
    /// The IM token issuer.
    pub im: Arc<dyn ImTokenIssuer>,
    /// The upload token issuer; `None` when the deployment has no upload storage.
    pub upload: Option<Arc<dyn UploadTokenIssuer>>,
    /// Time.
    pub clock: Arc<dyn Clock>,
}

/// An IM token for one user.
#[derive(Clone, PartialEq, Eq)]
pub struct ImToken {
    /// The user it was issued for.
    pub user_id: UserId,
    /// The token.
    pub token: String,
}

impl std::fmt::Debug for ImToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImToken")
            .field("user_id", &self.user_id)
            .field("token", &"***")
            .finish()
    }
}

/// Hands logged-in users their IM and upload tokens.
#[derive(Debug)]
pub struct TokenService {
    ports: TokenPorts,
}

impl TokenService {
    /// Builds the service.
    pub fn new(ports: TokenPorts) -> Self {
        Self { ports }
    }

    /// An IM token for the caller, issued with their current nickname and portrait.
    ///
    /// Errors: [`DomainError::Unauthenticated`] if the account is gone;
    /// [`DomainError::Unavailable`] if the provider fails or is too slow.
    pub async fn im_token(&self, caller: &Caller) -> DomainResult<ImToken> {
        let user = self
            .ports
            .accounts
            .get_user(caller.user_id)
            .await?
            .filter(|u| u.registered)
            .ok_or(DomainError::Unauthenticated)?;
        let token = self
            .ports
            .im
            .issue(&ImTokenRequest {
                user_id: user.id,
                name: user.nickname,
                portrait_uri: user.portrait_uri,
                now: self.ports.clock.now(),
            })
            .await?;
        Ok(ImToken {
            user_id: user.id,
            token,
        })
    }

    /// An upload token for the caller.
    ///
    /// Errors: [`DomainError::NotConfigured`] with [`UPLOAD_STORAGE`] when the deployment
    /// has no upload storage.
    pub async fn upload_token(&self, _caller: &Caller) -> DomainResult<UploadToken> {
        let issuer = self
            .ports
            .upload
            .as_ref()
            .ok_or(DomainError::NotConfigured(UPLOAD_STORAGE))?;
        issuer.issue(self.ports.clock.now()).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use futures_executor::block_on;

    use super::*;
    use crate::memory::{ManualClock, MemoryAccountStore, MemoryImTokens, MemoryUploadTokens};
    use crate::phone::Phone;
    use crate::ports::ProfileChange;

    const T0: i64 = 1_700_000_000_000;

    fn caller(user_id: UserId) -> Caller {
        Caller {
            user_id,
            session_hash: "h".into(),
        }
    }

    fn service(
        upload: Option<Arc<dyn UploadTokenIssuer>>,
    ) -> (TokenService, Arc<MemoryAccountStore>, Arc<MemoryImTokens>) {
        let accounts = Arc::new(MemoryAccountStore::default());
        let im = Arc::new(MemoryImTokens::default());
        let svc = TokenService::new(TokenPorts {
            accounts: accounts.clone(),
            im: im.clone(),
            upload,
            clock: Arc::new(ManualClock::new(T0)),
        });
        (svc, accounts, im)
    }

    #[test]
    fn the_im_token_carries_the_current_profile() {
        let (svc, accounts, im) = service(None);
        let id = UserId::new(77).unwrap();
        let phone = Phone::from_e164("+8613900000001").unwrap();
        accounts.add_user(id, &phone, "Ann", T0).unwrap();
        block_on(accounts.update_profile(
            id,
            ProfileChange::PortraitUri("https://p/a.png".into()),
            T0,
        ))
        .unwrap();
        let t = block_on(svc.im_token(&caller(id))).unwrap();
        assert_eq!(t.user_id, id);
        let asked = im.requests();
        assert_eq!(
            asked,
            vec![ImTokenRequest {
                user_id: id,
                name: "Ann".into(),
                portrait_uri: "https://p/a.png".into(),
                now: T0,
            }]
        );
        assert_eq!(t.token, format!("im-token-{}-1", id));
        assert!(!format!("{t:?}").contains(&t.token));
    }

    #[test]
    fn a_failing_provider_is_unavailable_and_a_ghost_is_unauthenticated() {
        let (svc, accounts, im) = service(None);
        let id = UserId::new(78).unwrap();
        let phone = Phone::from_e164("+8613900000002").unwrap();
        accounts.add_user(id, &phone, "Bo", T0).unwrap();
        im.set_failing(true);
        assert!(matches!(
            block_on(svc.im_token(&caller(id))),
            Err(DomainError::Unavailable(_))
        ));
        assert_eq!(
            block_on(svc.im_token(&caller(UserId::new(999).unwrap()))).unwrap_err(),
            DomainError::Unauthenticated
        );
    }

    #[test]
    fn upload_tokens_need_a_configured_issuer() {
        let (svc, _, _) = service(None);
        let me = caller(UserId::new(1).unwrap());
        assert_eq!(
            block_on(svc.upload_token(&me)).unwrap_err(),
            DomainError::NotConfigured(UPLOAD_STORAGE)
        );
        let (svc, _, _) = service(Some(Arc::new(MemoryUploadTokens)));
        let t = block_on(svc.upload_token(&me)).unwrap();
        assert_eq!(t.target, "memory");
        assert_eq!(t.token, format!("upload-{T0}"));
    }
}
