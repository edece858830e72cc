//! Prometheus metrics on an address of their own (`--metrics ADDR`, off by
//! default): the stored jobs by state, the queue and the run slots, how long jobs
//! ran, the transcript bytes they wrote, and every RPC by method and status code
//! with its latency. `GET /metrics` answers in the OpenMetrics text format.
//!
//! The counts come from the manager (`load`, `count_by_state`) when scraped; the
//! job figures from its `ended_jobs` stream; the RPC figures from `Measured`, which
//! wraps the service.

use std::{
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use anyhow::Context as _;
use http_body_util::Full;
use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use tonic::{body::Body, server::NamedService};
use tower::Service;

use crate::{job::JobState, manager::JobManager};

type Labels = Vec<(&'static str, String)>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

/// How long jobs run: from 1 s to about 4.5 hours.
fn job_buckets() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        1.0, 2.0, 15,
    ))
}

/// How long an RPC takes until its response starts: from 50 µs to about 3 s.
fn rpc_buckets() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.000_05, 3.0, 11,
    ))
}

pub struct Metrics {
    registry: Registry,
    jobs: Family<Labels, Gauge>,
    queued: Gauge,
    running: Gauge,
    job_seconds: Histograms,
    output_bytes: Counter,
    rpcs: Family<Labels, Counter>,
    rpc_seconds: Histograms,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::with_prefix("codex_jobs");
        // Families and metrics share their state with their clones: the registry
        // holds one, the struct the other.
        let jobs = Family::<Labels, Gauge>::default();
        let queued = Gauge::default();
        let running = Gauge::default();
        let job_seconds: Histograms = Family::new_with_constructor(job_buckets);
        let output_bytes = Counter::default();
        let rpcs = Family::<Labels, Counter>::default();
        let rpc_seconds: Histograms = Family::new_with_constructor(rpc_buckets);
        registry.register("jobs", "Stored jobs, by state", jobs.clone());
        registry.register("queue_depth", "Jobs waiting for a run slot", queued.clone());
        registry.register(
            "running",
            "Jobs running under their runners",
            running.clone(),
        );
        registry.register(
            "job_duration_seconds",
            "How long jobs ran, from start to end, by the state they ended in",
            job_seconds.clone(),
        );
        registry.register(
            "output_bytes",
            "Transcript bytes written by the jobs that ended",
            output_bytes.clone(),
        );
        registry.register(
            "rpc_requests",
            "RPCs answered, by method and gRPC status code",
            rpcs.clone(),
        );
        registry.register(
            "rpc_duration_seconds",
            "How long RPCs took until their response began, by method",
            rpc_seconds.clone(),
        );
        Metrics {
            registry,
            jobs,
            queued,
            running,
            job_seconds,
            output_bytes,
            rpcs,
            rpc_seconds,
        }
    }
}

impl Metrics {
    /// Counts each job that ends from now on, for as long as the manager runs.
    fn count_ended_jobs(self: Arc<Self>, manager: &JobManager) {
        let mut ended = manager.ended_jobs();
        tokio::spawn(async move {
            loop {
                match ended.recv().await {
                    Ok(job) => {
                        if let (Some(started), Some(finished)) = (job.started_at, job.finished_at) {
                            let seconds = (finished - started).max(0) as f64 / 1000.0;
                            self.job_seconds
                                .get_or_create(&vec![("state", job.state.name().to_string())])
                                .observe(seconds);
                        }
                        self.output_bytes.inc_by(job.output_size);
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!("metrics missed {missed} jobs that ended");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }

    /// The text a scrape gets: the counts as they are now, then everything else.
    async fn scrape(&self, manager: &Arc<JobManager>) -> anyhow::Result<String> {
        self.running.set(manager.running() as i64);
        // Every state, so a state no job is in reads 0 rather than vanishing.
        let counts = manager.count_by_state().await?;
        let queued = counts
            .iter()
            .find(|(state, _)| *state == JobState::Queued)
            .map_or(0, |(_, count)| *count);
        self.queued.set(queued as i64);
        for state in [
            JobState::Queued,
            JobState::Running,
            JobState::Succeeded,
            JobState::Failed,
            JobState::Cancelled,
        ] {
            let count = counts
                .iter()
                .find(|(counted, _)| *counted == state)
                .map_or(0, |(_, count)| *count);
            self.jobs
                .get_or_create(&vec![("state", state.name().to_string())])
                .set(count as i64);
        }
        let mut text = String::new();
        encode(&mut text, &self.registry)?;
        Ok(text)
    }

    /// One RPC that was answered.
    fn rpc(&self, method: String, code: String, started: Instant) {
        self.rpc_seconds
            .get_or_create(&vec![("method", method.clone())])
            .observe(started.elapsed().as_secs_f64());
        self.rpcs
            .get_or_create(&vec![("method", method), ("code", code)])
            .inc();
    }
}

/// Serves `GET /metrics` on `addr` until the process ends; returns the address it
/// bound (port 0 picks a free port).
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    manager: Arc<JobManager>,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for --metrics"))?;
    let bound = listener.local_addr()?;
    metrics.clone().count_ended_jobs(&manager);
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of descriptors, say: let some close before trying again.
                    tracing::warn!("metrics: cannot accept a connection: {err}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let (metrics, manager) = (metrics.clone(), manager.clone());
            let answer = hyper::service::service_fn(move |request| {
                let (metrics, manager) = (metrics.clone(), manager.clone());
                async move {
                    Ok::<_, std::convert::Infallible>(respond(request, &metrics, &manager).await)
                }
            });
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, answer)
                    .await;
            });
        }
    });
    Ok(bound)
}

