//! Per-item logic lifted to a batch, as the Lambda runtime's partial-batch examples do: a handler
//! is written for one item and [`Batch::run`] runs it over many, concurrently but safely.
//!
//! - Items of one key (a workspace) run one after the other in their input order, so a later
//!   change of a workspace never overtakes an earlier one; different keys run concurrently, at
//!   most `concurrency` at a time.
//! - After an item of a key fails (an error or a panic), the key's later items are not started:
//!   they would act on a state the failed item did not leave.
//! - A panic is that item's failure, never the batch's or the process's (the release profile
//!   unwinds).
//! - Items not started before the deadline are not started at all, and reported.
//!
//! The caller gets every item's identifier with how it settled, in input order, and
//! [`Report::failed`] for what to report back (e.g. `batchItemFailures`).

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::panic::AssertUnwindSafe;
use std::time::Instant;

use futures::stream::{self, StreamExt};
use futures::FutureExt;

/// How one item ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled<R, E> {
    /// The handler returned `Ok`.
    Done(R),
    /// The handler returned `Err`.
    Failed(E),
    /// The handler panicked (the panic's message).
    Panicked(String),
    /// Not started: an earlier item of the same key failed.
    AfterFailure,
    /// Not started: the deadline had passed.
    PastDeadline,
}

impl<R, E> Settled<R, E> {
    /// Everything but [`Settled::Done`] is a failure the caller reports (for a retry).
    pub fn is_failure(&self) -> bool {
        !matches!(self, Settled::Done(_))
    }
}

/// Every item's identifier and how it settled, in input order.
#[derive(Debug)]
pub struct Report<I, R, E> {
    pub settled: Vec<(I, Settled<R, E>)>,
}

impl<I, R, E> Report<I, R, E> {
    /// The identifiers of the items that did not end in [`Settled::Done`], in input order.
    pub fn failed(&self) -> impl Iterator<Item = &I> {
        self.settled
            .iter()
            .filter(|(_, s)| s.is_failure())
            .map(|(id, _)| id)
    }
}

/// The limits a batch runs under.
#[derive(Debug, Clone, Copy)]
pub struct Batch {
    /// Keys handled at the same time (at least 1).
    pub concurrency: usize,
    /// No item starts at or after this instant.
    pub deadline: Option<Instant>,
}

impl Batch {
    pub fn new(concurrency: usize, deadline: Option<Instant>) -> Self {
        Self {
            concurrency,
            deadline,
        }
    }

    /// Runs `handle` on every item. `key` groups items that must keep their order; `id` is what
    /// the report names an item by.
    pub async fn run<T, K, I, R, E, Fut>(
        &self,
        items: Vec<T>,
        key: impl Fn(&T) -> K,
        id: impl Fn(&T) -> I,
        handle: impl Fn(T) -> Fut,
    ) -> Report<I, R, E>
    where
        K: Eq + Hash,
        Fut: Future<Output = Result<R, E>>,
    {
        // Groups in order of first appearance; each keeps its items' input positions.
        let mut groups: Vec<Vec<(usize, T)>> = Vec::new();
        let mut group_of: HashMap<K, usize> = HashMap::new();
        for (position, item) in items.into_iter().enumerate() {
            let group = *group_of.entry(key(&item)).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[group].push((position, item));
        }
        let (id, handle) = (&id, &handle);
        let mut settled: Vec<(usize, I, Settled<R, E>)> = stream::iter(groups)
            .map(|group| self.run_group(group, id, handle))
            .buffer_unordered(self.concurrency.max(1))
            .flat_map(stream::iter)
            .collect()
            .await;
        settled.sort_by_key(|(position, _, _)| *position);
        Report {
            settled: settled.into_iter().map(|(_, i, s)| (i, s)).collect(),
        }
    }

    /// One key's items, in order, stopping after the first failure.
    async fn run_group<T, I, R, E, Fut>(
        &self,
        group: Vec<(usize, T)>,
        id: &impl Fn(&T) -> I,
        handle: &impl Fn(T) -> Fut,
    ) -> Vec<(usize, I, Settled<R, E>)>
    where
        Fut: Future<Output = Result<R, E>>,
    {
        let mut out = Vec::with_capacity(group.len());
        let mut failed = false;
        for (position, item) in group {
            let name = id(&item);
            let settled = if failed {
                Settled::AfterFailure
            } else if self.deadline.is_some_and(|d| Instant::now() >= d) {
                Settled::PastDeadline
            } else {
                match AssertUnwindSafe(handle(item)).catch_unwind().await {
                    Ok(Ok(done)) => Settled::Done(done),
                    Ok(Err(e)) => Settled::Failed(e),
                    Err(panic) => Settled::Panicked(panic_message(&*panic)),
                }
            };
            failed |= settled.is_failure();
            out.push((position, name, settled));
        }
        out
    }
}

