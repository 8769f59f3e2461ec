//! Paused job queues, as a consumer sees them: before it takes the next
//! delivery of a queue it waits while that queue is paused. What it holds
//! already (a RabbitMQ prefetch, a Redis read) stays with it, not started,
//! until the queue is resumed or the consumer closes.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::watch;

/// The set of paused queues, as last read by whoever owns the sender.
#[derive(Clone)]
pub struct PauseGate(watch::Receiver<Arc<BTreeSet<String>>>);

impl PauseGate {
    /// A gate, and the sender that opens and closes it.
    pub fn new() -> (watch::Sender<Arc<BTreeSet<String>>>, PauseGate) {
        let (sender, receiver) = watch::channel(Arc::new(BTreeSet::new()));
        (sender, PauseGate(receiver))
    }

    pub fn is_paused(&self, queue: &str) -> bool {
        self.0.borrow().contains(queue)
    }

    /// Returns once `queue` is not paused (at once if it is not), or when
    /// the sender is gone (nobody can resume it then: the gate opens).
    pub async fn wait_open(&mut self, queue: &str) {
        while self.0.borrow_and_update().contains(queue) {
            if self.0.changed().await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_paused_queue_waits_until_resumed() {
        let (sender, mut gate) = PauseGate::new();
        gate.wait_open("snmp").await;
        sender.send_replace(Arc::new(BTreeSet::from(["snmp".to_owned()])));
        assert!(gate.is_paused("snmp") && !gate.is_paused("email"));
        gate.wait_open("email").await;
        let mut waiting = gate.clone();
        let waiter = tokio::spawn(async move { waiting.wait_open("snmp").await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        sender.send_replace(Arc::new(BTreeSet::new()));
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .unwrap()
            .unwrap();
    }
}
