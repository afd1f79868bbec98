//! Load shedding: bounds the requests served at once and answers the excess 503 with `Retry-After`.
//!
//! Past the database pool's capacity extra concurrency only lengthens queues: every waiting
//! request holds memory and a blocking thread, and all of them get slower. [`Shed`] lets
//! `max_inflight` requests run; a bounded number more (by default four per slot) wait at most
//! `max_wait` for a slot (first come, first served), and the rest are answered at once, in their API's envelope, so
//! that a client backs off instead of timing out. Waiting is cheap (a parked future), and making
//! the excess wait before it is refused keeps clients that retry at once without honouring
//! `Retry-After` from turning the refusals themselves into the load. `/health` is never shed: it
//! reports the database, not the load.

use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::EitherBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header;
use actix_web::{Error, HttpResponse};
use kith_domain::DomainError;
use serde_json::json;
use tokio::sync::Semaphore;

/// Seconds a shed client is told to wait.
pub const RETRY_AFTER_SECS: u64 = 1;

/// Requests that may wait for a slot, per slot, unless configured.
const WAITING_PER_SLOT: usize = 4;

/// The shedding middleware; clones share one limit.
#[derive(Debug, Clone)]
pub struct Shed {
    limit: Arc<Limit>,
}

#[derive(Debug)]
struct Limit {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
    max_wait: Duration,
}

impl Shed {
    /// Serves at most `max_inflight` requests at once (at least 1); `max_waiting` more may wait
    /// up to `max_wait` for a slot (`None`: four per slot).
    pub fn new(max_inflight: usize, max_waiting: Option<usize>, max_wait: Duration) -> Self {
        let max_inflight = max_inflight.max(1);
        Self {
            limit: Arc::new(Limit {
                slots: Arc::new(Semaphore::new(max_inflight)),
                waiting: AtomicUsize::new(0),
                max_waiting: max_waiting
                    .unwrap_or_else(|| max_inflight.saturating_mul(WAITING_PER_SLOT)),
                max_wait,
            }),
        }
    }
}

impl Limit {
    /// A slot, or `None` when the request is to be shed.
    async fn admit(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Some(permit);
        }
        if self.max_wait.is_zero() {
            return None;
        }
        // Count first, so that a burst cannot overshoot the queue bound.
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        let got = tokio::time::timeout(self.max_wait, self.slots.clone().acquire_owned()).await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        got.ok().and_then(Result::ok)
    }
}

/// The 503 for a shed request, in the envelope of the API its path belongs to.
pub fn shed_response(path: &str) -> HttpResponse {
    let sealtalk = ["/user", "/friendship", "/group"]
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")));
    let body = if sealtalk {
        json!({"code": 503, "message": "server busy, try again later"})
    } else {
        json!({"error": crate::rest::error_object(&DomainError::Unavailable(String::new()))})
    };
    HttpResponse::ServiceUnavailable()
        .insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS.to_string()))
        .json(body)
}

impl<S, B> Transform<S, ServiceRequest> for Shed
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = ShedService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(ShedService {
            service: Rc::new(service),
            limit: self.limit.clone(),
        }))
    }
}

/// [`Shed`] around one worker's service.
#[derive(Debug)]
pub struct ShedService<S> {
    service: Rc<S>,
    limit: Arc<Limit>,
}

impl<S, B> Service<ServiceRequest> for ShedService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = self.service.clone();
        let limit = self.limit.clone();
        Box::pin(async move {
            if req.path() == "/health" {
                return service.call(req).await.map(|r| r.map_into_left_body());
            }
            match limit.admit().await {
                // The slot is held until the handler has produced its response.
                Some(_slot) => service.call(req).await.map(|r| r.map_into_left_body()),
                None => {
                    let res = shed_response(req.path());
                    Ok(req.into_response(res).map_into_right_body())
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use actix_web::{test, web, App};
    use tokio::sync::Notify;

    /// One slow request fills a one-slot limit: the next is shed at once (no wait) in its API's
    /// envelope, and once the slow one is done requests are served again.
    #[actix_web::test]
    async fn sheds_beyond_the_limit_and_recovers() {
        let gate = Arc::new(Notify::new());
        let g = gate.clone();
        let app = test::init_service(
            App::new()
                .wrap(Shed::new(1, None, Duration::ZERO))
                .route(
                    "/slow",
                    web::get().to(move || {
                        let g = g.clone();
                        async move {
                            g.notified().await;
                            HttpResponse::Ok().finish()
                        }
                    }),
                )
                .route("/user/x", web::get().to(HttpResponse::Ok))
                .route("/friends", web::get().to(HttpResponse::Ok))
                .route("/health", web::get().to(HttpResponse::Ok)),
        )
        .await;
        let slow = test::call_service(&app, test::TestRequest::get().uri("/slow").to_request());
        let others = async {
            // Let the slow request take the slot first.
            tokio::task::yield_now().await;
            let seal =
                test::call_service(&app, test::TestRequest::get().uri("/user/x").to_request())
                    .await;
            let rest =
                test::call_service(&app, test::TestRequest::get().uri("/friends").to_request())
                    .await;
            let health =
                test::call_service(&app, test::TestRequest::get().uri("/health").to_request())
                    .await;
            gate.notify_one();
            (seal, rest, health)
        };
        let (slow, (seal, rest, health)) = tokio::join!(slow, others);
        assert_eq!(slow.status(), 200);
        assert_eq!(health.status(), 200, "/health is never shed");
        assert_eq!(seal.status(), 503);
        assert_eq!(seal.headers().get(header::RETRY_AFTER).unwrap(), "1");
        let body: serde_json::Value = test::read_body_json(seal).await;
        assert_eq!(body["code"], 503);
        assert_eq!(rest.status(), 503);
        assert_eq!(rest.headers().get(header::RETRY_AFTER).unwrap(), "1");
        let body: serde_json::Value = test::read_body_json(rest).await;
        assert_eq!(body["error"]["code"], "unavailable");
        let again =
            test::call_service(&app, test::TestRequest::get().uri("/user/x").to_request()).await;
        assert_eq!(again.status(), 200);
    }

    /// A request over the limit waits for a slot that frees within the wait bound.
    #[actix_web::test]
    async fn a_short_wait_is_served() {
        let limit = Limit {
            slots: Arc::new(Semaphore::new(1)),
            waiting: AtomicUsize::new(0),
            max_waiting: 1,
            max_wait: Duration::from_secs(5),
        };
        let first = limit.admit().await.unwrap();
        let (second, ()) = tokio::join!(limit.admit(), async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(first);
        });
        assert!(second.is_some());
        // With the slot held and one request waiting, the queue (bound 1) is full: a further
        // request is refused at once; the waiter gets the slot when it frees.
        let held = second;
        let (waiter, ()) = tokio::join!(limit.admit(), async {
            tokio::task::yield_now().await;
            assert!(limit.admit().await.is_none(), "only one may wait");
            drop(held);
        });
        assert!(waiter.is_some());
    }
}
