//! Holds replies until their time: one thread, a heap of deadlines. Any number of replies wait
//! at once, so concurrent operations' delays overlap.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

type Send = Box<dyn FnOnce() + std::marker::Send>;

struct Due {
    at: Instant,
    seq: u64,
    send: Send,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    // Reversed: the earliest deadline on top of the max-heap.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Due>,
    seq: u64,
}

#[derive(Clone)]
pub struct Timer {
    inner: Arc<(Mutex<Queue>, Condvar)>,
}

impl Timer {
    pub fn start() -> Self {
        let timer = Timer {
            inner: Arc::new((Mutex::new(Queue::default()), Condvar::new())),
        };
        let t = timer.clone();
        std::thread::Builder::new()
            .name("efs-latency-timer".into())
            .spawn(move || t.run())
            .expect("timer thread");
        timer
    }

    /// Runs `send` (a reply) `delay` from now; at once when there is no delay.
    pub fn after(&self, delay: Duration, send: impl FnOnce() + std::marker::Send + 'static) {
        if delay.is_zero() {
            send();
            return;
        }
        let at = Instant::now() + delay;
        let (lock, cv) = &*self.inner;
        let mut q = lock.lock().unwrap_or_else(|e| e.into_inner());
        q.seq += 1;
        let seq = q.seq;
        let earliest = q.heap.peek().is_none_or(|d| at < d.at);
        q.heap.push(Due {
            at,
            seq,
            send: Box::new(send),
        });
        drop(q);
        if earliest {
            cv.notify_one();
        }
    }

    fn run(self) {
        // Wake within a microsecond of a deadline, not the default 50 us slack.
        // SAFETY: prctl with integer arguments only.
        unsafe {
            libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
        }
        let (lock, cv) = &*self.inner;
        let mut due = Vec::new();
        loop {
            let mut q = lock.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                let now = Instant::now();
                match q.heap.peek() {
                    Some(d) if d.at <= now => {
                        while q.heap.peek().is_some_and(|d| d.at <= now) {
                            due.push(q.heap.pop().expect("peeked").send);
                        }
                        break;
                    }
                    Some(d) => {
                        let wait = d.at - now;
                        q = cv
                            .wait_timeout(q, wait)
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                    }
                    None => q = cv.wait(q).unwrap_or_else(|e| e.into_inner()),
                }
            }
            drop(q);
            for send in due.drain(..) {
                send();
            }
        }
    }
}
