//! The pages' live updates: server-sent events with the sections that
//! changed, sent when the provider's state changes and checked once a
//! second (pending requests expire without anyone touching them).
//!
//! Each stream ends when the browser goes away or the server stops.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::extract::Path;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_stream::wrappers::ReceiverStream;

use super::pages::{Rendered, console_sections, phone_sections, secure};
use crate::routes::Shared;
use crate::state::Provider;

/// How often a stream looks again without being told of a change.
const RECHECK: Duration = Duration::from_secs(1);

/// `GET /console/events`: the console's sections.
pub(crate) async fn console_events(
    axum::extract::State(p): Shared,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = p.console.check_host(&headers) {
        return e.into_response();
    }
    stream(&p, |p| console_sections(&p.console_view()))
}

/// `GET /console/phone/{session_id}/events`: the phone page's section.
pub(crate) async fn phone_events(
    axum::extract::State(p): Shared,
    Path(session_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = p.console.check_host(&headers) {
        return e.into_response();
    }
    stream(&p, move |p| phone_sections(&p.phone_view(&session_id)))
}

type Render = dyn Fn(&Provider) -> Result<Vec<Rendered>, askama::Error> + Send + Sync;

/// An SSE response fed by a task that renders with `render` and sends
/// `event: sections`, `data: {"<id>": {"hash", "html"}, ...}` for the
/// sections whose hash differs from what this stream sent before.
fn stream(
    p: &Arc<Provider>,
    render: impl Fn(&Provider) -> Result<Vec<Rendered>, askama::Error> + Send + Sync + 'static,
) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Event, Infallible>>(4);
    let task = Feed {
        provider: Arc::downgrade(p),
        changes: p.changes(),
        closing: p.closing(),
        render: Box::new(render),
        tx,
    };
    tokio::spawn(task.run());
    let sse = Sse::new(ReceiverStream::new(rx)).keep_alive(KeepAlive::default());
    secure(sse.into_response())
}

struct Feed {
    provider: Weak<Provider>,
    changes: tokio::sync::watch::Receiver<u64>,
    closing: tokio::sync::watch::Receiver<bool>,
    render: Box<Render>,
    tx: mpsc::Sender<Result<Event, Infallible>>,
}

impl Feed {
    async fn run(mut self) {
        let mut sent: HashMap<&'static str, String> = HashMap::new();
        let mut recheck = tokio::time::interval(RECHECK);
        recheck.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let Some(event) = self.next_event(&mut sent) else {
                return;
            };
            if let Some(event) = event
                && self.tx.send(Ok(event)).await.is_err()
            {
                return; // the browser went away
            }
            tokio::select! {
                _ = recheck.tick() => {}
                changed = self.changes.changed() => if changed.is_err() { return },
                _ = self.closing.wait_for(|closing| *closing) => return,
                () = self.tx.closed() => return,
            }
        }
    }

    /// The event for what changed since `sent` (`Some(None)`: nothing did),
    /// or `None` when the stream should end.
    fn next_event(&self, sent: &mut HashMap<&'static str, String>) -> Option<Option<Event>> {
        let provider = self.provider.upgrade()?;
        let sections = match (self.render)(&provider) {
            Ok(sections) => sections,
            Err(e) => {
                tracing::error!(%e, "a console template failed; ending its live stream");
                return None;
            }
        };
        let mut changed = Map::new();
        for section in sections {
            if sent.get(section.id) == Some(&section.hash) {
                continue;
            }
            changed.insert(
                section.id.to_string(),
                json!({"hash": section.hash, "html": section.html}),
            );
            sent.insert(section.id, section.hash);
        }
        if changed.is_empty() {
            return Some(None);
        }
        match Event::default()
            .event("sections")
            .json_data(Value::Object(changed))
        {
            Ok(event) => Some(Some(event)),
            Err(e) => {
                tracing::error!(%e, "cannot encode a console update");
                None
            }
        }
    }
}
