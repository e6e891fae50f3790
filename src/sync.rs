//! One way to take this crate's std locks: recover from poisoning.
//!
//! No code of this crate panics while it holds one of its locks: user callbacks (listeners,
//! hooks) run outside them, and a panic in one is caught. So a poisoned lock still guards
//! consistent state, the poisoning only says that some panic unwound through a holder, and
//! recovering keeps a recipe working instead of turning one panic into a cascade of them.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// [`Mutex::lock`], recovering from poisoning (see the [module docs](self)).
pub(crate) trait Locked<T> {
    fn locked(&self) -> MutexGuard<'_, T>;
}

impl<T> Locked<T> for Mutex<T> {
    fn locked(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// [`RwLock::read`] and [`RwLock::write`], recovering from poisoning (see the
/// [module docs](self)).
pub(crate) trait ReadWriteLocked<T> {
    fn read_locked(&self) -> RwLockReadGuard<'_, T>;
    fn write_locked(&self) -> RwLockWriteGuard<'_, T>;
}

impl<T> ReadWriteLocked<T> for RwLock<T> {
    fn read_locked(&self) -> RwLockReadGuard<'_, T> {
        self.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_locked(&self) -> RwLockWriteGuard<'_, T> {
        self.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The receivers of a recipe's event stream: every event goes to each, in order, none
/// dropped; a receiver that is gone is forgotten at the next event.
#[derive(Debug)]
pub(crate) struct Subscribers<T>(Mutex<Vec<tokio::sync::mpsc::UnboundedSender<T>>>);

impl<T: Clone> Subscribers<T> {
    pub(crate) fn new() -> Self {
        Self(Mutex::new(Vec::new()))
    }

    /// A new receiver of the events from now on.
    pub(crate) fn subscribe(&self) -> tokio::sync::mpsc::UnboundedReceiver<T> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.0.locked().push(tx);
        rx
    }

    /// Sends `event` to every receiver.
    pub(crate) fn emit(&self, event: T) {
        self.0.locked().retain(|tx| tx.send(event.clone()).is_ok());
    }

    /// Ends every receiver's stream.
    pub(crate) fn close(&self) {
        self.0.locked().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_is_recovered() {
        let lock = std::sync::Arc::new(Mutex::new(1));
        let poisoner = lock.clone();
        let _ = std::thread::spawn(move || {
            let _guard = poisoner.lock().unwrap();
            panic!("poison");
        })
        .join();
        assert!(lock.is_poisoned());
        *lock.locked() += 1;
        assert_eq!(*lock.locked(), 2);
    }
}
