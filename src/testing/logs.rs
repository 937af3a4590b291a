//! Each node's log, captured from `tracing`: every event inside a node's `node{node=…}` span
//! is appended to that node's buffer.

use std::{
    collections::{HashMap, VecDeque},
    fmt::{self, Write as _},
    sync::{Arc, Mutex, OnceLock, PoisonError},
};

use tracing::{
    field::{Field, Visit},
    span, Event, Level, Subscriber,
};
use tracing_subscriber::{
    filter::LevelFilter,
    layer::{Context, SubscriberExt},
    registry::LookupSpan,
    Layer,
};

/// The most lines kept per node; older ones are dropped first.
const MAX_LINES: usize = 10_000;

/// One node's captured lines.
pub(crate) type LogBuffer = Arc<Mutex<VecDeque<String>>>;

/// Node name → its buffer, for the nodes of live clusters only.
fn buffers() -> &'static Mutex<HashMap<String, LogBuffer>> {
    static BUFFERS: OnceLock<Mutex<HashMap<String, LogBuffer>>> = OnceLock::new();
    BUFFERS.get_or_init(Mutex::default)
}

/// Starts capturing the log of the node `name`.
pub(crate) fn register(name: &str) -> LogBuffer {
    let buffer = LogBuffer::default();
    buffers()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(name.to_string(), buffer.clone());
    buffer
}

/// Stops capturing the log of the node `name`.
pub(crate) fn unregister(name: &str) {
    buffers()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(name);
}

pub(crate) fn push(buffer: &LogBuffer, line: String) {
    let mut lines = buffer.lock().unwrap_or_else(PoisonError::into_inner);
    if lines.len() == MAX_LINES {
        lines.pop_front();
    }
    lines.push_back(line);
}

/// Installs a global subscriber with [`log_layer`] unless one is installed already, and says
/// whether node logs are captured (`false`: another global subscriber was there first; add
/// [`log_layer`] to it to capture them).
pub(crate) fn install() -> bool {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    *INSTALLED.get_or_init(|| {
        let subscriber = tracing_subscriber::registry().with(log_layer());
        tracing::subscriber::set_global_default(subscriber).is_ok()
    })
}

/// A `tracing` layer that captures the events of [`LocalCluster`](super::LocalCluster) nodes
/// (debug level and above) for [`LocalCluster::logs`](super::LocalCluster::logs).
///
/// A cluster installs it as the global subscriber if there is none. A test that installs its
/// own subscriber (to print logs, say) adds this layer to keep per-node capture:
///
/// ```no_run
/// use tracing_subscriber::prelude::*;
/// tracing_subscriber::registry()
///     .with(nodus::testing::log_layer())
///     .init();
/// ```
pub fn log_layer<S>() -> impl Layer<S> + Send + Sync + 'static
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    Capture.with_filter(LevelFilter::DEBUG)
}

/// The node a span belongs to, kept in the `node` span's extensions.
struct NodeTag(String);

/// The fields of a span shown on each line (a `trace` span's `trace_id`).
struct SpanFields(String);

struct Capture;

impl<S> Layer<S> for Capture
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() == "trace" {
            // A trace's span (`TraceContext`): its line shows its `trace_id`.
            let mut fields = Fields::default();
            attrs.record(&mut fields);
            if let Some(span) = ctx.span(id) {
                span.extensions_mut().insert(SpanFields(fields.rest));
            }
            return;
        }
        if attrs.metadata().name() != "node" {
            return;
        }
        let mut visitor = NodeField(None);
        attrs.record(&mut visitor);
        if let (Some(name), Some(span)) = (visitor.0, ctx.span(id)) {
            span.extensions_mut().insert(NodeTag(name));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        let mut spans = Vec::new();
        let mut node = None;
        for span in scope {
            if let Some(tag) = span.extensions().get::<NodeTag>() {
                node = Some(tag.0.clone());
                break;
            }
            let fields = span.extensions().get::<SpanFields>().map(|f| f.0.clone());
            spans.push(match fields {
                Some(fields) => format!("{}{{{}}}", span.name(), fields.trim_start()),
                None => span.name().to_string(),
            });
        }
        let Some(node) = node else { return };
        let Some(buffer) = buffers()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&node)
            .cloned()
        else {
            return;
        };
        let meta = event.metadata();
        let mut line = format!("{:>5} ", level(*meta.level()));
        for name in spans.iter().rev() {
            let _ = write!(line, "{name}: ");
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        line.push_str(&fields.message);
        line.push_str(&fields.rest);
        push(&buffer, line);
    }
}

fn level(level: Level) -> &'static str {
    match level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARN",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

struct NodeField(Option<String>);

impl Visit for NodeField {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "node" {
            self.0 = Some(format!("{value:?}"));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "node" {
            self.0 = Some(value.to_string());
        }
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.rest, " {}={value}", field.name());
        }
    }
}
