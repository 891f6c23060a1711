//! Log output: the subscriber, and the JSON lines operators ship.
//!
//! Every event (an audit event is one per admin call, so this is the hot
//! path) is formatted on the calling thread straight into the line, with no
//! intermediate map of values, and written by a background thread in
//! batches ([`super::log_writer`]), so no request waits on stderr. Lines
//! that find the buffer full are dropped and counted
//! (`wa_gateway_log_lines_dropped_total`).
//!
//! A JSON line is one flat object: `timestamp` (RFC 3339, UTC), `level`,
//! `target`, `message`, then the event's fields under their own names
//! (numbers and booleans as JSON values, everything else as strings), then
//! the fields of the spans the event is in, innermost last, then
//! `trace_id` and `span_id` when the event is in an exported span.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormattedFields};
use tracing_subscriber::registry::LookupSpan;
use wa_json::write_quoted;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// tracing's human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// What keeps logging (and trace export) going; see [`Logging::finish`].
pub struct Logging {
    _writer: super::log_writer::WriterGuard,
    traces: Option<super::traces::TraceGuard>,
}

impl Logging {
    /// Sends the spans still queued (bounded in time); dropping `self` then
    /// flushes the log lines still queued.
    pub async fn finish(mut self) {
        if let Some(traces) = self.traces.take() {
            traces.shutdown().await;
        }
    }
}

/// Logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("cannot start the log writer thread: {0}")]
    Writer(#[source] std::io::Error),
    #[error("--otlp-endpoint: {0}")]
    Traces(#[from] super::traces::ExportSetupError),
}

/// Installs the process-wide subscriber: log lines through `filter`, and
/// spans to OTLP when `traces` is set (within a tokio runtime). Keep the
/// result until exit.
pub fn init(filter: &str, format: Format, traces: Option<&super::traces::TraceConfig>) -> Result<Logging, InitError> {
    use tracing_subscriber::prelude::*;
    let filter =
        tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = match super::log_writer::spawn(std::io::stderr(), super::log_writer::DEFAULT_CAP) {
        Ok(started) => started,
        Err(error) => return Err(InitError::Writer(error)),
    };
    let Some(config) = traces else {
        // No spans exported: one global filter, so a disabled span or event
        // costs a cached callsite check and nothing per layer.
        let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
        match format {
            Format::Pretty => builder.init(),
            Format::Json => builder.event_format(JsonLines).fmt_fields(JsonFields).init(),
        }
        return Ok(Logging { _writer: guard, traces: None });
    };
    // Exported spans: each layer with its own filter, so the log filter never
    // hides a span from the exporter.
    type Boxed = Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>;
    let lines = tracing_subscriber::fmt::layer().with_writer(writer);
    let lines: Boxed = match format {
        Format::Pretty => lines.with_filter(filter).boxed(),
        Format::Json => lines.event_format(JsonLines).fmt_fields(JsonFields).with_filter(filter).boxed(),
    };
    let (spans, trace_guard) = super::traces::layer(config)?;
    // Only this crate's spans: never events, never dependencies' spans.
    let ours = tracing_subscriber::filter::filter_fn(|meta| meta.is_span() && meta.target().starts_with("wa_gateway"));
    tracing_subscriber::registry().with(vec![lines, spans.with_filter(ours).boxed()]).init();
    Ok(Logging { _writer: guard, traces: Some(trace_guard) })
}

/// Writes one event as one flat JSON object.
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut out: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        // The line is built in a plain `String`, where every write is an
        // inlined append, then handed over in one call: each write through
        // `Writer` is a dynamic call, and a line takes about fifty.
        LINE.with(|cell| match cell.try_borrow_mut() {
            Ok(mut buffers) => {
                let Buffers { line, scratch } = &mut *buffers;
                line.clear();
                let written = json_line(ctx, event, line, scratch);
                let handed = written.and_then(|()| out.write_str(line));
                for buffer in [line, scratch] {
                    if buffer.capacity() > KEEP_AT_MOST {
                        *buffer = String::new();
                    }
                }
                handed
            }
            // An event logged while a value of this line was being
            // formatted (a `Debug` impl that logs).
            Err(_) => {
                let (mut line, mut scratch) = (String::new(), String::new());
                json_line(ctx, event, &mut line, &mut scratch)?;
                out.write_str(&line)
            }
        })
    }
}

