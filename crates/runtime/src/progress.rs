//! Where a long execution says how far it is: the CLI draws a progress bar from it; in Lambda
//! nobody watches, and [`Silent`] is passed.

/// Told after each step of an execution: how many steps finished with it (done or not) and the
/// bytes they freed.
pub trait Progress: Send + Sync {
    fn advance(&self, steps: u64, bytes_freed: u64);
}

/// Nobody watching.
pub struct Silent;

impl Progress for Silent {
    fn advance(&self, _steps: u64, _bytes_freed: u64) {}
}
