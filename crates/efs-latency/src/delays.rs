//! Which operation waits how long, and what was served.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::Serialize;

/// The operations the model tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lookup,
    Getattr,
    Setattr,
    Opendir,
    Readdir,
    Open,
    Read,
    Write,
    Create,
    Mkdir,
    Symlink,
    Unlink,
    Rmdir,
    Rename,
    Statfs,
}

impl Op {
    pub const ALL: [Op; 15] = [
        Op::Lookup,
        Op::Getattr,
        Op::Setattr,
        Op::Opendir,
        Op::Readdir,
        Op::Open,
        Op::Read,
        Op::Write,
        Op::Create,
        Op::Mkdir,
        Op::Symlink,
        Op::Unlink,
        Op::Rmdir,
        Op::Rename,
        Op::Statfs,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::Lookup => "lookup",
            Op::Getattr => "getattr",
            Op::Setattr => "setattr",
            Op::Opendir => "opendir",
            Op::Readdir => "readdir",
            Op::Open => "open",
            Op::Read => "read",
            Op::Write => "write",
            Op::Create => "create",
            Op::Mkdir => "mkdir",
            Op::Symlink => "symlink",
            Op::Unlink => "unlink",
            Op::Rmdir => "rmdir",
            Op::Rename => "rename",
            Op::Statfs => "statfs",
        }
    }

    pub fn parse(s: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.name() == s)
    }

    /// Metadata writes are commits on the server (EFS: durable across AZs); reads are answered
    /// from its metadata cache.
    fn is_write(self) -> bool {
        matches!(
            self,
            Op::Setattr
                | Op::Write
                | Op::Create
                | Op::Mkdir
                | Op::Symlink
                | Op::Unlink
                | Op::Rmdir
                | Op::Rename
        )
    }
}

/// The delay of each operation, and counts of what was served.
pub struct Delays {
    delay: [Duration; Op::ALL.len()],
    count: [AtomicU64; Op::ALL.len()],
    delayed_us: AtomicU64,
}

#[derive(Serialize)]
pub struct Served {
    /// Operations served, by kind (only kinds seen).
    pub ops: std::collections::BTreeMap<&'static str, u64>,
    pub total_ops: u64,
    /// The sum of every operation's delay: divided by the concurrency, the least wall time.
    pub delayed_us: u64,
    pub delay_us: std::collections::BTreeMap<&'static str, u64>,
}

impl Delays {
    pub fn efs_like(read_us: u64, write_us: u64) -> Self {
        Self {
            delay: Op::ALL
                .map(|op| Duration::from_micros(if op.is_write() { write_us } else { read_us })),
            count: Default::default(),
            delayed_us: AtomicU64::new(0),
        }
    }

    pub fn set(&mut self, op: Op, delay: Duration) {
        self.delay[op as usize] = delay;
    }

    /// Counts one `op` and returns how long its reply waits.
    pub fn serve(&self, op: Op) -> Duration {
        let d = self.delay[op as usize];
        self.count[op as usize].fetch_add(1, Relaxed);
        self.delayed_us.fetch_add(d.as_micros() as u64, Relaxed);
        d
    }

    pub fn served(&self) -> Served {
        let mut ops = std::collections::BTreeMap::new();
        let mut total_ops = 0;
        for op in Op::ALL {
            let n = self.count[op as usize].load(Relaxed);
            total_ops += n;
            if n > 0 {
                ops.insert(op.name(), n);
            }
        }
        Served {
            ops,
            total_ops,
            delayed_us: self.delayed_us.load(Relaxed),
            delay_us: Op::ALL
                .into_iter()
                .map(|op| (op.name(), self.delay[op as usize].as_micros() as u64))
                .collect(),
        }
    }
}
