//! [`EventStream`]: a flow's events as a `Stream`; dropping it cancels the flow.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;

/// The events of one flow run, ending after its last event.
///
/// The flow runs in a tokio task; dropping the stream aborts it, so nothing
/// keeps polling the provider for a caller who stopped listening.
#[derive(Debug)]
pub struct EventStream<T> {
    events: ReceiverStream<T>,
    task: AbortHandle,
}

impl<T: Send + 'static> EventStream<T> {
    /// Runs `flow` in a task, handing it a sender for its events.
    pub(crate) fn spawn<F, Fut>(flow: F) -> Self
    where
        F: FnOnce(mpsc::Sender<T>) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(16);
        let task = tokio::spawn(flow(tx)).abort_handle();
        EventStream {
            events: ReceiverStream::new(rx),
            task,
        }
    }
}

impl<T> Stream for EventStream<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        Pin::new(&mut self.events).poll_next(cx)
    }
}

impl<T> Drop for EventStream<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}
