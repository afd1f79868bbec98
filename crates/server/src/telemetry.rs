//! Log setup: a tracing subscriber with an EnvFilter and a human or JSON formatter on stderr,
//! and the root span each HTTP request's lines carry.
//!
//! Logs go to stderr so that stdout stays free for output a subcommand prints. What is
//! logged is the callers' responsibility: passwords, SMS codes, tokens, cookies and database
//! credentials must never reach a log field (phones are logged masked, see `Phone::masked`).

use std::future::Future;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::Error as HttpError;
use actix_web::HttpMessage;
use thiserror::Error;
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RequestId, RootSpanBuilder};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer, Registry};

use crate::config::LogFormat;

/// Why logging could not be set up.
#[derive(Debug, Error)]
pub enum TelemetryError {
    /// The filter directives do not parse.
    #[error("KITH_LOG is not a valid log filter: {0}")]
    InvalidFilter(String),
    /// A global subscriber was installed already (for example by an earlier call). Harmless:
    /// the existing subscriber keeps logging.
    #[error("logging was already initialised")]
    AlreadyInitialised,
}

/// Builds the subscriber without installing it, so tests can use it in a scoped way.
fn subscriber<W>(
    format: LogFormat,
    filter: &str,
    writer: W,
) -> Result<impl tracing::Subscriber + Send + Sync + 'static, TelemetryError>
where
    W: for<'w> fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let filter =
        EnvFilter::try_new(filter).map_err(|e| TelemetryError::InvalidFilter(e.to_string()))?;
    let layer = match format {
        LogFormat::Pretty => fmt::layer()
            .with_writer(writer)
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(true)
            .boxed(),
        // The span list carries every enclosing span's fields, so the request id span set by
        // the HTTP layer appears on each line even under nested spans.
        LogFormat::Json => fmt::layer()
            .json()
            .with_writer(writer)
            .with_current_span(true)
            .with_span_list(true)
            .flatten_event(true)
            .boxed(),
    };
    Ok(Registry::default().with(layer.with_filter(filter)))
}

/// The root span of each HTTP request, which puts `request_id` on every line logged while the
/// request is served.
///
/// It is an ERROR-level span so that any filter that lets a line through (`KITH_LOG=warn`
/// included) also records the span: under tracing-actix-web's INFO-level default, warnings
/// logged during a request lost their request id. Being recorded costs about 4.5 % of a
/// `profile` request under `KITH_LOG=warn` (docs/benchmarks.md), so its fields are kept cheap:
/// the default builder also walked the router a second time for the route and parsed the
/// forwarding headers for the client address. The path is in `http.target`, and the client
/// address is the socket's peer (forwarding headers are the client's to forge).
#[derive(Debug)]
pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        // `tracing` evaluates field values only when the span is enabled.
        tracing::error_span!(
            "HTTP request",
            http.method = %request.method(),
            http.target = %request.uri().path_and_query().map_or("", |p| p.as_str()),
            http.client_ip = %request.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default(),
            http.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            request_id = %request
                .extensions()
                .get::<RequestId>()
                .map(ToString::to_string)
                .unwrap_or_default(),
            exception.message = tracing::field::Empty,
            exception.details = tracing::field::Empty,
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, HttpError>) {
        // The status and, for an error, its message; nothing to record on a disabled span.
        if !span.is_disabled() {
            DefaultRootSpanBuilder::on_request_end(span, outcome);
        }
    }
}

/// A request that takes longer than this to answer is logged as slow, with its request id and
/// path: the latency tail has a cause to find.
pub const SLOW_REQUEST: Duration = Duration::from_millis(500);

/// Middleware (`App::wrap_fn`, inside `TracingLogger`, so the warning carries the request's
/// span) that logs a request answered after more than [`SLOW_REQUEST`]. The start time lives
/// in the future, not in the request's extensions: nothing is allocated per request.
pub fn log_slow<S, B>(
    request: ServiceRequest,
    service: &S,
) -> impl Future<Output = Result<ServiceResponse<B>, HttpError>>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = HttpError>,
{
    let started = Instant::now();
    let response = service.call(request);
    async move {
        let response = response.await;
        let took = started.elapsed();
        if took > SLOW_REQUEST {
            tracing::warn!(elapsed_ms = took.as_millis(), "slow request");
        }
        response
    }
}

