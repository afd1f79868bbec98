//! SMS gateways: the development log, a JSON-lines outbox file, and an HTTP webhook.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kith_domain::ports::{SmsGateway, SmsMessage};
use kith_domain::{DomainError, DomainResult, Millis};
use serde::Serialize;
use tokio::sync::Mutex;

use crate::config::SmsChoice;

/// How long the webhook gateway waits for the provider, connection included.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// The JSON shape written to the outbox and posted to webhooks.
#[derive(Debug, Serialize)]
struct Payload<'a> {
    region: &'a str,
    phone: &'a str,
    code: &'a str,
    purpose: &'static str,
    sent_at: Millis,
}

impl<'a> From<&'a SmsMessage> for Payload<'a> {
    fn from(m: &'a SmsMessage) -> Self {
        Self {
            region: m.phone.region(),
            phone: m.phone.e164(),
            code: &m.code,
            purpose: m.purpose.as_str(),
            sent_at: m.sent_at,
        }
    }
}

fn join_error(e: tokio::task::JoinError) -> DomainError {
    DomainError::Internal(format!("sms task failed: {e}"))
}

/// Development gateway: logs each message at INFO, with the phone masked and the code in a field
/// named `code`. The code is logged on purpose so a developer can complete a sign-up; never use
/// this gateway where logs are shared.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogGateway;

#[async_trait]
impl SmsGateway for LogGateway {
    async fn send(&self, message: &SmsMessage) -> DomainResult<()> {
        tracing::info!(
            phone = %message.phone.masked(),
            purpose = message.purpose.as_str(),
            code = %message.code,
            "sms (log gateway, development only)"
        );
        Ok(())
    }
}

/// Appends each message as one JSON line to a file, for tests and local tooling to read codes.
#[derive(Debug, Clone)]
pub struct OutboxGateway {
    path: Arc<PathBuf>,
    // Owned guard moved into the blocking task: even if the caller's future is dropped, the
    // lock is held until the write ends, so lines never interleave.
    lock: Arc<Mutex<()>>,
}

impl OutboxGateway {
    /// A gateway appending to `path`. The file is created on the first message if missing, and
    /// reopened for each message so that it may be truncated or removed between messages.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: Arc::new(path.into()),
            lock: Arc::new(Mutex::new(())),
        }
    }

    /// The file written to.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

#[async_trait]
impl SmsGateway for OutboxGateway {
    async fn send(&self, message: &SmsMessage) -> DomainResult<()> {
        let mut line = serde_json::to_vec(&Payload::from(message))
            .map_err(|e| DomainError::Internal(format!("sms payload: {e}")))?;
        line.push(b'\n');
        let guard = Arc::clone(&self.lock).lock_owned().await;
        let path = Arc::clone(&self.path);
        let written = tokio::task::spawn_blocking(move || {
            let _guard = guard;
            let mut file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path.as_path())?;
            // One write call per line keeps it whole even with other processes appending.
            file.write_all(&line)?;
            file.flush()
        })
        .await
        .map_err(join_error)?;
        written.map_err(|e| {
            tracing::warn!(path = %self.path.display(), error = %e, "sms outbox write failed");
            DomainError::Unavailable("sms outbox is not writable".into())
        })?;
        tracing::info!(phone = %message.phone.masked(), purpose = message.purpose.as_str(), "sms written to outbox");
        Ok(())
    }
}

/// POSTs each message as JSON to a provider's URL.
///
/// Needs a TLS-enabled `ureq` build for `https://` URLs.
#[derive(Clone)]
pub struct WebhookGateway {
    url: Arc<str>,
    agent: ureq::Agent,
}

impl std::fmt::Debug for WebhookGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Provider URLs often carry an API key.
        f.debug_struct("WebhookGateway")
            .field("url", &crate::config::redact_url(&self.url))
            .finish_non_exhaustive()
    }
}

impl WebhookGateway {
    /// A gateway posting to `url`, giving up after `timeout` (connect, send and answer together).
    pub fn new(url: impl Into<String>, timeout: Duration) -> Self {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            // Statuses are checked here, to map them without echoing the response.
            .http_status_as_error(false)
            .build();
        Self {
            url: Arc::from(url.into()),
            agent: ureq::Agent::new_with_config(config),
        }
    }
}

#[async_trait]
impl SmsGateway for WebhookGateway {
    async fn send(&self, message: &SmsMessage) -> DomainResult<()> {
        let body = serde_json::to_vec(&Payload::from(message))
            .map_err(|e| DomainError::Internal(format!("sms payload: {e}")))?;
        let agent = self.agent.clone();
        let url = Arc::clone(&self.url);
        let outcome = tokio::task::spawn_blocking(move || {
            agent
                .post(&*url)
                .header("Content-Type", "application/json")
                .send(&body[..])
                .map(|response| response.status().as_u16())
        })
        .await
        .map_err(join_error)?;
        match outcome {
            Ok(status) if (200..300).contains(&status) => {
                tracing::info!(phone = %message.phone.masked(), purpose = message.purpose.as_str(), status, "sms sent to provider");
                Ok(())
            }
            Ok(status) => {
                tracing::warn!(status, "sms provider refused the message");
                Err(DomainError::Unavailable(format!(
                    "sms provider answered {status}"
                )))
            }
            Err(e) => {
                // The error text may name the host but never the code; the URL's query (where
                // API keys live) is not part of ureq's transport errors.
                tracing::warn!(error = %e, "sms provider unreachable");
                Err(DomainError::Unavailable("sms provider unreachable".into()))
            }
        }
    }
}