/// Buffers that grew past this (one huge field) are not kept.
const KEEP_AT_MOST: usize = 64 * 1024;

struct Buffers {
    line: String,
    /// For values that arrive as `Debug` (the message among them).
    scratch: String,
}

thread_local! {
    static LINE: std::cell::RefCell<Buffers> =
        const { std::cell::RefCell::new(Buffers { line: String::new(), scratch: String::new() }) };
}

fn json_line<S, N>(ctx: &FmtContext<'_, S, N>, event: &Event<'_>, out: &mut String, scratch: &mut String) -> fmt::Result
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    let meta = event.metadata();
    out.write_str("{\"timestamp\":\"")?;
    out.write_str(std::str::from_utf8(&rfc3339_micros(std::time::SystemTime::now())).map_err(|_| fmt::Error)?)?;
    out.write_str("\",\"level\":\"")?;
    out.write_str(meta.level().as_str())?;
    out.write_str("\",\"target\":")?;
    write_quoted(out, meta.target())?;
    let mut fields = JsonVisitor { out: &mut *out, result: Ok(()), scratch };
    event.record(&mut fields);
    fields.result?;
    if let Some(scope) = ctx.event_scope() {
        for span in scope.from_root() {
            // Span fields were formatted by `JsonFields` when recorded:
            // `,"name":value` pairs, ready to append.
            if let Some(formatted) = span.extensions().get::<FormattedFields<N>>() {
                out.write_str(formatted.as_str())?;
            }
        }
    }
    if let Some((trace_id, span_id)) = super::traces::current_ids() {
        write!(out, ",\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\"")?;
    }
    out.write_str("}\n")
}

/// Formats span fields as `,"name":value` pairs (see [`JsonLines`]).
pub struct JsonFields;

impl<'writer> FormatFields<'writer> for JsonFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut out: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut scratch = String::new();
        let mut visitor = JsonVisitor { out: &mut out, result: Ok(()), scratch: &mut scratch };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct JsonVisitor<'a, W> {
    out: &'a mut W,
    result: fmt::Result,
    /// Reused for values that arrive as `Debug` (the message among them).
    scratch: &'a mut String,
}

impl<W: fmt::Write> JsonVisitor<'_, W> {
    fn pair(&mut self, field: &Field, value: impl FnOnce(&mut W) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = (|| {
                self.out.write_char(',')?;
                write_quoted(self.out, field.name())?;
                self.out.write_char(':')?;
                value(self.out)
            })();
        }
    }
}

