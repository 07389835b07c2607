//! What every command starts from: the configuration (the functions' variables, with the global
//! flags taking precedence) and the AWS adapters, built by the same wiring as the Lambda mains
//! ([`Aws`], [`Function::build`]).

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use lifecycle_fs::WorkspaceFs;
use lifecycle_ports::{AccessPoints, ArchiveStore, FailedBatches, Registry, WorkspaceTable};
use lifecycle_runtime::config::{
    ArchiveConfig, Config, Env, NO_CLUSTER, OBSERVE_VARS, SHARED_VARS,
};
use lifecycle_runtime::{Aws, Function};

use crate::cli::Global;

/// Whether a command may delete, which decides whether the in-use guard is required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reads or restores only: without `ECS_CLUSTER` it runs with no in-use guard, which it
    /// does not need.
    Read,
    /// Plans what a delete would do (changing nothing): `ECS_CLUSTER` is required (or `none`) as
    /// for the delete, so a plan never shows, without a word, what the guard would keep.
    Plan,
    /// Deletes: `ECS_CLUSTER` is required (or `none`), as for the functions.
    Delete,
}

pub struct Context {
    aws: Aws,
    /// Variables the global flags set, over the process environment.
    flags: HashMap<&'static str, String>,
    pub now: i64,
}

impl Context {
    /// Checks the environment as the functions do at start-up (a misspelled or blank setting
    /// stops here) and loads the SDK configuration.
    pub async fn new(global: &Global) -> Result<Self> {
        let names: Vec<String> = std::env::vars_os()
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect();
        Env::process().check(
            names.iter().map(String::as_str),
            &[
                SHARED_VARS,
                OBSERVE_VARS,
                heartbeat::Settings::VARS,
                efs_sweeper::Settings::VARS,
                ecr_pruner::Settings::VARS,
                storage_audit::Settings::OWN_VARS,
            ]
            .concat(),
        )?;
        let mut flags = HashMap::new();
        if let Some(table) = &global.table {
            flags.insert("WORKSPACE_TABLE", table.clone());
        }
        if let Some(root) = &global.efs_root {
            flags.insert("EFS_ROOT", root.display().to_string());
        }
        let aws = Aws::from_env_with(
            global.endpoint_url.as_deref(),
            global.region.as_deref(),
            global.profile.as_deref(),
        )
        .await;
        Ok(Self {
            aws,
            flags,
            now: lifecycle_domain::time::now_epoch(),
        })
    }

    /// The variables a command sees: `overrides`, then the flags, then the process environment;
    /// for [`Access::Read`], an unset `ECS_CLUSTER` reads as `none`.
    fn lookup<'a>(
        &'a self,
        access: Access,
        overrides: &'a [(&'static str, &'static str)],
    ) -> Env<impl Fn(&str) -> Option<String> + 'a> {
        Env(move |var: &str| {
            let value = overrides
                .iter()
                .find(|(name, _)| *name == var)
                .map(|(_, value)| value.to_string())
                .or_else(|| self.flags.get(var).cloned())
                .or_else(|| std::env::var_os(var).map(|v| v.to_string_lossy().into_owned()));
            match value {
                None if access == Access::Read && var == "ECS_CLUSTER" => {
                    Some(NO_CLUSTER.to_string())
                }
                value => value,
            }
        })
    }

    pub fn config(&self, access: Access) -> Result<Config> {
        Ok(Config::from(&self.lookup(access, &[]))?)
    }

    /// A function built exactly as its `main` builds it, from the command's variables.
    pub fn function<F: Function>(
        &self,
        access: Access,
        overrides: &[(&'static str, &'static str)],
    ) -> Result<F> {
        // The build error is the functions' one-line configuration message, kept as it is.
        F::build(&self.lookup(access, overrides), &self.aws).map_err(|e| anyhow::anyhow!("{e}"))
    }

    pub fn sweeper(&self, access: Access) -> Result<efs_sweeper::Sweeper> {
        let mut sweeper: efs_sweeper::Sweeper = self.function(access, &[])?;
        // A plan is a dry run whatever DRY_RUN says; apply does what it showed.
        sweeper.config.dry_run = access != Access::Delete;
        Ok(sweeper)
    }

    pub fn pruner(&self, repo: Option<&str>, access: Access) -> Result<ecr_pruner::Pruner> {
        // `--repo` names the repository instead of ECR_REPOSITORIES, which may then be unset.
        let overrides: &[(&str, &str)] = if repo.is_some() {
            &[("ECR_REPOSITORIES", "*")]
        } else {
            &[]
        };
        let mut pruner: ecr_pruner::Pruner = self.function(access, overrides)?;
        if let Some(repo) = repo {
            pruner.settings.repositories = vec![glob::Pattern::new(repo).context("--repo")?];
        }
        pruner.settings.dry_run = access != Access::Delete;
        Ok(pruner)
    }

    pub fn table(&self, config: &Config) -> Arc<dyn WorkspaceTable> {
        self.aws.table(config)
    }

    pub fn registry(&self) -> Arc<dyn Registry> {
        self.aws.registry()
    }

    pub fn access_points(&self) -> Arc<dyn AccessPoints> {
        self.aws.access_points()
    }

    pub fn failed_batches(&self, bucket: &str) -> Arc<dyn FailedBatches> {
        self.aws.failed_batches(bucket)
    }

    /// The SDK wiring, for adapters a command builds itself (the runs' ledger).
    pub fn aws(&self) -> &Aws {
        &self.aws
    }

    /// The archive bucket (`ARCHIVE_BUCKET`), if there is one.
    pub fn archive(&self) -> Result<Option<Arc<dyn ArchiveStore>>> {
        Ok(ArchiveConfig::from(&self.lookup(Access::Read, &[]))?
            .map(|archive| self.aws.archive(&archive.bucket)))
    }

    pub fn fs(&self, config: &Config) -> WorkspaceFs {
        WorkspaceFs::new(&config.efs_root)
    }
}
