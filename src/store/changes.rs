//! A signal that committed writes changed what the console shows (a fire, a run's end, a
//! delivery attempt). Writers call `touch` after their commit; while no console page
//! listens, that is one relaxed atomic load and nothing else, so the fire path pays nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::broadcast;

#[derive(Clone)]
pub struct Changes(Arc<Inner>);

struct Inner {
    watchers: AtomicUsize,
    tx: broadcast::Sender<()>,
}

impl Default for Changes {
    fn default() -> Self {
        // Watchers only need to know that something changed: one pending signal is enough.
        let (tx, _) = broadcast::channel(1);
        Changes(Arc::new(Inner {
            watchers: AtomicUsize::new(0),
            tx,
        }))
    }
}

impl Changes {
    /// Tells the watchers, if any, that rows changed.
    pub fn touch(&self) {
        if self.0.watchers.load(Ordering::Relaxed) != 0 {
            let _ = self.0.tx.send(());
        }
    }

    /// A watcher's subscription; it stops counting as one when dropped.
    pub fn watch(&self) -> Watcher {
        self.0.watchers.fetch_add(1, Ordering::Relaxed);
        Watcher {
            changes: self.clone(),
            rx: self.0.tx.subscribe(),
        }
    }

    /// How many watch now.
    pub fn watchers(&self) -> usize {
        self.0.watchers.load(Ordering::Relaxed)
    }
}

pub struct Watcher {
    changes: Changes,
    rx: broadcast::Receiver<()>,
}

impl Watcher {
    /// Waits for the next change (a lagging watcher sees one change for many).
    pub async fn changed(&mut self) {
        loop {
            match self.rx.recv().await {
                Ok(()) | Err(broadcast::error::RecvError::Lagged(_)) => return,
                // The sender lives as long as the store: never closed while watched.
                Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.changes.0.watchers.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn watchers_hear_touches_and_unwatched_touches_send_nothing() {
        let changes = Changes::default();
        changes.touch();
        assert_eq!(changes.watchers(), 0);
        let mut watcher = changes.watch();
        assert_eq!(changes.watchers(), 1);
        changes.touch();
        changes.touch();
        tokio::time::timeout(std::time::Duration::from_secs(1), watcher.changed())
            .await
            .expect("a touch is heard");
        drop(watcher);
        assert_eq!(changes.watchers(), 0);
    }
}