/// Installs the global subscriber. Call once at startup; a second call returns
/// [`TelemetryError::AlreadyInitialised`] instead of panicking.
pub fn init(format: LogFormat, filter: &str) -> Result<(), TelemetryError> {
    subscriber(format, filter, std::io::stderr)?
        .try_init()
        .map_err(|_| TelemetryError::AlreadyInitialised)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> fmt::MakeWriter<'w> for Capture {
        type Writer = Capture;
        fn make_writer(&'w self) -> Self::Writer {
            self.clone()
        }
    }

    fn log_through(format: LogFormat, filter: &str) -> String {
        let out = Capture::default();
        let sub = subscriber(format, filter, out.clone()).unwrap();
        tracing::subscriber::with_default(sub, || {
            let request = tracing::info_span!("request", request_id = "r-1");
            let _r = request.enter();
            let inner = tracing::info_span!("handler", route = "/login");
            let _i = inner.enter();
            tracing::info!(answer = 42, "inside");
            tracing::debug!("filtered out");
        });
        let bytes = out.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn json_lines_carry_the_request_span() {
        let text = log_through(LogFormat::Json, "info");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["message"], "inside");
        assert_eq!(v["answer"], 42);
        assert_eq!(v["level"], "INFO");
        assert!(lines[0].contains("\"request_id\":\"r-1\""), "{text}");
        assert_eq!(v["span"]["route"], "/login");
    }

    #[test]
    fn pretty_lines_are_filtered_text() {
        let text = log_through(LogFormat::Pretty, "info");
        assert!(
            text.contains("inside") && text.contains("request_id"),
            "{text}"
        );
        assert!(!text.contains("filtered out"), "{text}");
    }

    /// A line logged while a request is served carries its request id, under `warn` too.
    async fn log_a_request(filter: &str) -> String {
        use actix_web::{test as atest, web, App, HttpResponse};
        let out = Capture::default();
        let sub = subscriber(LogFormat::Json, filter, out.clone()).unwrap();
        let _guard = tracing::subscriber::set_default(sub);
        let app = atest::init_service(
            App::new()
                .wrap(tracing_actix_web::TracingLogger::<RequestSpan>::new())
                .route(
                    "/items/{id}",
                    web::get().to(|| async {
                        tracing::warn!("inside");
                        HttpResponse::Ok().finish()
                    }),
                ),
        )
        .await;
        let res = atest::call_service(
            &app,
            atest::TestRequest::get().uri("/items/7?x=1").to_request(),
        )
        .await;
        assert!(res.status().is_success());
        let bytes = out.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[actix_web::test]
    async fn request_lines_carry_the_request_id_at_any_level() {
        for filter in ["info", "warn"] {
            let text = log_a_request(filter).await;
            let line = text
                .lines()
                .find(|l| l.contains("inside"))
                .unwrap_or_else(|| panic!("no line under {filter}: {text}"));
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let span = &v["span"];
            let id = span["request_id"].as_str().unwrap_or_default();
            assert_eq!(id.len(), 36, "request id under {filter}: {line}");
            assert_eq!(span["http.target"], "/items/7?x=1", "{line}");
            assert_eq!(span["http.method"], "GET", "{line}");
        }
        assert_eq!(log_a_request("off").await, "");
    }

    /// Logs of one request to a handler that takes `wait`, through `log_slow`.
    async fn log_a_request_taking(wait: Duration) -> String {
        use actix_web::{test as atest, web, App, HttpResponse};
        let out = Capture::default();
        let sub = subscriber(LogFormat::Json, "warn", out.clone()).unwrap();
        let _guard = tracing::subscriber::set_default(sub);
        let app = atest::init_service(
            App::new()
                .wrap_fn(log_slow)
                .wrap(tracing_actix_web::TracingLogger::<RequestSpan>::new())
                .route(
                    "/slow",
                    web::get().to(move || async move {
                        actix_web::rt::time::sleep(wait).await;
                        HttpResponse::Ok().finish()
                    }),
                ),
        )
        .await;
        let res =
            atest::call_service(&app, atest::TestRequest::get().uri("/slow").to_request()).await;
        assert!(res.status().is_success());
        let bytes = out.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[actix_web::test]
    async fn a_slow_request_is_logged_with_its_request_id() {
        let text = log_a_request_taking(SLOW_REQUEST + Duration::from_millis(50)).await;
        let line = text
            .lines()
            .find(|l| l.contains("slow request"))
            .unwrap_or_else(|| panic!("no slow-request line: {text}"));
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(
            v["span"]["request_id"].as_str().unwrap_or_default().len(),
            36,
            "{line}"
        );
        assert_eq!(v["span"]["http.target"], "/slow", "{line}");
        // The JSON formatter writes a u128 as a string.
        let elapsed: u64 = v["elapsed_ms"]
            .as_str()
            .unwrap_or_default()
            .parse()
            .unwrap();
        assert!(elapsed > 500, "{line}");

        assert_eq!(log_a_request_taking(Duration::ZERO).await, "");
    }

    #[test]
    fn bad_filter_is_refused() {
        assert!(matches!(
            init(LogFormat::Json, "info,[[[="),
            Err(TelemetryError::InvalidFilter(_))
        ));
    }

    #[test]
    fn second_init_reports_instead_of_panicking() {
        // Whichever call runs first may install; the later one must report, not panic.
        let _ = init(LogFormat::Pretty, "warn");
        assert!(matches!(
            init(LogFormat::Json, "warn"),
            Err(TelemetryError::AlreadyInitialised)
        ));
    }
}