impl<W: fmt::Write> Visit for JsonVisitor<'_, W> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.pair(field, |out| write_quoted(out, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.scratch.clear();
        let _ = write!(self.scratch, "{value:?}");
        let scratch = std::mem::take(self.scratch);
        self.pair(field, |out| write_quoted(out, &scratch));
        *self.scratch = scratch;
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.pair(field, |out| write!(out, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.pair(field, |out| write!(out, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.pair(field, |out| write!(out, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.pair(field, |out| write!(out, "{value}"));
        } else {
            self.pair(field, |out| write!(out, "\"{value}\""));
        }
    }
}

/// `time` as RFC 3339 in UTC with microseconds (`2026-11-22T14:41:25.522328Z`),
/// formatted without `fmt` machinery: every log line starts with one.
fn rfc3339_micros(time: std::time::SystemTime) -> [u8; 27] {
    let since_epoch = time.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let (year, month, day) = civil_from_days(secs / 86_400);
    let of_day = secs % 86_400;
    let mut text = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut value: u64| {
        for slot in text[at..at + width].iter_mut().rev() {
            *slot = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, of_day / 3600);
    put(14, 2, of_day / 60 % 60);
    put(17, 2, of_day % 60);
    put(20, 6, u64::from(since_epoch.subsec_micros()));
    text
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_in_utc_with_microseconds() {
        let at = |secs: u64, micros: u32| {
            let time = std::time::UNIX_EPOCH + std::time::Duration::new(secs, micros * 1000);
            String::from_utf8(rfc3339_micros(time).to_vec()).unwrap()
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_782_400, 7), "2000-02-29T00:00:00.000007Z");
        assert_eq!(at(951_868_799, 999_999), "2000-02-29T23:59:59.999999Z");
        assert_eq!(at(4_107_542_400, 0), "2100-03-01T00:00:00.000000Z");
        assert_eq!(at(1_795_395_723, 522_328), "2026-11-23T01:02:03.522328Z");
        assert_eq!(at(253_402_300_799, 1), "9999-12-31T23:59:59.000001Z");
    }

    /// A value whose `Debug` logs while its own line is being built leaves
    /// that line whole (tracing drops the nested event; were it delivered,
    /// the line buffer is borrowed with `try_borrow_mut`, never a panic).
    #[test]
    fn a_value_that_logs_while_its_line_is_built_leaves_the_line_whole() {
        struct Chatty;
        impl fmt::Debug for Chatty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                tracing::info!(inner = "yes", "from inside");
                f.write_str("chatty")
            }
        }
        let text = lines_of(|| tracing::info!(value = ?Chatty, "outer"));
        let events: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(events.len(), 1, "{text}");
        assert_eq!((events[0]["message"].as_str(), events[0]["value"].as_str()), (Some("outer"), Some("chatty")));
    }

    /// One huge line is written whole, and its buffers are not kept.
    #[test]
    fn a_huge_line_is_written_and_its_buffers_are_let_go() {
        let huge = "x".repeat(2 * KEEP_AT_MOST);
        let text = lines_of(|| tracing::info!(text = huge.as_str(), debug = ?huge, "big"));
        let event: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(
            (event["text"].as_str(), event["debug"].as_str().map(str::len)),
            (Some(huge.as_str()), Some(huge.len() + 2))
        );
        LINE.with_borrow(|buffers| {
            assert!(buffers.line.capacity() <= KEEP_AT_MOST, "line kept {}", buffers.line.capacity());
            assert!(buffers.scratch.capacity() <= KEEP_AT_MOST, "scratch kept {}", buffers.scratch.capacity());
        });
    }

    /// What `log` writes through the JSON line formatter.
    fn lines_of(log: impl FnOnce()) -> String {
        use std::sync::{Arc, Mutex};
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .event_format(JsonLines)
            .fmt_fields(JsonFields)
            .with_writer(move || Sink(sink.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        String::from_utf8(lines.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn an_event_is_one_flat_json_object_with_its_span_fields() {
        let text = lines_of(|| {
            let span = tracing::info_span!("call", request_id = "r-1");
            let _entered = span.enter();
            tracing::info!(target: "audit", principal = "ops \"root\"", rows = 42u64, ok = true, outcome = ?Some(1), "admin call");
        });
        assert!(text.ends_with('\n') && text.lines().count() == 1, "{text}");
        let event: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(event["target"], "audit");
        assert_eq!(event["level"], "INFO");
        assert_eq!(event["message"], "admin call");
        assert_eq!(event["principal"], "ops \"root\"");
        assert_eq!(event["rows"], 42);
        assert_eq!(event["ok"], true);
        assert_eq!(event["outcome"], "Some(1)");
        assert_eq!(event["request_id"], "r-1");
        assert!(event["timestamp"].as_str().unwrap().ends_with('Z'), "{event}");
    }
}
