//! One consumer over several job queues: a task per queue's consumer feeds
//! one channel, so each queue keeps its own prefetch (its concurrency in
//! this worker) and the worker takes whichever delivery comes first. A
//! queue's task takes nothing while its queue is paused.

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::delivery::{Delivery, Source};
use crate::gate::PauseGate;

pub struct MergedConsumer {
    deliveries: mpsc::Receiver<Delivery>,
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

impl MergedConsumer {
    pub(crate) fn new(consumers: Vec<(String, Box<dyn Source>)>, gate: Option<PauseGate>) -> Self {
        let (sender, deliveries) = mpsc::channel(1);
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        for (queue, mut consumer) in consumers {
            let (sender, stop, mut gate) = (sender.clone(), stop.clone(), gate.clone());
            tasks.spawn(async move {
                loop {
                    if let Some(gate) = &mut gate {
                        tokio::select! {
                            biased;
                            _ = stop.cancelled() => break,
                            _ = gate.wait_open(&queue) => {}
                        }
                    }
                    let delivery = tokio::select! {
                        biased;
                        _ = stop.cancelled() => break,
                        delivery = consumer.next() => delivery,
                    };
                    // Paused while it waited: held here, not started.
                    if let Some(gate) = &mut gate {
                        tokio::select! {
                            biased;
                            _ = stop.cancelled() => break,
                            _ = gate.wait_open(&queue) => {}
                        }
                    }
                    tokio::select! {
                        biased;
                        _ = stop.cancelled() => break,
                        sent = sender.send(delivery) => if sent.is_err() { break },
                    }
                }
                consumer.close().await;
            });
        }
        Self {
            deliveries,
            stop,
            tasks,
        }
    }

    pub async fn next(&mut self) -> Delivery {
        match self.deliveries.recv().await {
            Some(delivery) => delivery,
            // The tasks end only when stopped, which takes `&mut self`.
            None => std::future::pending().await,
        }
    }

    /// Stops every queue's consumer; what they hold and did not settle goes
    /// back to the broker.
    pub async fn close(&mut self) {
        self.stop.cancel();
        self.deliveries.close();
        while self.tasks.join_next().await.is_some() {}
    }
}
