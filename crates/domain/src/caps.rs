//! Per-run caps on destructive actions (pure), one rule for every planner.
//!
//! A cap is the brake for a run that sees the world wrong: a wrong table or a failed listing read
//! as empty makes everything look orphaned, a wrong clock makes everything look expired. Over its
//! cap a group of actions is not done at all (doing "some" of a wrong plan is still wrong), each
//! of them is reported `skipped_cap`, and the plan says which cap tripped and by how much. The
//! planners apply the caps, so a plan that is shown is a plan within its caps.

use std::fmt;

use serde::Serialize;

/// The setting a percentage cap enforces (named as in the environment, for the message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PercentSetting {
    MaxActionPercent,
    MaxPurgePercent,
}

crate::serde_codes!(PercentSetting);

/// The sweeper's floor for a percentage cap: one orphan among three workspaces is 33%, but no
/// sign of a misconfigured table. Below this many candidates of a kind, only `MAX_ACTIONS`
/// applies.
pub const MIN_POPULATION_FOR_PERCENT: usize = 10;

/// The caps of one group of actions (one kind of the sweep, one repository of the prune).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// `MAX_ACTIONS`: at most this many actions of the group in one run.
    pub max_actions: usize,
    /// At most this percent of the population the group comes from.
    pub max_percent: u32,
    /// The setting `max_percent` comes from.
    pub percent_setting: PercentSetting,
    /// Below this population the percentage cap does not apply (0: it always applies).
    pub min_population: usize,
}

/// Which cap tripped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    MaxActions(usize),
    Percent(PercentSetting, u32),
}

/// Why a group of actions is over its cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapExceeded {
    /// What was counted ("trash purges", "images to delete").
    pub kind: &'static str,
    pub count: usize,
    pub population: usize,
    pub limit: Limit,
}

impl fmt::Display for CapExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            kind,
            count,
            population,
            limit,
        } = self;
        match limit {
            Limit::MaxActions(max) => write!(f, "{count} {kind} exceed MAX_ACTIONS={max}"),
            Limit::Percent(setting, max) => write!(
                f,
                "{count} of {population} {kind} exceed {}={max}",
                setting.as_str()
            ),
        }
    }
}

/// A group of planned actions after its caps: all allowed, or (over a cap) all skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capped<T> {
    pub allowed: Vec<T>,
    /// To be reported with the planner's `skipped_cap` reason.
    pub skipped: Vec<T>,
    pub exceeded: Option<CapExceeded>,
}

impl Caps {
    /// Whether `count` actions out of `population` candidates are over a cap: the count first,
    /// then the share (from `min_population` candidates on).
    pub fn check(
        &self,
        kind: &'static str,
        count: usize,
        population: usize,
    ) -> Option<CapExceeded> {
        let exceeded = |limit| {
            Some(CapExceeded {
                kind,
                count,
                population,
                limit,
            })
        };
        if count > self.max_actions {
            return exceeded(Limit::MaxActions(self.max_actions));
        }
        let share_applies = population >= self.min_population;
        if share_applies && count * 100 > population * self.max_percent as usize {
            return exceeded(Limit::Percent(self.percent_setting, self.max_percent));
        }
        None
    }

    /// Splits the planned destructive `actions` of one group, drawn from `population`
    /// candidates, into what the caps allow and what they skip.
    pub fn apply<T>(&self, kind: &'static str, actions: Vec<T>, population: usize) -> Capped<T> {
        match self.check(kind, actions.len(), population) {
            None => Capped {
                allowed: actions,
                skipped: Vec::new(),
                exceeded: None,
            },
            Some(why) => Capped {
                allowed: Vec::new(),
                skipped: actions,
                exceeded: Some(why),
            },
        }
    }
}

/// One line for every cap that tripped (`None` when none did), as plans and summaries show it.
pub fn describe(exceeded: &[CapExceeded]) -> Option<String> {
    (!exceeded.is_empty()).then(|| {
        exceeded
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn caps(max_actions: usize, max_percent: u32, min_population: usize) -> Caps {
        Caps {
            max_actions,
            max_percent,
            percent_setting: PercentSetting::MaxActionPercent,
            min_population,
        }
    }

    #[test]
    fn the_count_is_checked_before_the_share() {
        let why = caps(5, 10, 0).check("things", 6, 10).unwrap();
        assert_eq!(why.to_string(), "6 things exceed MAX_ACTIONS=5");
        let why = caps(100, 50, 0).check("things", 6, 10).unwrap();
        assert_eq!(
            why.to_string(),
            "6 of 10 things exceed MAX_ACTION_PERCENT=50"
        );
        assert_eq!(caps(100, 60, 0).check("things", 6, 10), None);
    }

    #[test]
    fn the_share_needs_its_population() {
        // Two of three is 66%: no sign of a wrong table with the sweeper's floor of ten.
        assert_eq!(
            caps(100, 20, MIN_POPULATION_FOR_PERCENT).check("x", 2, 3),
            None
        );
        assert!(caps(100, 20, MIN_POPULATION_FOR_PERCENT)
            .check("x", 3, 10)
            .is_some());
        // Without a floor (the pruner's), the share always applies.
        assert!(caps(100, 20, 0).check("x", 2, 3).is_some());
    }

    #[test]
    fn over_a_cap_nothing_of_the_group_is_allowed() {
        let capped = caps(2, 100, 0).apply("x", vec!['a', 'b', 'c'], 3);
        assert!(capped.allowed.is_empty());
        assert_eq!(capped.skipped, vec!['a', 'b', 'c']);
        let purge = Caps {
            percent_setting: PercentSetting::MaxPurgePercent,
            ..caps(100, 50, 0)
        };
        assert_eq!(
            describe(&[
                caps(2, 100, 0).check("x", 3, 3).unwrap(),
                purge.check("y", 3, 4).unwrap()
            ])
            .unwrap(),
            "3 x exceed MAX_ACTIONS=2; 3 of 4 y exceed MAX_PURGE_PERCENT=50"
        );
        assert_eq!(describe(&[]), None);
    }

    proptest! {
        /// Allowed and skipped partition the group, one of them empty; allowed means within both
        /// caps.
        #[test]
        fn a_group_is_allowed_whole_or_skipped_whole(
            n in 0usize..40, population in 0usize..60, max in 0usize..30, pct in 0u32..=100, floor in 0usize..15,
        ) {
            let c = caps(max, pct, floor);
            let capped = c.apply("x", (0..n).collect(), population);
            prop_assert_eq!(capped.allowed.len() + capped.skipped.len(), n);
            prop_assert!(capped.allowed.is_empty() || capped.skipped.is_empty());
            prop_assert_eq!(capped.exceeded.is_some(), !capped.skipped.is_empty());
            if !capped.allowed.is_empty() {
                prop_assert!(n <= max);
                prop_assert!(population < floor || n * 100 <= population * pct as usize);
            }
        }
    }
}
