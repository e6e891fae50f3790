//! The integration tests, as one test binary: each module is one area of the crate, tested
//! against real ZooKeeper servers (see `common::zk_server`).
//!
//! One binary rather than one per file: each test binary links the whole dependency tree, and
//! a dozen of them made CI spend minutes compiling and linking. Three suites stay binaries of
//! their own: `tests/security.rs` installs a process-wide tracing subscriber that records every
//! event; `tests/testing_kit.rs` runs once per testing-kit backend; and `tests/chaos.rs` loads
//! a 3-node ensemble for a minute, which on two cores starved the shared server of the tests
//! running beside it (a session's expiry could not be forced within 30 s).

#[path = "../common/mod.rs"]
mod common;

mod bad_input;
mod cache;
mod close;
mod connection;
mod counters;
mod discovery;
mod examples;
mod exclusion;
mod interop_cache;
mod interop_counters;
mod interop_discovery;
mod interop_group;
mod interop_latch;
mod interop_mutex;
mod interop_rw_lock;
mod interop_selector;
mod interop_semaphore;
mod latch;
mod lock_trait;
mod multi_lock;
mod mutex;
mod nodes;
mod rw_lock;
#[cfg(feature = "sasl")]
mod sasl;
mod selector;
mod semaphore;
mod step_faults;
mod tls;
