//! Token adapters: RongCloud's `getToken` API and locally signed IM tokens, and Qiniu upload tokens.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use kith_domain::ports::{ImTokenIssuer, ImTokenRequest, Random, UploadToken, UploadTokenIssuer};
use kith_domain::{DomainError, DomainResult, Millis, UserId};
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};
use sha2::Sha256;

/// What a RongCloud client needs: the app's credentials, where the API is, how long to wait.
#[derive(Clone, PartialEq, Eq)]
pub struct RongCloudConfig {
    /// The app key (sent in clear as `App-Key`).
    pub app_key: String,
    /// The app secret (only ever part of the signature).
    pub app_secret: String,
    /// The API's base URL, e.g. `http://rongcloud-proxy.internal`; `/user/getToken.json` is
    /// appended.
    pub base_url: String,
    /// The longest wait for an answer, connection included.
    pub timeout: Duration,
}

impl std::fmt::Debug for RongCloudConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RongCloudConfig")
            .field("app_key", &self.app_key)
            .field("app_secret", &"***")
            .field("base_url", &crate::config::redact_url(&self.base_url))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// RongCloud's signature: the hex SHA-1 of secret, nonce and timestamp, concatenated.
pub fn rongcloud_signature(app_secret: &str, nonce: &str, timestamp: &str) -> String {
    let mut h = Sha1::new();
    h.update(app_secret.as_bytes());
    h.update(nonce.as_bytes());
    h.update(timestamp.as_bytes());
    hex::encode(h.finalize())
}

/// Gets IM tokens from RongCloud's server API (`POST /user/getToken.json`, form fields
/// `userId`, `name`, `portraitUri`, signed with the `App-Key`, `Nonce`, `Timestamp` and
/// `Signature` headers).
///
/// This build's HTTP client has no TLS: the base URL is `http://`, typically a local
/// TLS-terminating egress proxy in front of RongCloud.
#[derive(Clone)]
pub struct RongCloudIssuer {
    config: Arc<RongCloudConfig>,
    agent: ureq::Agent,
    random: Arc<dyn Random>,
}

impl std::fmt::Debug for RongCloudIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RongCloudIssuer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// RongCloud's answer to `getToken`.
#[derive(Debug, Deserialize)]
struct RongCloudAnswer {
    code: i64,
    token: Option<String>,
}

impl RongCloudIssuer {
    /// An issuer for the app in `config`; `random` draws the nonces.
    pub fn new(config: RongCloudConfig, random: Arc<dyn Random>) -> Self {
        let agent_config = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            // Statuses are mapped here, without echoing the provider's answer.
            .http_status_as_error(false)
            .build();
        Self {
            config: Arc::new(config),
            agent: ureq::Agent::new_with_config(agent_config),
            random,
        }
    }

    fn url(&self) -> String {
        format!(
            "{}/user/getToken.json",
            self.config.base_url.trim_end_matches('/')
        )
    }
}

#[async_trait]
impl ImTokenIssuer for RongCloudIssuer {
    async fn issue(&self, request: &ImTokenRequest) -> DomainResult<String> {
        let nonce = (self.random.next_u64() % 1_000_000_000).to_string();
        // RongCloud documents the timestamp in milliseconds since the epoch.
        let timestamp = request.now.to_string();
        let signature = rongcloud_signature(&self.config.app_secret, &nonce, &timestamp);
        let agent = self.agent.clone();
        let url = self.url();
        let app_key = self.config.app_key.clone();
        let fields = [
            ("userId", request.user_id.to_string()),
            ("name", request.name.clone()),
            ("portraitUri", request.portrait_uri.clone()),
        ];
        let outcome = tokio::task::spawn_blocking(move || {
            let mut response = agent
                .post(&url)
                .header("App-Key", &app_key)
                .header("Nonce", &nonce)
                .header("Timestamp", &timestamp)
                .header("Signature", &signature)
                .send_form(fields.iter().map(|(k, v)| (*k, v.as_str())))?;
            let status = response.status().as_u16();
            let answer = if (200..300).contains(&status) {
                response.body_mut().read_json::<RongCloudAnswer>().ok()
            } else {
                None
            };
            Ok::<_, ureq::Error>((status, answer))
        })
        .await
        .map_err(|e| DomainError::Internal(format!("rongcloud task failed: {e}")))?;
        match outcome {
            Ok((
                _,
                Some(RongCloudAnswer {
                    code: 200,
                    token: Some(token),
                }),
            )) if !token.is_empty() => {
                tracing::debug!(user = %request.user_id, "im token from rongcloud");
                Ok(token)
            }
            Ok((status, answer)) => {
                let code = answer.map(|a| a.code);
                tracing::warn!(status, ?code, "rongcloud refused getToken");
                Err(DomainError::Unavailable(format!(
                    "rongcloud answered http {status}, code {code:?}"
                )))
            }
            Err(e) => {
                // Transport errors name the host, never the secret (it is only in the hash).
                tracing::warn!(error = %e, "rongcloud unreachable");
                Err(DomainError::Unavailable(format!(
                    "rongcloud unreachable: {e}"
                )))
            }
        }
    }
}

