//! Curator's connection states, and their delivery to every subscriber.

use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::mpsc;

use crate::sync::Locked;

/// The state of a [`Client`](crate::Client)'s connection, with Apache Curator's meaning.
///
/// Transitions:
///
/// ```text
///  Connected ──► Suspended ──► Reconnected ──► Suspended ──► …
///                    │              ▲
///                    ▼              │ (a new session)
///                   Lost ───────────┘
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectionState {
    /// The first session was established.
    Connected,
    /// The connection dropped. The session may still be alive, so ephemeral nodes (locks,
    /// leadership) *may* still exist, but this client cannot know until it reconnects.
    Suspended,
    /// The connection is back: on the same session after a [`Suspended`](Self::Suspended), or on
    /// a new session after a [`Lost`](Self::Lost).
    ///
    /// Published once a request has made the round trip on the new connection, not when the
    /// server's connect response arrives (zookeeper-client's `SyncConnected`): a connection
    /// that drops during the rest of the handshake is no reconnection, and the client stays
    /// suspended through it.
    Reconnected,
    /// The session is gone: the server said it expired, or the client stayed
    /// [`Suspended`](Self::Suspended) for longer than the negotiated session timeout (times the
    /// configured percentage). Every ephemeral node of the session is, or will soon be, deleted.
    Lost,
    /// Connected to a server in read-only mode (only when read-only is allowed).
    ReadOnly,
}

impl ConnectionState {
    /// True for the states in which requests can be served: `Connected`, `Reconnected` and
    /// `ReadOnly`.
    pub fn is_connected(self) -> bool {
        matches!(self, Self::Connected | Self::Reconnected | Self::ReadOnly)
    }
}

impl std::fmt::Display for ConnectionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Curator's spelling, so logs of Java and Rust services read alike.
        f.write_str(match self {
            Self::Connected => "CONNECTED",
            Self::Suspended => "SUSPENDED",
            Self::Reconnected => "RECONNECTED",
            Self::Lost => "LOST",
            Self::ReadOnly => "READ_ONLY",
        })
    }
}

/// A transition with its number (see `StateFanout::published`).
type NumberedState = (u64, ConnectionState);

/// Hands every transition to every subscriber, in order.
///
/// Each subscriber has an unbounded queue: unlike Curator's bounded listener queue, a slow
/// subscriber never makes another miss a transition. Transitions are rare (a handful per
/// connection incident), so the queues stay short.
#[derive(Debug)]
pub(crate) struct StateFanout {
    /// `None` once closed: a stream subscribed after that ends at once. Each transition goes
    /// with its number (see [`published`](Self::published)).
    subscribers: Mutex<Option<Vec<mpsc::UnboundedSender<NumberedState>>>>,
    /// How many transitions were published, counted under the `subscribers` lock.
    published: std::sync::atomic::AtomicU64,
}

impl Default for StateFanout {
    fn default() -> Self {
        Self {
            subscribers: Mutex::new(Some(Vec::new())),
            published: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl StateFanout {
    pub(crate) fn subscribe(&self) -> ConnectionStates {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Some(subscribers) = self.subscribers.locked().as_mut() {
            subscribers.push(tx);
        }
        ConnectionStates { rx }
    }

    /// Ends every stream, present and future: the client is closed.
    pub(crate) fn close(&self) {
        self.subscribers.locked().take();
    }

    pub(crate) fn publish(&self, state: ConnectionState) {
        // Dropped streams are pruned here, on the next transition.
        let mut subscribers = self.subscribers.locked();
        let number = self
            .published
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        if let Some(subscribers) = subscribers.as_mut() {
            subscribers.retain(|tx| tx.send((number, state)).is_ok());
        }
    }

    /// How many transitions were published so far: the number of the latest (they are
    /// numbered from 1), which every stream hands out with it (see
    /// [`ConnectionStates::next_numbered`]). A task that starts something after reading it
    /// can tell the transitions that came before from those that came after.
    ///
    /// A transition is counted before it is sent: one counted but not yet received carries a
    /// number no higher than what this returns, and it did happen before.
    pub(crate) fn published(&self) -> u64 {
        self.published.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A stream of every [`ConnectionState`] transition after its creation, from
/// [`Client::connection_states`](crate::Client::connection_states).
///
/// It ends when the client is closed.
#[derive(Debug)]
#[must_use = "streams do nothing unless polled"]
pub struct ConnectionStates {
    rx: mpsc::UnboundedReceiver<NumberedState>,
}

impl ConnectionStates {
    /// The next transition, or `None` once the client is closed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a transition is never lost by dropping this future.
    pub async fn next(&mut self) -> Option<ConnectionState> {
        self.rx.recv().await.map(|(_, state)| state)
    }

    /// [`next`](Self::next), with the transition's number (see `StateFanout::published`).
    ///
    /// Cancel safe, as `next`.
    pub(crate) async fn next_numbered(&mut self) -> Option<(u64, ConnectionState)> {
        self.rx.recv().await
    }
}

impl Stream for ConnectionStates {
    type Item = ConnectionState;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx
            .poll_recv(cx)
            .map(|transition| transition.map(|(_, state)| state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_subscriber_sees_every_transition_in_order() {
        let fanout = StateFanout::default();
        let mut a = fanout.subscribe();
        let mut b = fanout.subscribe();
        let sequence = [
            ConnectionState::Suspended,
            ConnectionState::Reconnected,
            ConnectionState::Suspended,
            ConnectionState::Lost,
            ConnectionState::Reconnected,
        ];
        for s in sequence {
            fanout.publish(s);
        }
        for s in sequence {
            assert_eq!(a.next().await, Some(s));
            assert_eq!(b.next().await, Some(s));
        }
        drop(a);
        fanout.publish(ConnectionState::Suspended);
        assert_eq!(fanout.subscribers.locked().as_ref().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn close_ends_every_stream_even_later_ones() {
        let fanout = StateFanout::default();
        let mut before = fanout.subscribe();
        fanout.publish(ConnectionState::Suspended);
        fanout.close();
        fanout.publish(ConnectionState::Reconnected);
        assert_eq!(before.next().await, Some(ConnectionState::Suspended));
        assert_eq!(before.next().await, None);
        assert_eq!(fanout.subscribe().next().await, None);
    }
}
