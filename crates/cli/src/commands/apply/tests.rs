//! The apply flow on a job that records what it was asked to do: what is executed is the value
//! that was planned and shown, planned once; no answer but yes executes anything.

use std::cell::{Cell, RefCell};

use anyhow::{bail, Result};
use serde::Serialize;

use super::{apply, Apply};
use crate::confirm::Confirm;
use crate::render::Output;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Planned {
    /// Which planning made it: a second planning gives another value.
    generation: u32,
    changes: usize,
}

struct Recording {
    changes: usize,
    plans_made: Cell<u32>,
    executed: RefCell<Vec<Planned>>,
}

impl Recording {
    fn with(changes: usize) -> Self {
        Self {
            changes,
            plans_made: Cell::new(0),
            executed: RefCell::new(Vec::new()),
        }
    }
}

impl Apply for Recording {
    type Plan = Planned;
    type Summary = usize;
    const DOING: &'static str = "doing";

    async fn plan(&self, _now: i64) -> Result<Planned> {
        self.plans_made.set(self.plans_made.get() + 1);
        Ok(Planned {
            generation: self.plans_made.get(),
            changes: self.changes,
        })
    }
    fn render(plan: &Planned) -> String {
        format!("{plan:?}")
    }
    fn changes(plan: &Planned) -> usize {
        plan.changes
    }
    fn question(changes: usize) -> String {
        format!("do these {changes} things")
    }
    async fn execute(
        &self,
        plan: Planned,
        _now: i64,
        progress: &dyn lifecycle_runtime::progress::Progress,
    ) -> Result<usize> {
        progress.advance(1, 0);
        self.executed.borrow_mut().push(plan);
        Ok(self.executed.borrow().len())
    }
    fn render_summary(summary: &usize) -> String {
        format!("done {summary}")
    }
}

/// Answers every question the same way (or fails, as a missing terminal does), and keeps them.
struct Answer {
    yes: Result<bool, &'static str>,
    asked: Vec<String>,
}

impl Answer {
    fn new(yes: Result<bool, &'static str>) -> Self {
        Self {
            yes,
            asked: Vec::new(),
        }
    }
}

impl Confirm for Answer {
    fn confirm(&mut self, question: &str) -> Result<bool> {
        self.asked.push(question.to_string());
        match self.yes {
            Ok(yes) => Ok(yes),
            Err(why) => bail!("{why}"),
        }
    }
}

const TABLES: Output = Output { json: false };

#[tokio::test]
async fn the_plan_shown_and_confirmed_is_the_plan_executed() {
    let job = Recording::with(3);
    let mut answer = Answer::new(Ok(true));
    apply(&job, &mut answer, TABLES, 0).await.unwrap();
    assert_eq!(answer.asked, ["do these 3 things"]);
    assert_eq!(
        job.plans_made.get(),
        1,
        "planned once, not again after the answer"
    );
    assert_eq!(
        *job.executed.borrow(),
        [Planned {
            generation: 1,
            changes: 3
        }]
    );
}

#[tokio::test]
async fn no_answer_but_yes_executes_anything() {
    for (answer, refusal) in [
        (Ok(false), "not confirmed; nothing was done"),
        (Err("no terminal; pass --yes"), "no terminal; pass --yes"),
    ] {
        let job = Recording::with(2);
        let mut answer = Answer::new(answer);
        let e = apply(&job, &mut answer, TABLES, 0).await.unwrap_err();
        assert_eq!(e.to_string(), refusal);
        assert_eq!(answer.asked, ["do these 2 things"]);
        assert!(job.executed.borrow().is_empty());
    }
}

#[tokio::test]
async fn a_plan_that_changes_nothing_asks_nothing_and_executes_nothing() {
    let job = Recording::with(0);
    let mut answer = Answer::new(Ok(true));
    apply(&job, &mut answer, Output { json: true }, 0)
        .await
        .unwrap();
    assert!(answer.asked.is_empty());
    assert!(job.executed.borrow().is_empty());
}