/// The claims of a locally signed IM token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalImClaims {
    /// The user id, in decimal.
    pub sub: String,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
}

/// Signs IM tokens itself, for deployments whose own IM gateway checks them with the shared
/// key: `base64url(claims JSON) "." base64url(HMAC-SHA256(key, first part))`, unpadded.
/// [`LocalImIssuer::verify`] is the reference check.
#[derive(Clone)]
pub struct LocalImIssuer {
    key: Arc<[u8]>,
    ttl_secs: i64,
}

impl std::fmt::Debug for LocalImIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalImIssuer")
            .field("key", &"***")
            .field("ttl_secs", &self.ttl_secs)
            .finish()
    }
}

impl LocalImIssuer {
    /// An issuer signing with `key` (at least 16 bytes) tokens that live `ttl`.
    pub fn new(key: Vec<u8>, ttl: Duration) -> Result<Self, DomainError> {
        if key.len() < 16 {
            return Err(DomainError::Internal(
                "IM token key shorter than 16 bytes".into(),
            ));
        }
        Ok(Self {
            key: Arc::from(key),
            ttl_secs: i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX).max(1),
        })
    }

    /// The MAC state over `data`. `None` cannot happen (HMAC takes keys of any length), but is
    /// not worth a panic.
    fn mac(&self, data: &[u8]) -> Option<Hmac<Sha256>> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).ok()?;
        mac.update(data);
        Some(mac)
    }

    /// The token for `user` issued at `now`.
    pub fn sign(&self, user: UserId, now: Millis) -> DomainResult<String> {
        let iat = now.div_euclid(1000);
        let claims = LocalImClaims {
            sub: user.to_string(),
            iat,
            exp: iat.saturating_add(self.ttl_secs),
        };
        let json = serde_json::to_vec(&claims)
            .map_err(|e| DomainError::Internal(format!("im claims: {e}")))?;
        let payload = URL_SAFE_NO_PAD.encode(json);
        let mac = self
            .mac(payload.as_bytes())
            .ok_or_else(|| DomainError::Internal("im token key refused".into()))?
            .finalize()
            .into_bytes();
        Ok(format!("{payload}.{}", URL_SAFE_NO_PAD.encode(mac)))
    }

    /// The claims of a token this key signed that is still alive at `now`; `None` for anything
    /// else (bad shape, bad signature, expired).
    pub fn verify(&self, token: &str, now: Millis) -> Option<LocalImClaims> {
        let (payload, mac) = token.split_once('.')?;
        let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
        // verify_slice compares in constant time.
        self.mac(payload.as_bytes())?.verify_slice(&mac).ok()?;
        let claims: LocalImClaims =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        (claims.exp > now.div_euclid(1000)).then_some(claims)
    }
}

#[async_trait]
impl ImTokenIssuer for LocalImIssuer {
    async fn issue(&self, request: &ImTokenRequest) -> DomainResult<String> {
        self.sign(request.user_id, request.now)
    }
}

