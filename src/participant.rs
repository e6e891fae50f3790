//! Participant ids: the data every recipe writes into its nodes.
//!
//! An id tells an operator (and [`participants`](crate::InterProcessMutex::participants),
//! [`LeaderLatch::leader`](crate::LeaderLatch::leader), and Curator's `getParticipants` readers
//! in Java processes) which process holds, leads or waits. Every recipe treats it alike:
//!
//! * **Default:** [`default_participant_id`], `hostname/pid`. Curator's default is the empty
//!   string for the latch and the selector, and the local address for the mutex; a
//!   `hostname/pid` says more and costs nothing.
//! * **`with_id`:** a builder method on each recipe, taking any string: ids are opaque bytes
//!   to ZooKeeper and to Curator, so the empty string is allowed too. Call it before the
//!   recipe is used (the first acquire, or `start`). An id that would make a node's create
//!   larger than the client's [`max_request_size`](crate::Client::max_request_size) is
//!   refused with [`Error::InvalidArgument`](crate::Error::InvalidArgument) when the recipe
//!   first creates a node (acquire, or `start`), before anything is sent.
//! * **`id()`:** the id the recipe writes.

use std::sync::OnceLock;

/// `hostname/pid`: the participant id of every recipe unless `with_id` sets another (see the
/// [module documentation](self)).
///
/// The host name is read from `/proc/sys/kernel/hostname`, then the `HOSTNAME` and
/// `COMPUTERNAME` environment variables; `localhost` if none is set.
///
/// ```
/// let id = zk_recipes::default_participant_id();
/// assert!(id.ends_with(&format!("/{}", std::process::id())));
/// ```
pub fn default_participant_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
            .or_else(|| std::env::var("COMPUTERNAME").ok().filter(|h| !h.is_empty()))
            .unwrap_or_else(|| "localhost".to_owned());
        format!("{host}/{}", std::process::id())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_id_names_host_and_process() {
        let id = default_participant_id();
        assert!(id.ends_with(&format!("/{}", std::process::id())), "{id}");
        assert!(!id.starts_with('/'), "{id}");
    }
}
