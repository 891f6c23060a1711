//! Traces: W3C trace context in (REST and gRPC requests) and out (calls to
//! session hosts), and spans exported over OTLP/gRPC when an endpoint is set.
//!
//! Spans (all at DEBUG level under the `wa_gateway` target, so logs never
//! pay for them and they exist only when a trace layer wants them):
//! - `rest.request`: one REST request (server);
//! - `rpc`: one AdminService call, over the gRPC port or in process (server);
//! - `backfill.run`: one job, a child of the `rpc` span that queued it when
//!   this replica runs it;
//! - `host.stream`: one stream from a session host, with the trace context
//!   sent along (client);
//! - `store.*`: one database statement or transaction (never one per row).
//!
//! Export never blocks a request: ended spans go to a bounded queue, and a
//! background task sends them in batches, each within a timeout. A span that
//! finds the queue full, or whose batch the collector did not take, is
//! dropped and counted in `wa_gateway_trace_spans_dropped_total{reason}`;
//! exported ones in `wa_gateway_trace_spans_exported_total`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanData, SpanExporter, SpanProcessor};
use tokio::sync::mpsc;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Ended spans waiting for export; beyond this, new ones are dropped.
const QUEUE: usize = 4096;
/// Spans sent in one export call, at most.
const MAX_BATCH: usize = 512;
/// How long a span may wait for companions before its batch is sent.
const BATCH_DELAY: Duration = Duration::from_millis(500);
/// The longest one export may take; its spans are dropped after that.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and how much to export.
#[derive(Debug, Clone)]
pub struct TraceConfig {
    /// An OTLP/gRPC collector, `http://` or `https://`.
    pub endpoint: String,
    /// Share of new traces recorded (a caller's sampled flag is followed).
    pub sample_ratio: f64,
}

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported; when not, no trace context is read or sent.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The layer that turns `tracing` spans into exported OpenTelemetry spans.
pub type SpanLayer<S> = tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>;

/// The OTLP exporter could not be built from the configuration.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ExportSetupError(#[from] opentelemetry_otlp::ExporterBuildError);

/// Stops the export task, sending what is still queued (bounded in time).
pub struct TraceGuard {
    provider: SdkTracerProvider,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl TraceGuard {
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(EXPORT_TIMEOUT + Duration::from_secs(1), self.task).await;
        let _ = self.provider.shutdown();
    }
}

/// The tracing layer that turns spans into OpenTelemetry spans, and the
/// guard of its export task. Call within a tokio runtime.
pub fn layer<S>(config: &TraceConfig) -> Result<(SpanLayer<S>, TraceGuard), ExportSetupError>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(config.endpoint.clone())
        .with_timeout(EXPORT_TIMEOUT);
    if config.endpoint.starts_with("https://") {
        exporter = exporter.with_tls_config(tonic::transport::ClientTlsConfig::new().with_webpki_roots());
    }
    let exporter = exporter.build()?;
    let (queue, queued) = mpsc::channel(QUEUE);
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(export_loop(queued, exporter, stop.clone()));
    let resource = opentelemetry_sdk::Resource::builder().with_service_name("wa-gateway").build();
    let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.sample_ratio)));
    let provider = SdkTracerProvider::builder()
        .with_span_processor(QueueProcessor { queue })
        .with_sampler(sampler)
        .with_resource(resource)
        .build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    ENABLED.store(true, Ordering::Relaxed);
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("wa-gateway"))
        .with_location(false)
        .with_threads(false);
    Ok((layer, TraceGuard { provider, stop, task }))
}

fn dropped(reason: &'static str, spans: usize) {
    metrics::counter!("wa_gateway_trace_spans_dropped_total", "reason" => reason).increment(spans as u64);
}

/// Hands ended spans to the export task without ever waiting.
#[derive(Debug)]
struct QueueProcessor {
    queue: mpsc::Sender<SpanData>,
}