/// Builds the configured gateway.
pub fn build(choice: &SmsChoice) -> Arc<dyn SmsGateway> {
    match choice {
        SmsChoice::Log => Arc::new(LogGateway),
        SmsChoice::Outbox(path) => Arc::new(OutboxGateway::new(path.clone())),
        SmsChoice::Webhook(url) => Arc::new(WebhookGateway::new(url.clone(), WEBHOOK_TIMEOUT)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::io::{BufRead, BufReader, Read};
    use std::net::TcpListener;

    use kith_domain::phone::Phone;
    use kith_domain::ports::SmsPurpose;

    use super::*;

    fn message(national: &str, code: &str, purpose: SmsPurpose, sent_at: Millis) -> SmsMessage {
        SmsMessage {
            phone: Phone::parse("86", national).unwrap(),
            code: code.into(),
            purpose,
            sent_at,
        }
    }

    #[tokio::test]
    async fn log_gateway_succeeds() {
        let m = message("13912345678", "123456", SmsPurpose::Register, 1);
        LogGateway.send(&m).await.unwrap();
    }

    #[tokio::test]
    async fn outbox_appends_one_json_line_per_message() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.jsonl");
        let gw = OutboxGateway::new(&path);
        gw.send(&message(
            "13912345678",
            "123456",
            SmsPurpose::Register,
            1_000,
        ))
        .await
        .unwrap();
        gw.send(&message(
            "13800000001",
            "654321",
            SmsPurpose::ResetPassword,
            2_000,
        ))
        .await
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(
            lines[0],
            serde_json::json!({"region": "86", "phone": "+8613912345678", "code": "123456",
                "purpose": "register", "sent_at": 1000})
        );
        assert_eq!(lines[1]["phone"], "+8613800000001");
        assert_eq!(lines[1]["code"], "654321");
        assert_eq!(lines[1]["purpose"], "reset_password");
        assert_eq!(lines[1]["sent_at"], 2000);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_outbox_lines_never_interleave() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.jsonl");
        let gw = OutboxGateway::new(&path);
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let gw = gw.clone();
                tokio::spawn(async move {
                    let m = message("13912345678", &format!("{i:06}"), SmsPurpose::Register, i);
                    gw.send(&m).await.unwrap();
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mut codes: Vec<String> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["code"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        codes.sort();
        assert_eq!(
            codes,
            (0..20).map(|i| format!("{i:06}")).collect::<Vec<_>>()
        );
    }

    #[tokio::test]
    async fn outbox_in_missing_directory_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let gw = OutboxGateway::new(dir.path().join("no/such/dir/outbox.jsonl"));
        let err = gw
            .send(&message("13912345678", "123456", SmsPurpose::Register, 1))
            .await
            .unwrap_err();
        assert!(matches!(err, DomainError::Unavailable(_)), "{err:?}");
    }

    /// Serves one request with `status`, handing back the request line, headers and body.
    fn one_shot_server(status: u16) -> (String, std::thread::JoinHandle<(String, String)>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/sms?key=k", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap();
                    }
                }
                head.push_str(&line);
            }
            let mut body = vec![0u8; length];
            reader.read_exact(&mut body).unwrap();
            let mut stream = stream;
            write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            stream.flush().unwrap();
            (head, String::from_utf8(body).unwrap())
        });
        (url, handle)
    }

    #[tokio::test]
    async fn webhook_posts_the_json() {
        let (url, server) = one_shot_server(200);
        let gw = WebhookGateway::new(url, Duration::from_secs(5));
        gw.send(&message(
            "13912345678",
            "123456",
            SmsPurpose::ResetPassword,
            7,
        ))
        .await
        .unwrap();
        let (head, body) = server.join().unwrap();
        assert!(head.starts_with("POST /sms?key=k HTTP/1.1"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{head}"
        );
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"region": "86", "phone": "+8613912345678", "code": "123456",
                "purpose": "reset_password", "sent_at": 7})
        );
    }

    #[tokio::test]
    async fn webhook_error_status_is_unavailable() {
        let (url, server) = one_shot_server(500);
        let gw = WebhookGateway::new(url, Duration::from_secs(5));
        let err = gw
            .send(&message("13912345678", "123456", SmsPurpose::Register, 7))
            .await
            .unwrap_err();
        server.join().unwrap();
        assert_eq!(
            err,
            DomainError::Unavailable("sms provider answered 500".into())
        );
        assert!(!err.to_string().contains("123456"));
    }

    #[tokio::test]
    async fn webhook_unreachable_is_unavailable() {
        // A port that was just free: connecting is refused at once.
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let gw = WebhookGateway::new(format!("http://{addr}/sms"), Duration::from_secs(2));
        let err = gw
            .send(&message("13912345678", "123456", SmsPurpose::Register, 7))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            DomainError::Unavailable("sms provider unreachable".into())
        );
    }

    #[test]
    fn build_picks_the_gateway() {
        assert!(format!("{:?}", build(&SmsChoice::Log)).contains("LogGateway"));
        assert!(
            format!("{:?}", build(&SmsChoice::Outbox("/tmp/x".into()))).contains("OutboxGateway")
        );
        assert!(format!(
            "{:?}",
            build(&SmsChoice::Webhook("http://127.0.0.1:1/".into()))
        )
        .contains("WebhookGateway"));
    }
}