/// The text a panic was raised with.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    use std::time::Duration;

    /// `(key, name)` items; the handler logs each start and end, and fails or panics by name.
    fn items(list: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        list.to_vec()
    }

    async fn yield_a_few() {
        for _ in 0..5 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn items_of_one_key_keep_their_order_and_keys_run_concurrently() {
        let log = Mutex::new(Vec::new());
        let (in_flight, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let batch = Batch::new(2, None);
        let report = batch
            .run(
                items(&[
                    ("a", "a1"),
                    ("b", "b1"),
                    ("a", "a2"),
                    ("c", "c1"),
                    ("a", "a3"),
                ]),
                |(k, _)| *k,
                |(_, n)| *n,
                |(_, n)| {
                    let (log, in_flight, most) = (&log, &in_flight, &most);
                    async move {
                        let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        log.lock().unwrap().push(format!("start {n}"));
                        // Gives every other group the chance to run ahead of this item.
                        yield_a_few().await;
                        log.lock().unwrap().push(format!("end {n}"));
                        in_flight.fetch_sub(1, Ordering::SeqCst);
                        Ok::<_, ()>(n.len())
                    }
                },
            )
            .await;
        let names: Vec<_> = report.settled.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["a1", "b1", "a2", "c1", "a3"], "input order");
        assert!(report.failed().next().is_none());
        let log = log.into_inner().unwrap();
        let at = |what: &str| log.iter().position(|l| l == what).unwrap();
        assert!(
            at("end a1") < at("start a2") && at("end a2") < at("start a3"),
            "{log:?}"
        );
        assert!(
            at("start b1") < at("end a1"),
            "keys ran concurrently: {log:?}"
        );
        assert_eq!(most.load(Ordering::SeqCst), 2, "never more than the limit");
    }

    #[tokio::test]
    async fn a_failure_stops_its_key_only() {
        let started = Mutex::new(Vec::new());
        let report = Batch::new(4, None)
            .run(
                items(&[
                    ("a", "a1"),
                    ("a", "a2"),
                    ("b", "b1"),
                    ("a", "a3"),
                    ("b", "b2"),
                ]),
                |(k, _)| *k,
                |(_, n)| *n,
                |(_, n)| {
                    started.lock().unwrap().push(n);
                    async move {
                        if n == "a2" {
                            Err(format!("{n} failed"))
                        } else {
                            Ok(())
                        }
                    }
                },
            )
            .await;
        assert_eq!(
            report.settled,
            vec![
                ("a1", Settled::Done(())),
                ("a2", Settled::Failed("a2 failed".to_string())),
                ("b1", Settled::Done(())),
                ("a3", Settled::AfterFailure),
                ("b2", Settled::Done(())),
            ]
        );
        assert!(!started.lock().unwrap().contains(&"a3"), "never started");
        assert_eq!(report.failed().copied().collect::<Vec<_>>(), ["a2", "a3"]);
    }

    #[tokio::test]
    async fn a_panic_is_its_item_failure() {
        let report = Batch::new(2, None)
            .run(
                items(&[("a", "boom"), ("a", "after"), ("b", "fine")]),
                |(k, _)| *k,
                |(_, n)| *n,
                |(_, n)| async move {
                    yield_a_few().await;
                    assert_ne!(n, "boom", "injected panic");
                    Ok::<_, ()>(())
                },
            )
            .await;
        let Settled::Panicked(message) = &report.settled[0].1 else {
            panic!("{:?}", report.settled)
        };
        assert!(message.contains("injected panic"), "{message}");
        assert_eq!(report.settled[1], ("after", Settled::AfterFailure));
        assert_eq!(report.settled[2], ("fine", Settled::Done(())));
    }

    #[tokio::test]
    async fn nothing_starts_after_the_deadline() {
        let started = AtomicUsize::new(0);
        let past = Instant::now();
        let report = Batch::new(2, Some(past))
            .run(
                items(&[("a", "a1"), ("b", "b1")]),
                |(k, _)| *k,
                |(_, n)| *n,
                |_| {
                    started.fetch_add(1, Ordering::SeqCst);
                    async { Ok::<_, ()>(()) }
                },
            )
            .await;
        assert_eq!(started.load(Ordering::SeqCst), 0);
        assert!(report
            .settled
            .iter()
            .all(|(_, s)| *s == Settled::PastDeadline));
        // A deadline still ahead lets everything run.
        let later = Instant::now() + Duration::from_secs(3600);
        let report = Batch::new(2, Some(later))
            .run(
                items(&[("a", "a1"), ("b", "b1")]),
                |(k, _)| *k,
                |(_, n)| *n,
                |_| async { Ok::<_, ()>(()) },
            )
            .await;
        assert!(report.failed().next().is_none());
    }
}