/// What a Qiniu upload token needs.
#[derive(Clone, PartialEq, Eq)]
pub struct QiniuConfig {
    /// The access key (part of the token, in clear).
    pub access_key: String,
    /// The secret key (only ever the HMAC key).
    pub secret_key: String,
    /// The bucket uploads go to (the put policy's `scope`).
    pub bucket: String,
    /// The domain uploaded files are served from, handed to clients as is.
    pub domain: String,
    /// How long a token is valid.
    pub ttl: Duration,
}

impl std::fmt::Debug for QiniuConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QiniuConfig")
            .field("access_key", &self.access_key)
            .field("secret_key", &"***")
            .field("bucket", &self.bucket)
            .field("domain", &self.domain)
            .field("ttl", &self.ttl)
            .finish()
    }
}

/// Qiniu's put policy, in the field order its documentation shows.
#[derive(Serialize)]
struct PutPolicy<'a> {
    scope: &'a str,
    deadline: i64,
}

/// Computes Qiniu upload tokens locally, by Qiniu's documented algorithm: the put policy
/// `{"scope":…,"deadline":…}` in URL-safe base64, signed with HMAC-SHA1 under the secret key:
/// `AccessKey ":" urlsafe_base64(sign) ":" encodedPutPolicy` (padded base64, as Qiniu's SDKs).
#[derive(Debug, Clone)]
pub struct QiniuIssuer {
    config: Arc<QiniuConfig>,
}

impl QiniuIssuer {
    /// An issuer for `config`.
    pub fn new(config: QiniuConfig) -> Self {
        Self {
            config: Arc::new(config),
        }
    }

    /// The token for uploads until `deadline` (seconds since the epoch).
    pub fn token(&self, deadline: i64) -> DomainResult<String> {
        let policy = serde_json::to_vec(&PutPolicy {
            scope: &self.config.bucket,
            deadline,
        })
        .map_err(|e| DomainError::Internal(format!("qiniu policy: {e}")))?;
        let encoded_policy = URL_SAFE.encode(policy);
        let mut mac = Hmac::<Sha1>::new_from_slice(self.config.secret_key.as_bytes())
            .map_err(|e| DomainError::Internal(format!("qiniu key: {e}")))?;
        mac.update(encoded_policy.as_bytes());
        let sign = URL_SAFE.encode(mac.finalize().into_bytes());
        Ok(format!(
            "{}:{sign}:{encoded_policy}",
            self.config.access_key
        ))
    }
}