async fn respond(
    request: http::Request<hyper::body::Incoming>,
    metrics: &Metrics,
    manager: &Arc<JobManager>,
) -> http::Response<Full<bytes::Bytes>> {
    let reply = |status: u16, content_type: &str, body: String| {
        http::Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, content_type)
            .body(Full::new(bytes::Bytes::from(body)))
            .expect("a response of static parts builds")
    };
    if request.method() != http::Method::GET || request.uri().path() != "/metrics" {
        return reply(404, "text/plain", "GET /metrics\n".into());
    }
    match metrics.scrape(manager).await {
        Ok(text) => reply(
            200,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            text,
        ),
        Err(err) => {
            tracing::warn!("metrics: {err}");
            reply(503, "text/plain", format!("{err}\n"))
        }
    }
}

/// Wraps the job service: counts each RPC by method and status, and times it until
/// its response begins.
#[derive(Clone)]
pub struct Measured<S> {
    pub inner: S,
    pub metrics: Option<Arc<Metrics>>,
}

impl<S: NamedService> NamedService for Measured<S> {
    const NAME: &'static str = S::NAME;
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The service's methods, as they end its paths.
const METHODS: [&str; 8] = [
    "Start", "Poll", "Cancel", "List", "Follow", "Watch", "Delete", "Prune",
];

impl<S, B> Service<http::Request<Body>> for Measured<S>
where
    S: Service<http::Request<Body>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = http::Response<B>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        // The clone that was made ready is the one to call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let Some(metrics) = self.metrics.clone() else {
            return Box::pin(inner.call(request));
        };
        // Only the service's own methods name a series: a caller cannot make more.
        let method = request.uri().path().rsplit('/').next().unwrap_or_default();
        let method = METHODS
            .iter()
            .find(|known| **known == method)
            .map_or("unknown", |known| *known)
            .to_string();
        let started = Instant::now();
        Box::pin(async move {
            let response = inner.call(request).await?;
            // An error is sent at once, in the headers; a call that goes well sends
            // its status in the trailers, after the last message (so a stream that
            // fails after it began counts as OK).
            let code = response
                .headers()
                .get("grpc-status")
                .and_then(|value| value.to_str().ok()?.parse::<i32>().ok())
                .map_or(tonic::Code::Ok, tonic::Code::from);
            metrics.rpc(method, code_name(code), started);
            Ok(response)
        })
    }
}

/// A status code as gRPC names it: `OK`, `NOT_FOUND`, ...
fn code_name(code: tonic::Code) -> String {
    let name = format!("{code:?}");
    let mut upper = String::new();
    for (index, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && index > 0 {
            upper.push('_');
        }
        upper.push(c.to_ascii_uppercase());
    }
    upper
}

#[cfg(test)]
mod tests {
    #[test]
    fn codes_are_named_as_grpc_names_them() {
        assert_eq!(super::code_name(tonic::Code::Ok), "OK");
        assert_eq!(super::code_name(tonic::Code::NotFound), "NOT_FOUND");
        assert_eq!(
            super::code_name(tonic::Code::FailedPrecondition),
            "FAILED_PRECONDITION"
        );
    }
}
