//! efs-sweeper's own settings, beside the shared [`lifecycle_runtime::config::Config`].

use lifecycle_domain::sweep::SweepRules;
use lifecycle_runtime::config::{ArchiveConfig, Config, ConfigError, Env, FanOutConfig};
use tree_deleter::{DEFAULT_DELETE_WORKERS, MAX_DELETE_WORKERS};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub orphan_min_age_hours: u32,
    pub max_actions: usize,
    pub max_action_percent: u32,
    pub max_purge_percent: u32,
    pub delete_concurrency: usize,
    /// `ARCHIVE_BUCKET` and `ARCHIVE_POLICY`: `None` (unset) purges trash as before.
    pub archive: Option<ArchiveConfig>,
    /// `WORK_QUEUE_URL` and `RUNS_TABLE`: the scheduled run plans and sends units, workers act.
    /// `None`: one invocation plans and acts.
    pub fan_out: Option<FanOutConfig>,
    /// `UNIT_MAX_ACTIONS`: orphan moves (one tenant's) or access point actions in one unit.
    pub unit_max_actions: usize,
}

/// A weekly run with a 7-day grace finds about half the trash due; all of it says the clock or
/// `TRASH_GRACE_DAYS` is wrong.
pub const DEFAULT_MAX_PURGE_PERCENT: u32 = 75;

impl Settings {
    /// The variables the sweeper reads beside [`lifecycle_runtime::config::SHARED_VARS`].
    pub const VARS: &'static [&'static str] = &[
        "ORPHAN_MIN_AGE_HOURS",
        "MAX_ACTIONS",
        "MAX_ACTION_PERCENT",
        "MAX_PURGE_PERCENT",
        "DELETE_CONCURRENCY",
        "ARCHIVE_BUCKET",
        "ARCHIVE_POLICY",
        "WORK_QUEUE_URL",
        "RUNS_TABLE",
        "RUN_VALID_HOURS",
        "UNIT_MAX_ACTIONS",
    ];

    pub fn from<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            orphan_min_age_hours: env.number("ORPHAN_MIN_AGE_HOURS", 24, 1..=8760)?,
            max_actions: env.number("MAX_ACTIONS", 100, 0..=1_000_000)?,
            max_action_percent: env.number("MAX_ACTION_PERCENT", 20, 0..=100)?,
            max_purge_percent: env.number(
                "MAX_PURGE_PERCENT",
                DEFAULT_MAX_PURGE_PERCENT,
                0..=100,
            )?,
            delete_concurrency: env.number(
                "DELETE_CONCURRENCY",
                DEFAULT_DELETE_WORKERS,
                1..=MAX_DELETE_WORKERS,
            )?,
            archive: ArchiveConfig::from(env)?,
            fan_out: FanOutConfig::from(env)?,
            unit_max_actions: env.number("UNIT_MAX_ACTIONS", 50, 1..=1000)?,
        })
    }

    /// The planner's rules: grace and age from `config` and these settings, and the caps
    /// ([`SweepRules::purge_caps`], [`SweepRules::orphan_caps`]).
    pub fn rules(&self, config: &Config) -> SweepRules {
        SweepRules {
            trash_grace_days: config.trash_grace_days,
            orphan_min_age_hours: self.orphan_min_age_hours,
            max_actions: self.max_actions,
            max_action_percent: self.max_action_percent,
            max_purge_percent: self.max_purge_percent,
            file_system_id: config.efs_file_system_id.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifecycle_runtime::config::variables_read;

    #[test]
    fn every_variable_read_is_a_known_one() {
        let read = variables_read(|env| Settings::from(env).unwrap());
        assert!(!read.is_empty());
        for var in read {
            assert!(
                Settings::VARS.contains(&var.as_str()),
                "{var} is not in VARS"
            );
        }
    }
}
