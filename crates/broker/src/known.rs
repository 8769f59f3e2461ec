//! The job queues a broker handle knows of: those it was told of and those
//! it published to or consumed, for depths and for deleting the topology.

use std::sync::Mutex;

use ferro_tasks::queues::DEFAULT_QUEUE;

pub(crate) struct KnownQueues(Mutex<Vec<String>>);

impl Default for KnownQueues {
    fn default() -> Self {
        Self(Mutex::new(vec![DEFAULT_QUEUE.to_owned()]))
    }
}

impl KnownQueues {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn note(&self, queue: &str) {
        let mut known = self.lock();
        if !known.iter().any(|q| q == queue) {
            known.push(queue.to_owned());
        }
    }

    pub(crate) fn list(&self) -> Vec<String> {
        self.lock().clone()
    }
}
