//! The purge's deleter, started at the first purge. Its worker threads (`DELETE_CONCURRENCY`, 64
//! by default) cost every start 6 ms of CPU and 1.7 MiB (measured, `make bench`), and most runs
//! purge nothing.

use std::sync::{Arc, Mutex};

use lifecycle_fs::FsError;
use tree_deleter::ParallelDeleter;

pub struct LazyDeleter {
    workers: usize,
    started: Mutex<Option<Arc<ParallelDeleter>>>,
}

impl LazyDeleter {
    /// A deleter of `workers` threads, none started yet.
    pub fn new(workers: usize) -> Self {
        Self {
            workers,
            started: Mutex::new(None),
        }
    }

    /// The deleter, its threads started on the first call. A failure to start them is the
    /// purge's file-system error (tried again at the next purge).
    pub fn get(&self) -> Result<Arc<ParallelDeleter>, FsError> {
        let mut started = self.started.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(deleter) = started.as_ref() {
            return Ok(deleter.clone());
        }
        let deleter = Arc::new(
            ParallelDeleter::new(self.workers).map_err(|source| FsError {
                op: "start the deleter's workers",
                path: Default::default(),
                source,
            })?,
        );
        *started = Some(deleter.clone());
        Ok(deleter)
    }
}

/// One already started (tests).
impl From<ParallelDeleter> for LazyDeleter {
    fn from(deleter: ParallelDeleter) -> Self {
        Self {
            workers: 0,
            started: Mutex::new(Some(Arc::new(deleter))),
        }
    }
}
