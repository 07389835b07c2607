//! Configuration from the environment, validated once at start-up. Every error names the variable
//! and what is wrong with it; a function with bad configuration never starts handling events.

use std::path::PathBuf;

use crate::access_point::{parse_root_prefix, AccessPointRules, Ownership};
use crate::retention::RetentionPolicy;

pub const DEFAULT_EFS_ROOT: &str = "/mnt/workspaces";
pub const DEFAULT_TRASH_GRACE_DAYS: u32 = 7;
pub const DEFAULT_RECORD_CONCURRENCY: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {var}: {problem}")]
pub struct ConfigError {
    pub var: &'static str,
    pub problem: String,
}

fn err(var: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        problem: problem.into(),
    }
}

/// Reads variables through a lookup function, so tests need not touch the process environment.
pub struct Env<F: Fn(&str) -> Option<String>>(pub F);

impl Env<fn(&str) -> Option<String>> {
    pub fn process() -> Self {
        Env(|k| std::env::var(k).ok())
    }
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// The trimmed value; an empty value counts as unset.
    pub fn get(&self, var: &str) -> Option<String> {
        (self.0)(var)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    pub fn required(&self, var: &'static str) -> Result<String, ConfigError> {
        self.get(var)
            .ok_or_else(|| err(var, "is required but not set"))
    }

    pub fn bool(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(var).as_deref() {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(other) => Err(err(var, format!("{other:?} is not true or false"))),
        }
    }

    pub fn number<T>(
        &self,
        var: &'static str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        let Some(text) = self.get(var) else {
            return Ok(default);
        };
        let value: T = text
            .parse()
            .map_err(|_| err(var, format!("{text:?} is not a whole number")))?;
        if !range.contains(&value) {
            return Err(err(
                var,
                format!(
                    "{value} is out of range {}..={}",
                    range.start(),
                    range.end()
                ),
            ));
        }
        Ok(value)
    }
}

/// Settings every function shares (README, "Configuration").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub table: String,
    pub efs_root: PathBuf,
    pub efs_file_system_id: Option<String>,
    pub ecs_cluster: Option<String>,
    pub trash_grace_days: u32,
    pub dry_run: bool,
    pub retention: RetentionPolicy,
    pub record_concurrency: usize,
    /// Which access points are workspace access points (`ACCESS_POINT_ROOT_PREFIX`,
    /// `OWN_ACCESS_POINT_ID`, `ACCESS_POINT_OWNERSHIP`).
    pub access_points: AccessPointRules,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from(&Env::process())
    }

    pub fn from<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let table = env.required("WORKSPACE_TABLE")?;
        if !(3..=255).contains(&table.len())
            || !table
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(err(
                "WORKSPACE_TABLE",
                format!("{table:?} is not a DynamoDB table name (3-255 of A-Z a-z 0-9 _ - .)"),
            ));
        }
        let efs_root = PathBuf::from(
            env.get("EFS_ROOT")
                .unwrap_or_else(|| DEFAULT_EFS_ROOT.into()),
        );
        if !efs_root.is_absolute() {
            return Err(err(
                "EFS_ROOT",
                format!("{} is not an absolute path", efs_root.display()),
            ));
        }
        let efs_file_system_id = env.get("EFS_FILE_SYSTEM_ID");
        if let Some(id) = &efs_file_system_id {
            let hex = id.strip_prefix("fs-").unwrap_or("");
            if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(err(
                    "EFS_FILE_SYSTEM_ID",
                    format!("{id:?} is not an EFS file system id (fs-…)"),
                ));
            }
        }
        let retention = match env.get("RETENTION_POLICY") {
            None => RetentionPolicy::default(),
            Some(text) => RetentionPolicy::from_json(&text)
                .map_err(|e| err("RETENTION_POLICY", e.to_string()))?,
        };
        Ok(Self {
            table,
            efs_root,
            efs_file_system_id,
            ecs_cluster: env.get("ECS_CLUSTER"),
            trash_grace_days: env.number("TRASH_GRACE_DAYS", DEFAULT_TRASH_GRACE_DAYS, 0..=3650)?,
            dry_run: env.bool("DRY_RUN", false)?,
            retention,
            record_concurrency: env.number(
                "RECORD_CONCURRENCY",
                DEFAULT_RECORD_CONCURRENCY,
                1..=64,
            )?,
            access_points: access_point_rules(env)?,
        })
    }
}

