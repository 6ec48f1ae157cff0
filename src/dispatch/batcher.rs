//! Batches single requests from many tasks into one call: up to `max` items, or whatever
//! arrived within `linger`. Each caller gets its own answer back.

use std::future::Future;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

pub struct Batcher<I, O> {
    tx: mpsc::Sender<(I, oneshot::Sender<O>)>,
}

impl<I, O> Clone for Batcher<I, O> {
    fn clone(&self) -> Self {
        Self { tx: self.tx.clone() }
    }
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    /// Spawns the batching loop. `run` gets a batch and must return one output per input,
    /// in order. The loop ends when every `Batcher` clone is dropped.
    pub fn spawn<F, Fut>(max: usize, linger: Duration, run: F) -> (Self, tokio::task::JoinHandle<()>)
    where
        F: Fn(Vec<I>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<O>> + Send,
    {
        let (tx, mut rx) = mpsc::channel::<(I, oneshot::Sender<O>)>(max * 4);
        let handle = tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                let deadline = tokio::time::Instant::now() + linger;
                while batch.len() < max {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(item)) => batch.push(item),
                        _ => break,
                    }
                }
                let (inputs, replies): (Vec<I>, Vec<oneshot::Sender<O>>) = batch.into_iter().unzip();
                let outputs = run(inputs).await;
                for (reply, out) in replies.into_iter().zip(outputs) {
                    let _ = reply.send(out);
                }
            }
        });
        (Self { tx }, handle)
    }

    /// Submits one item and waits for its answer; `None` if the loop is gone.
    pub async fn submit(&self, item: I) -> Option<O> {
        let (reply, answer) = oneshot::channel();
        self.tx.send((item, reply)).await.ok()?;
        answer.await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn concurrent_submissions_share_one_call_and_get_their_own_answers() {
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = calls.clone();
        let (b, _h) = Batcher::spawn(10, Duration::from_millis(50), move |xs: Vec<u32>| {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move { xs.into_iter().map(|x| x * 2).collect() }
        });
        let answers = futures_util::future::join_all((0..10).map(|i| {
            let b = b.clone();
            async move { b.submit(i).await }
        }))
        .await;
        assert_eq!(answers, (0..10).map(|i| Some(i * 2)).collect::<Vec<_>>());
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
