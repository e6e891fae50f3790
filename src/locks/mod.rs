//! The lock recipes: [`InterProcessMutex`], [`InterProcessReadWriteLock`],
//! [`InterProcessSemaphoreV2`] and its one-lease [`InterProcessSemaphoreMutex`], and
//! [`InterProcessMultiLock`] (Curator's `org.apache.curator.framework.recipes.locks`), and
//! [`InterProcessLock`], the trait of the exclusive ones, with [`LockHold`] for their holds.
//!
//! Every public item is re-exported here (and at the crate root); each recipe's module
//! ([`mutex`], [`rw_lock`], [`semaphore`], [`multi_lock`]) documents its protocol, what "lost"
//! means for it, and its differences from Curator.

mod lock;
pub mod multi_lock;
pub mod mutex;
pub mod rw_lock;
pub mod semaphore;

pub use self::lock::{InterProcessLock, LockHold};
pub use self::multi_lock::{InterProcessMultiLock, MultiLockGuard, MultiLockPart};
pub use self::mutex::{
    InterProcessMutex, LockGuard, RevocationListener, RevocationRequest, Revoker, REVOKE_MESSAGE,
};
pub use self::rw_lock::InterProcessReadWriteLock;
pub use self::semaphore::{InterProcessSemaphoreMutex, InterProcessSemaphoreV2, Lease};
pub use crate::error::PartFailure;
pub use crate::queue::LockMode;