impl SpanProcessor for QueueProcessor {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        if span.span_context.is_sampled() && self.queue.try_send(span).is_err() {
            dropped("queue_full", 1);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// Sends queued spans in batches until `stop`, then sends what is left once.
async fn export_loop(
    mut queued: mpsc::Receiver<SpanData>,
    exporter: impl SpanExporter,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let first = tokio::select! {
            span = queued.recv() => span,
            () = stop.cancelled() => None,
        };
        let Some(first) = first else { break };
        batch.push(first);
        let due = tokio::time::Instant::now() + BATCH_DELAY;
        while batch.len() < MAX_BATCH {
            match tokio::time::timeout_at(due, queued.recv()).await {
                Ok(Some(span)) => batch.push(span),
                Ok(None) | Err(_) => break,
            }
        }
        export(&exporter, &mut batch).await;
    }
    while let Ok(span) = queued.try_recv() {
        batch.push(span);
    }
    export(&exporter, &mut batch).await;
}

async fn export(exporter: &impl SpanExporter, batch: &mut Vec<SpanData>) {
    let spans = batch.len();
    if spans == 0 {
        return;
    }
    match tokio::time::timeout(EXPORT_TIMEOUT, exporter.export(std::mem::take(batch))).await {
        Ok(Ok(())) => metrics::counter!("wa_gateway_trace_spans_exported_total").increment(spans as u64),
        Ok(Err(error)) => {
            tracing::debug!(%error, spans, "trace export failed; spans dropped");
            dropped("export_failed", spans);
        }
        Err(_) => dropped("export_failed", spans),
    }
}

/// Makes `span` continue the trace a request's `traceparent` names (when
/// spans are exported and the header is sane; otherwise nothing changes).
pub fn continue_from(span: &tracing::Span, headers: &http::HeaderMap) {
    if span.is_disabled() || !enabled() || !headers.contains_key("traceparent") {
        return;
    }
    let context = opentelemetry::global::get_text_map_propagator(|p| p.extract(&Headers(headers)));
    if context.span().span_context().is_valid() {
        let _ = span.set_parent(context);
    }
}

/// Adds the current span's trace context to an outgoing call.
pub fn inject(metadata: &mut tonic::metadata::MetadataMap) {
    if !enabled() {
        return;
    }
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&context, &mut Metadata(metadata)));
}

/// The current span's trace context, to parent work that runs later.
pub fn current_context() -> Option<opentelemetry::Context> {
    enabled().then(|| tracing::Span::current().context())
}

/// Parents `span` on a context kept by [`current_context`].
pub fn set_parent(span: &tracing::Span, parent: opentelemetry::Context) {
    if !span.is_disabled() {
        let _ = span.set_parent(parent);
    }
}

/// The trace and span id of the current span, as lower-case hex, when one is
/// exported: for log lines.
pub fn current_ids() -> Option<(opentelemetry::trace::TraceId, opentelemetry::trace::SpanId)> {
    if !enabled() {
        return None;
    }
    let span = tracing::Span::current();
    if span.is_none() {
        return None;
    }
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then(|| (span_context.trace_id(), span_context.span_id()))
}

struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct Metadata<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for Metadata<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) =
            (tonic::metadata::MetadataKey::from_bytes(key.as_bytes()), tonic::metadata::MetadataValue::try_from(value))
        {
            self.0.insert(key, value);
        }
    }
}

/// The span of one AdminService call (`method` as in the proto).
pub fn rpc_span(method: &str) -> tracing::Span {
    tracing::debug_span!(
        "rpc",
        otel.name = %format_args!("wa.gateway.admin.v1.AdminService/{method}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        rpc.system = "grpc",
        rpc.service = "wa.gateway.admin.v1.AdminService",
        rpc.method = method,
        rpc.grpc.status_code = tracing::field::Empty,
    )
}

/// Renames a span already started (`otel.name` applies only before).
pub fn rename(span: &tracing::Span, name: String) {
    if enabled() && !span.is_disabled() {
        span.context().span().update_name(name);
    }
}

/// Records a call's gRPC status on its span (an error status marks it failed).
pub fn record_grpc_status(span: &tracing::Span, code: tonic::Code) {
    span.record("rpc.grpc.status_code", code as i32);
    if code != tonic::Code::Ok {
        span.record("otel.status_code", "error");
    }
}

/// Trace contexts left by the call that queued some work, for whoever runs
/// it later on this replica (work claimed by another replica starts a trace
/// of its own). Bounded: at [`Handoffs::CAPACITY`] unclaimed entries, it
/// starts over.
#[derive(Default)]
pub struct Handoffs(std::sync::Mutex<std::collections::HashMap<String, opentelemetry::Context>>);

impl Handoffs {
    const CAPACITY: usize = 1024;

    /// Keeps the current span's context for the work named `key`.
    pub fn leave(&self, key: &str) {
        let Some(context) = current_context() else { return };
        let mut waiting = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if waiting.len() >= Self::CAPACITY {
            waiting.clear();
        }
        waiting.insert(key.to_owned(), context);
    }

    /// The context left for `key`, if any.
    pub fn take(&self, key: &str) -> Option<opentelemetry::Context> {
        if !enabled() {
            return None;
        }
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(key)
    }
}

impl wa_gateway_core::backfill::TraceHandoff for Handoffs {
    fn leave(&self, job: &str) {
        Handoffs::leave(self, job);
    }

    fn resume(&self, job: &str, run: &tracing::Span) {
        if let Some(queued_by) = self.take(job) {
            set_parent(run, queued_by);
        }
    }
}