#[async_trait]
impl UploadTokenIssuer for QiniuIssuer {
    async fn issue(&self, now: Millis) -> DomainResult<UploadToken> {
        let ttl = i64::try_from(self.config.ttl.as_secs()).unwrap_or(i64::MAX);
        let deadline = now.div_euclid(1000).saturating_add(ttl);
        Ok(UploadToken {
            target: "qiniu".into(),
            domain: self.config.domain.clone(),
            token: self.token(deadline)?,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::time::Instant;

    use kith_domain::memory::SeqRandom;

    use super::*;

    const NOW: Millis = 1_700_000_000_000;

    fn request() -> ImTokenRequest {
        ImTokenRequest {
            user_id: UserId::new(77).unwrap(),
            name: "Ann & Bo".into(),
            portrait_uri: "http://p/a.png?x=1".into(),
            now: NOW,
        }
    }

    // ------------------------------------------------------------ Qiniu

    #[test]
    fn qiniu_token_matches_an_independent_vector() {
        // Computed with Python's hmac, hashlib.sha1 and base64.urlsafe_b64encode over the
        // policy '{"scope":"my-bucket","deadline":1451491200}'.
        let q = QiniuIssuer::new(QiniuConfig {
            access_key: "MY_ACCESS_KEY".into(),
            secret_key: "MY_SECRET_KEY".into(),
            bucket: "my-bucket".into(),
            domain: "a.qiniu.example".into(),
            ttl: Duration::from_secs(3600),
        });
        assert_eq!(
            q.token(1_451_491_200).unwrap(),
            "MY_ACCESS_KEY:0K-i06lPC9Ew-TiiD2T4S4YLn3g=:\
             eyJzY29wZSI6Im15LWJ1Y2tldCIsImRlYWRsaW5lIjoxNDUxNDkxMjAwfQ=="
        );
    }

    #[tokio::test]
    async fn qiniu_issue_sets_the_deadline_from_the_lifetime() {
        let q = QiniuIssuer::new(QiniuConfig {
            access_key: "ak".into(),
            secret_key: "sk".into(),
            bucket: "b".into(),
            domain: "img.example".into(),
            ttl: Duration::from_secs(600),
        });
        let t = q.issue(NOW + 999).await.unwrap();
        assert_eq!(
            (t.target.as_str(), t.domain.as_str()),
            ("qiniu", "img.example")
        );
        assert_eq!(t.token, q.token(1_700_000_600).unwrap());
        let policy = t.token.rsplit(':').next().unwrap();
        let policy: serde_json::Value =
            serde_json::from_slice(&URL_SAFE.decode(policy).unwrap()).unwrap();
        assert_eq!(
            policy,
            serde_json::json!({"scope": "b", "deadline": 1_700_000_600})
        );
        assert!(!format!("{q:?}").contains("\"sk\""));
    }

    // ------------------------------------------------------------ local IM tokens

    #[tokio::test]
    async fn local_tokens_match_an_independent_vector_and_verify() {
        let issuer = LocalImIssuer::new(vec![b'k'; 32], Duration::from_secs(3600)).unwrap();
        let token = issuer.issue(&request()).await.unwrap();
        // Computed with Python's hmac/hashlib.sha256/base64.urlsafe_b64encode (padding stripped).
        assert_eq!(
            token,
            "eyJzdWIiOiI3NyIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjoxNzAwMDAzNjAwfQ.\
             zwHhc1Gqoq4_9jS7hoU09SGlf3fCpKYH8DxC3jxgxH4"
        );
        let claims = issuer.verify(&token, NOW + 3_599_999).unwrap();
        assert_eq!(claims.sub, "77");
        assert_eq!(issuer.verify(&token, NOW + 3_600_000), None, "expired");
        let other = LocalImIssuer::new(vec![b'x'; 32], Duration::from_secs(3600)).unwrap();
        assert_eq!(other.verify(&token, NOW), None, "another key");
        let (payload, mac) = token.split_once('.').unwrap();
        let forged = format!("{}.{mac}", payload.replace('3', "4"));
        assert_eq!(issuer.verify(&forged, NOW), None, "tampered claims");
        assert_eq!(issuer.verify("junk", NOW), None);
        assert!(LocalImIssuer::new(vec![1; 8], Duration::from_secs(1)).is_err());
        assert!(!format!("{issuer:?}").contains("kkkk"));
    }

    // ------------------------------------------------------------ RongCloud

    #[test]
    fn rongcloud_signature_matches_an_independent_vector() {
        // hashlib.sha1(b"secret-xyz" + b"12345" + b"1700000000000").hexdigest()
        assert_eq!(
            rongcloud_signature("secret-xyz", "12345", "1700000000000"),
            "ad2c3015330d78356a14517773a4815efdf06499"
        );
    }

    /// What the fake RongCloud saw.
    #[derive(Debug)]
    struct Seen {
        request_line: String,
        headers: Vec<(String, String)>,
        form: Vec<(String, String)>,
    }

    impl Seen {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    fn url_decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8(out).unwrap()
    }

    /// A one-request fake of RongCloud's getToken: checks the signature with `secret` and
    /// answers `{"code":200,"userId":..,"token":..}` when it holds, `{"code":1004}` otherwise.
    /// `delay` holds the answer back.
    fn fake_rongcloud(
        secret: &'static str,
        delay: Duration,
    ) -> (String, std::thread::JoinHandle<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut headers = Vec::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                let (name, value) = line.split_once(':').unwrap();
                let value = value.trim().to_owned();
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.parse().unwrap();
                }
                headers.push((name.to_owned(), value));
            }
            let mut body = vec![0u8; length];
            reader.read_exact(&mut body).unwrap();
            let form: Vec<(String, String)> = String::from_utf8(body)
                .unwrap()
                .split('&')
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap();
                    (url_decode(k), url_decode(v))
                })
                .collect();
            let seen = Seen {
                request_line,
                headers,
                form,
            };
            let expected = rongcloud_signature(
                secret,
                seen.header("Nonce").unwrap_or_default(),
                seen.header("Timestamp").unwrap_or_default(),
            );
            let user = seen
                .form
                .iter()
                .find(|(k, _)| k == "userId")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            let answer = if seen.header("Signature") == Some(expected.as_str()) {
                serde_json::json!({"code": 200, "userId": user, "token": format!("rc-token-{user}")})
            } else {
                serde_json::json!({"code": 1004, "errorMessage": "signature error"})
            }
            .to_string();
            std::thread::sleep(delay);
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{answer}",
                answer.len()
            );
            let _ = stream.flush();
            seen
        });
        (url, handle)
    }

    fn rongcloud(base_url: String, secret: &str, timeout: Duration) -> RongCloudIssuer {
        RongCloudIssuer::new(
            RongCloudConfig {
                app_key: "app-key-1".into(),
                app_secret: secret.into(),
                base_url,
                timeout,
            },
            Arc::new(SeqRandom::new(5)),
        )
    }

    #[tokio::test]
    async fn rongcloud_signs_and_posts_the_form() {
        let (url, server) = fake_rongcloud("s3cret", Duration::ZERO);
        let issuer = rongcloud(format!("{url}/"), "s3cret", Duration::from_secs(5));
        let token = issuer.issue(&request()).await.unwrap();
        assert_eq!(token, "rc-token-77");
        let seen = server.join().unwrap();
        assert!(
            seen.request_line
                .starts_with("POST /user/getToken.json HTTP/1.1"),
            "{seen:?}"
        );
        assert_eq!(seen.header("App-Key"), Some("app-key-1"));
        assert_eq!(seen.header("Timestamp"), Some("1700000000000"));
        assert!(seen
            .header("Content-Type")
            .unwrap()
            .starts_with("application/x-www-form-urlencoded"));
        assert_eq!(
            seen.form,
            vec![
                ("userId".to_owned(), "77".to_owned()),
                ("name".to_owned(), "Ann & Bo".to_owned()),
                ("portraitUri".to_owned(), "http://p/a.png?x=1".to_owned()),
            ]
        );
        assert!(!seen.headers.iter().any(|(_, v)| v.contains("s3cret")));
        assert!(!format!("{issuer:?}").contains("s3cret"));
    }

    #[tokio::test]
    async fn a_bad_signature_is_unavailable() {
        let (url, server) = fake_rongcloud("the-real-secret", Duration::ZERO);
        let issuer = rongcloud(url, "a-wrong-secret", Duration::from_secs(5));
        let err = issuer.issue(&request()).await.unwrap_err();
        assert!(matches!(err, DomainError::Unavailable(_)), "{err:?}");
        server.join().unwrap();
    }

    #[tokio::test]
    async fn a_slow_provider_is_unavailable_within_the_timeout() {
        let (url, server) = fake_rongcloud("s", Duration::from_secs(3));
        let issuer = rongcloud(url, "s", Duration::from_millis(300));
        let started = Instant::now();
        let err = issuer.issue(&request()).await.unwrap_err();
        let took = started.elapsed();
        assert!(matches!(err, DomainError::Unavailable(_)), "{err:?}");
        assert!(took < Duration::from_secs(2), "took {took:?}");
        server.join().unwrap();
    }

    #[tokio::test]
    async fn an_unreachable_or_failing_provider_is_unavailable() {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let issuer = rongcloud(format!("http://{addr}"), "s", Duration::from_secs(2));
        assert!(matches!(
            issuer.issue(&request()).await,
            Err(DomainError::Unavailable(_))
        ));

        // A provider answering 500 with a non-JSON body.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(
                b"HTTP/1.1 500 Oops\r\nContent-Length: 4\r\nConnection: close\r\n\r\noops",
            );
        });
        let issuer = rongcloud(url, "s", Duration::from_secs(2));
        assert!(matches!(
            issuer.issue(&request()).await,
            Err(DomainError::Unavailable(_))
        ));
        server.join().unwrap();
    }
}
