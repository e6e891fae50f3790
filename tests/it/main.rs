//! The integration tests, as one test binary: each module is one area of the crate, tested
//! against real ZooKeeper servers (see `common::zk_server`).
//!
//! One binary rather than one per file: each test binary links the whole dependency tree, and
//! a dozen of them made CI spend minutes compiling and linking. Two suites stay binaries of
//! their own: `tests/security.rs` installs a process-wide tracing subscriber that records every
//! event, and `tests/testing_kit.rs` runs once per testing-kit backend.

#[path = "../common/mod.rs"]
mod common;

mod bad_input;
mod chaos;
mod connection;
mod examples;
mod exclusion;
mod interop_latch;
mod interop_mutex;
mod interop_selector;
mod latch;
mod multi_lock;
mod mutex;
mod selector;
mod tls;
