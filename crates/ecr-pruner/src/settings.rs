//! ecr-pruner's settings (it reads no shared [`lifecycle_runtime::config::Config`]).

use lifecycle_domain::caps::Caps;
use lifecycle_domain::prune::{repository_caps, PrunePolicy};
use lifecycle_runtime::config::{ConfigError, Env, FanOutConfig};

#[derive(Debug, Clone)]
pub struct Settings {
    /// `ECR_REPOSITORIES` (required): names or globs, comma-separated; `*` says every repository,
    /// and only when said: the pruner acts on the repositories the operator names.
    pub repositories: Vec<glob::Pattern>,
    pub policy: PrunePolicy,
    /// `KEEP_TASK_DEFINITION_REVISIONS`: ACTIVE revisions per family whose images count as in use.
    pub keep_revisions: usize,
    /// `MAX_ACTIONS`: most deletes in one repository per run.
    pub max_actions: usize,
    /// `MAX_ACTION_PERCENT`: most deletes in one repository per run, as a percent of its images.
    pub max_action_percent: u32,
    pub dry_run: bool,
    /// `ECS_CLUSTERS`: only these clusters count for "in use" (default: every cluster).
    pub ecs_clusters: Option<Vec<String>>,
    /// `WORK_QUEUE_URL` and `RUNS_TABLE`: the scheduled run sends one unit per repository;
    /// `None`: one invocation prunes every repository.
    pub fan_out: Option<FanOutConfig>,
}

impl Settings {
    /// The variables the pruner reads.
    pub const VARS: &'static [&'static str] = &[
        "ECR_REPOSITORIES",
        "PRUNE_POLICY",
        "KEEP_TASK_DEFINITION_REVISIONS",
        "MAX_ACTIONS",
        "MAX_ACTION_PERCENT",
        "DRY_RUN",
        "ECS_CLUSTERS",
        "WORK_QUEUE_URL",
        "RUNS_TABLE",
        "RUN_VALID_HOURS",
    ];

    pub fn from<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let err = |var: &'static str, problem: String| ConfigError { var, problem };
        let repositories = env
            .required("ECR_REPOSITORIES")?
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|p| {
                glob::Pattern::new(p).map_err(|e| err("ECR_REPOSITORIES", format!("{p:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if repositories.is_empty() {
            return Err(err(
                "ECR_REPOSITORIES",
                "names no repository; name them (or `*` for every repository)".into(),
            ));
        }
        let policy = match env.get("PRUNE_POLICY")? {
            Some(text) => {
                PrunePolicy::from_json(&text).map_err(|e| err("PRUNE_POLICY", e.to_string()))?
            }
            None => PrunePolicy::default(),
        };
        Ok(Self {
            repositories,
            policy,
            keep_revisions: env.number("KEEP_TASK_DEFINITION_REVISIONS", 5, 0..=100)?,
            max_actions: env.number("MAX_ACTIONS", 1000, 0..=1_000_000)?,
            max_action_percent: env.number("MAX_ACTION_PERCENT", 100, 0..=100)?,
            dry_run: env.bool("DRY_RUN", false)?,
            ecs_clusters: env.get("ECS_CLUSTERS")?.map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            }),
            fan_out: FanOutConfig::from(env)?,
        })
    }

    /// The caps of each repository (the planner applies them: a plan is within its caps).
    pub fn caps(&self) -> Caps {
        repository_caps(self.max_actions, self.max_action_percent)
    }

    /// Whether repository `name` is one `ECR_REPOSITORIES` selects.
    pub fn selects(&self, name: &str) -> bool {
        self.repositories.iter().any(|p| p.matches(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifecycle_runtime::config::variables_read;

    #[test]
    fn every_variable_read_is_a_known_one() {
        let read = variables_read(|env| {
            // Every variable is looked up (and recorded) before the required one is supplied.
            let named =
                Env(|k: &str| (env.0)(k).or_else(|| (k == "ECR_REPOSITORIES").then(|| "*".into())));
            Settings::from(&named).unwrap()
        });
        assert!(!read.is_empty());
        for var in read {
            assert!(
                Settings::VARS.contains(&var.as_str()),
                "{var} is not in VARS"
            );
        }
    }
}