fn access_point_rules<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<AccessPointRules, ConfigError> {
    let root_prefix = match env.get("ACCESS_POINT_ROOT_PREFIX") {
        None => String::new(),
        Some(text) => parse_root_prefix(&text).map_err(|p| err("ACCESS_POINT_ROOT_PREFIX", p))?,
    };
    let own_id = env.get("OWN_ACCESS_POINT_ID");
    if let Some(id) = &own_id {
        let hex = id.strip_prefix("fsap-").unwrap_or("");
        if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(err(
                "OWN_ACCESS_POINT_ID",
                format!("{id:?} is not an access point id (fsap-…)"),
            ));
        }
    }
    let ownership = match env.get("ACCESS_POINT_OWNERSHIP").as_deref() {
        None | Some("tag-or-root") => Ownership::TagOrRoot,
        Some("tag") => Ownership::Tag,
        Some(other) => {
            return Err(err(
                "ACCESS_POINT_OWNERSHIP",
                format!("{other:?} is not tag-or-root or tag"),
            ))
        }
    };
    Ok(AccessPointRules {
        root_prefix,
        own_id,
        ownership,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from(&Env(move |k: &str| map.get(k).cloned()))
    }

    #[test]
    fn defaults() {
        let c = config(&[("WORKSPACE_TABLE", "workspaces")]).unwrap();
        assert_eq!(c.efs_root, PathBuf::from("/mnt/workspaces"));
        assert_eq!(c.trash_grace_days, 7);
        assert!(!c.dry_run);
        assert_eq!(c.ecs_cluster, None);
        assert_eq!(c.retention, RetentionPolicy::default());
        assert_eq!(c.access_points, AccessPointRules::default());
    }

    #[test]
    fn access_point_settings() {
        let c = config(&[
            ("WORKSPACE_TABLE", "workspaces"),
            ("ACCESS_POINT_ROOT_PREFIX", "/workspaces/"),
            ("OWN_ACCESS_POINT_ID", "fsap-0123abcd"),
            ("ACCESS_POINT_OWNERSHIP", "tag"),
        ])
        .unwrap();
        assert_eq!(
            c.access_points,
            AccessPointRules {
                root_prefix: "/workspaces".into(),
                own_id: Some("fsap-0123abcd".into()),
                ownership: Ownership::Tag,
            }
        );
        let root = config(&[
            ("WORKSPACE_TABLE", "workspaces"),
            ("ACCESS_POINT_ROOT_PREFIX", "/"),
        ])
        .unwrap();
        assert_eq!(root.access_points.root_prefix, "");
        for (var, value) in [
            ("ACCESS_POINT_ROOT_PREFIX", "workspaces"),
            ("ACCESS_POINT_ROOT_PREFIX", "/a/../b"),
            ("OWN_ACCESS_POINT_ID", "fs-0123"),
            ("ACCESS_POINT_OWNERSHIP", "root"),
        ] {
            let e = config(&[("WORKSPACE_TABLE", "workspaces"), (var, value)])
                .unwrap_err()
                .to_string();
            assert!(e.contains(var), "{e}");
        }
    }

    #[test]
    fn errors_name_the_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "WORKSPACE_TABLE: is required"),
            (&[("WORKSPACE_TABLE", "a b")], "WORKSPACE_TABLE: \"a b\""),
            (
                &[("WORKSPACE_TABLE", "t12"), ("DRY_RUN", "yes")],
                "DRY_RUN: \"yes\" is not true or false",
            ),
            (
                &[("WORKSPACE_TABLE", "t12"), ("TRASH_GRACE_DAYS", "-1")],
                "TRASH_GRACE_DAYS: \"-1\"",
            ),
            (
                &[("WORKSPACE_TABLE", "t12"), ("EFS_ROOT", "rel/path")],
                "EFS_ROOT: rel/path is not an absolute",
            ),
            (
                &[("WORKSPACE_TABLE", "t12"), ("EFS_FILE_SYSTEM_ID", "fsap-1")],
                "EFS_FILE_SYSTEM_ID",
            ),
            (
                &[("WORKSPACE_TABLE", "t12"), ("RETENTION_POLICY", "{")],
                "RETENTION_POLICY: EOF",
            ),
        ];
        for (pairs, expected) in cases {
            let e = config(pairs).unwrap_err().to_string();
            assert!(e.contains(expected), "{e} should contain {expected}");
        }
    }
}
