//! Configuration from the environment, validated once at start-up. Every error names the variable
//! and what is wrong with it; a function with bad configuration never starts handling events.

use std::path::PathBuf;

use lifecycle_domain::access_point::{parse_root_prefix, AccessPointRules, Ownership};
use lifecycle_domain::archive::ArchivePolicy;
use lifecycle_domain::retention::RetentionPolicy;

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

/// The variables every function reads through [`Config`] (each function adds its own).
pub const SHARED_VARS: &[&str] = &[
    "WORKSPACE_TABLE",
    "EFS_ROOT",
    "EFS_FILE_SYSTEM_ID",
    "ECS_CLUSTER",
    "TRASH_GRACE_DAYS",
    "DRY_RUN",
    "RETENTION_POLICY",
    "RECORD_CONCURRENCY",
    "ACCESS_POINT_ROOT_PREFIX",
    "OWN_ACCESS_POINT_ID",
    "ACCESS_POINT_OWNERSHIP",
];

/// The variables of metrics (read by [`crate::observe`]): every function knows them.
pub const OBSERVE_VARS: &[&str] = &["METRICS_NAMESPACE", "METRICS_STACK"];

/// `ECS_CLUSTER=none`: run without the in-use guard, said explicitly.
pub const NO_CLUSTER: &str = "none";

/// Reads variables through a lookup function, so tests need not touch the process environment.
pub struct Env<F: Fn(&str) -> Option<String>>(pub F);

/// The process environment's lookup.
pub type ProcessEnv = Env<fn(&str) -> Option<String>>;

impl ProcessEnv {
    pub fn process() -> Self {
        // Lossy, so a value that is not UTF-8 fails its setting's check instead of looking unset.
        Env(|k| std::env::var_os(k).map(|v| v.to_string_lossy().into_owned()))
    }
}

/// The process environment, after [`Env::check`] against the variables the function knows.
pub fn process_env(known: &[&[&'static str]]) -> Result<ProcessEnv, ConfigError> {
    let names: Vec<String> = std::env::vars_os()
        .map(|(k, _)| k.to_string_lossy().into_owned())
        .collect();
    let env = Env::process();
    env.check(names.iter().map(String::as_str), &known.concat())?;
    Ok(env)
}

/// The variables `read` asks an empty environment for, in order: how a test checks that a
/// settings type lists (in its `VARS`) every variable it reads, so the start-up check knows them.
pub fn variables_read<R>(
    read: impl FnOnce(&Env<&dyn Fn(&str) -> Option<String>>) -> R,
) -> Vec<String> {
    let names = std::cell::RefCell::new(Vec::new());
    let lookup = |k: &str| {
        names.borrow_mut().push(k.to_string());
        None
    };
    read(&Env(&lookup as &dyn Fn(&str) -> Option<String>));
    names.into_inner()
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// The value, `None` when unset. A value that is set but blank is an error: read as "unset"
    /// it would switch a setting (a guard) off without a word. So is white space around a value:
    /// trimmed, `" none"` or `"* "` would read as the word that turns a guard off or widens a
    /// scope, which whoever typed it may not have meant.
    pub fn get(&self, var: &'static str) -> Result<Option<String>, ConfigError> {
        match (self.0)(var) {
            None => Ok(None),
            Some(v) if v.trim().is_empty() => Err(err(
                var,
                "is set but blank; set a value or remove the variable",
            )),
            Some(v) if v.trim() != v => Err(err(
                var,
                format!("{v:?} has white space around it; write the value alone"),
            )),
            Some(v) => Ok(Some(v)),
        }
    }

    pub fn required(&self, var: &'static str) -> Result<String, ConfigError> {
        self.get(var)?
            .ok_or_else(|| err(var, "is required but not set"))
    }

    pub fn bool(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(var)?.as_deref() {
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
        let Some(text) = self.get(var)? else {
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

    /// Checks the environment as a whole before any setting is read: every variable the
    /// function knows that is set must not be blank, and a variable that looks like one of ours
    /// but is not one it knows (`DRYRUN`, `dry_run`, `TRASH_GRACE_DAY`) stops the start naming
    /// the one it probably meant, instead of being ignored while the real setting keeps its
    /// default. `present` are the names set in the environment.
    pub fn check<'a>(
        &self,
        present: impl IntoIterator<Item = &'a str>,
        known: &[&'static str],
    ) -> Result<(), ConfigError> {
        for var in known {
            self.get(var)?;
        }
        let mut present: Vec<&str> = present.into_iter().collect();
        present.sort_unstable();
        for name in present {
            if let Some(meant) = near_miss(name, known) {
                return Err(err(
                    meant,
                    format!("{name} is set, which is not a setting of this function; did you mean {meant}?"),
                ));
            }
        }
        Ok(())
    }
}

/// Prefixes of variables that AWS, Lambda and the toolchains set: never one of ours.
const PLATFORM_PREFIXES: &[&str] = &["AWS_", "LAMBDA_", "_", "RUST_", "CARGO_"];

/// The known variable `name` is probably a misspelling of: the same but for case, `_` or `-`,
/// or within two edits of it. `None` for known and platform variables and for unrelated ones.
fn near_miss(name: &str, known: &[&'static str]) -> Option<&'static str> {
    let upper = name.to_ascii_uppercase();
    if known.contains(&name) || PLATFORM_PREFIXES.iter().any(|p| upper.starts_with(p)) {
        return None;
    }
    let squash = |s: &str| s.to_ascii_uppercase().replace(['_', '-'], "");
    // A known name with a prefix or a suffix (`WORKSPACE_DRY_RUN`, `DRY_RUN_ALL`) reads as ours
    // to whoever set it, and would leave the real setting at its default.
    let words = upper.replace('-', "_");
    let affixed =
        |k: &str| words.ends_with(&format!("_{k}")) || words.starts_with(&format!("{k}_"));
    if let Some(k) = known.iter().find(|k| affixed(k)) {
        return Some(k);
    }
    known
        .iter()
        .map(|k| {
            let distance = if squash(k) == squash(name) {
                0
            } else {
                edit_distance(&upper, k)
            };
            (distance, *k)
        })
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, k)| k)
}

/// Levenshtein distance (the names are short ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != cb))
                .min(row[j] + 1)
                .min(above + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

/// Settings every function shares (README, "Configuration").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub table: String,
    pub efs_root: PathBuf,
    pub efs_file_system_id: Option<String>,
    /// `None` only when `ECS_CLUSTER=none` said so: no in-use guard.
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
        Self::from(&process_env(&[SHARED_VARS, OBSERVE_VARS])?)
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
            env.get("EFS_ROOT")?
                .unwrap_or_else(|| DEFAULT_EFS_ROOT.into()),
        );
        if !efs_root.is_absolute() {
            return Err(err(
                "EFS_ROOT",
                format!("{} is not an absolute path", efs_root.display()),
            ));
        }
        let efs_file_system_id = env.get("EFS_FILE_SYSTEM_ID")?;
        if let Some(id) = &efs_file_system_id {
            let hex = id.strip_prefix("fs-").unwrap_or("");
            if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(err(
                    "EFS_FILE_SYSTEM_ID",
                    format!("{id:?} is not an EFS file system id (fs-…)"),
                ));
            }
        }
        let retention = match env.get("RETENTION_POLICY")? {
            None => RetentionPolicy::default(),
            Some(text) => RetentionPolicy::from_json(&text)
                .map_err(|e| err("RETENTION_POLICY", e.to_string()))?,
        };
        Ok(Self {
            table,
            efs_root,
            efs_file_system_id,
            ecs_cluster: ecs_cluster(env)?,
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

/// `ECS_CLUSTER`: required, so the in-use guard is never off by omission; `none` turns it off,
/// which is logged as a warning at every start.
fn ecs_cluster<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Option<String>, ConfigError> {
    let Some(cluster) = env.get("ECS_CLUSTER")? else {
        return Err(err(
            "ECS_CLUSTER",
            format!(
                "is required: the cluster whose running tasks mark a workspace in use, or \
                 {NO_CLUSTER:?} to run without that guard"
            ),
        ));
    };
    if cluster == NO_CLUSTER {
        tracing::warn!(
            variable = "ECS_CLUSTER",
            "ECS_CLUSTER=none: no in-use guard; a running task does not keep its workspace"
        );
        return Ok(None);
    }
    let name = cluster.rsplit('/').next().unwrap_or_default();
    let is_arn = cluster.starts_with("arn:") && cluster.contains(":cluster/");
    if (cluster.contains('/') && !is_arn)
        || !(1..=255).contains(&name.len())
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
    {
        return Err(err(
            "ECS_CLUSTER",
            format!("{cluster:?} is not an ECS cluster name or ARN (or {NO_CLUSTER:?})"),
        ));
    }
    Ok(Some(cluster))
}

fn access_point_rules<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<AccessPointRules, ConfigError> {
    let root_prefix = match env.get("ACCESS_POINT_ROOT_PREFIX")? {
        None => String::new(),
        Some(text) => parse_root_prefix(&text).map_err(|p| err("ACCESS_POINT_ROOT_PREFIX", p))?,
    };
    let own_id = env.get("OWN_ACCESS_POINT_ID")?;
    if let Some(id) = &own_id {
        let hex = id.strip_prefix("fsap-").unwrap_or("");
        if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(err(
                "OWN_ACCESS_POINT_ID",
                format!("{id:?} is not an access point id (fsap-…)"),
            ));
        }
    }
    let ownership = match env.get("ACCESS_POINT_OWNERSHIP")?.as_deref() {
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

/// The variables of archiving ([`ArchiveConfig::from`]): efs-sweeper and the CLI read them.
pub const ARCHIVE_VARS: &[&str] = &["ARCHIVE_BUCKET", "ARCHIVE_POLICY"];

/// Archiving before purge (`ARCHIVE_BUCKET`, `ARCHIVE_POLICY`): off unless a bucket is named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveConfig {
    pub bucket: String,
    pub policy: ArchivePolicy,
}

impl ArchiveConfig {
    /// `None` when `ARCHIVE_BUCKET` is unset (today's behaviour: trash is purged, not archived).
    /// `ARCHIVE_POLICY` without a bucket is an error: a policy that would never apply is a
    /// misconfiguration, never silently nothing.
    pub fn from<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Option<Self>, ConfigError> {
        let policy = match env.get("ARCHIVE_POLICY")? {
            None => None,
            Some(text) => Some(
                ArchivePolicy::from_json(&text)
                    .map_err(|e| err("ARCHIVE_POLICY", e.to_string()))?,
            ),
        };
        let Some(bucket) = env.get("ARCHIVE_BUCKET")? else {
            if policy.is_some() {
                return Err(err(
                    "ARCHIVE_POLICY",
                    "is set but ARCHIVE_BUCKET is not: nothing would be archived",
                ));
            }
            return Ok(None);
        };
        let valid = (3..=63).contains(&bucket.len())
            && bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-'))
            && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
            && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !valid {
            return Err(err(
                "ARCHIVE_BUCKET",
                format!("{bucket:?} is not an S3 bucket name (3-63 of a-z 0-9 . -)"),
            ));
        }
        Ok(Some(Self {
            bucket,
            policy: policy.unwrap_or_default(),
        }))
    }
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

    fn archive(pairs: &[(&str, &str)]) -> Result<Option<ArchiveConfig>, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ArchiveConfig::from(&Env(move |k: &str| map.get(k).cloned()))
    }

    #[test]
    fn archive_settings() {
        assert_eq!(archive(&[]).unwrap(), None);
        let on = archive(&[("ARCHIVE_BUCKET", "acme-archive")])
            .unwrap()
            .unwrap();
        assert_eq!(on.bucket, "acme-archive");
        assert_eq!(on.policy, ArchivePolicy::default());
        let e = archive(&[(
            "ARCHIVE_POLICY",
            r#"{"tierDays": {"free": 1, "pro": 1, "enterprise": 1}}"#,
        )])
        .unwrap_err();
        assert_eq!(e.var, "ARCHIVE_POLICY");
        assert!(e.problem.contains("ARCHIVE_BUCKET"), "{e}");
        let e = archive(&[("ARCHIVE_BUCKET", "b"), ("ARCHIVE_POLICY", "{}")]).unwrap_err();
        assert_eq!(e.var, "ARCHIVE_POLICY");
        for bad in ["Acme", "ab", "acme_archive", "-acme", "s3://acme"] {
            let e = archive(&[("ARCHIVE_BUCKET", bad)]).unwrap_err();
            assert_eq!(e.var, "ARCHIVE_BUCKET", "{bad}");
        }
        let e = archive(&[("ARCHIVE_BUCKET", " ")]).unwrap_err();
        assert_eq!(e.var, "ARCHIVE_BUCKET");
    }

    #[test]
    fn defaults() {
        let c = config(&[("WORKSPACE_TABLE", "workspaces"), ("ECS_CLUSTER", "agents")]).unwrap();
        assert_eq!(c.efs_root, PathBuf::from("/mnt/workspaces"));
        assert_eq!(c.trash_grace_days, 7);
        assert!(!c.dry_run);
        assert_eq!(c.ecs_cluster.as_deref(), Some("agents"));
        assert_eq!(c.retention, RetentionPolicy::default());
        assert_eq!(c.access_points, AccessPointRules::default());
    }

    #[test]
    fn access_point_settings() {
        let c = config(&[
            ("WORKSPACE_TABLE", "workspaces"),
            ("ECS_CLUSTER", "none"),
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
            ("ECS_CLUSTER", "none"),
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
            let e = config(&[
                ("WORKSPACE_TABLE", "workspaces"),
                ("ECS_CLUSTER", "none"),
                (var, value),
            ])
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
            let mut pairs = pairs.to_vec();
            pairs.push(("ECS_CLUSTER", "agents"));
            let e = config(&pairs).unwrap_err().to_string();
            assert!(e.contains(expected), "{e} should contain {expected}");
        }
    }

    const BASE: &[(&str, &str)] = &[("WORKSPACE_TABLE", "t12"), ("ECS_CLUSTER", "agents")];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut pairs: Vec<_> = BASE
            .iter()
            .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
            .copied()
            .collect();
        pairs.extend_from_slice(extra);
        pairs
    }

    #[test]
    fn a_blank_setting_is_an_error_naming_it() {
        for &var in SHARED_VARS {
            for blank in ["", "  ", "\t"] {
                let e = config(&with(&[(var, blank)])).unwrap_err();
                assert_eq!(e.var, var, "{e}");
                assert!(e.to_string().contains("blank"), "{e}");
            }
        }
    }

    #[test]
    fn the_in_use_guard_is_off_only_when_said_so() {
        let e = config(&[("WORKSPACE_TABLE", "t12")]).unwrap_err();
        assert_eq!(e.var, "ECS_CLUSTER");
        assert!(e.to_string().contains("none"), "{e}");
        assert_eq!(
            config(&with(&[("ECS_CLUSTER", "none")]))
                .unwrap()
                .ecs_cluster,
            None
        );
        assert_eq!(
            config(&with(&[("ECS_CLUSTER", "agents")]))
                .unwrap()
                .ecs_cluster
                .as_deref(),
            Some("agents")
        );
        // Red team F7: " none" is not the word that turns the guard off; neither is a padded
        // cluster name read as a name.
        for padded in [" none", "none\n", " agents "] {
            let e = config(&with(&[("ECS_CLUSTER", padded)])).unwrap_err();
            assert_eq!(e.var, "ECS_CLUSTER");
            assert!(e.to_string().contains("white space"), "{e}");
        }
    }

    #[test]
    fn white_space_around_any_setting_is_an_error_naming_it() {
        for &var in SHARED_VARS {
            let e = config(&with(&[(var, " x")])).unwrap_err();
            assert_eq!(e.var, var, "{e}");
            assert!(e.to_string().contains("white space"), "{e}");
        }
    }

    fn check(present: &[&str], known: &[&'static str]) -> Result<(), ConfigError> {
        let set: HashMap<String, String> = present
            .iter()
            .map(|k| (k.to_string(), "x".to_string()))
            .collect();
        Env(move |k: &str| set.get(k).cloned()).check(present.iter().copied(), known)
    }

    const HEARTBEAT: &[&str] = &[
        "WORKSPACE_TABLE",
        "ECS_CLUSTER",
        "DRY_RUN",
        "TRASH_GRACE_DAYS",
        "NOTICE_EVENT_BUS",
    ];
    const PRUNER: &[&str] = &["DRY_RUN", "ECS_CLUSTER", "ECS_CLUSTERS", "MAX_ACTIONS"];

    #[test]
    fn a_near_miss_of_a_known_name_stops_the_start_naming_the_intended_one() {
        let cases: &[(&str, &[&str], &str)] = &[
            ("DRYRUN", HEARTBEAT, "DRY_RUN"),
            ("DRY_RUNS", HEARTBEAT, "DRY_RUN"),
            ("dry_run", HEARTBEAT, "DRY_RUN"),
            ("Dry-Run", HEARTBEAT, "DRY_RUN"),
            ("TRASH_GRACE_DAY", HEARTBEAT, "TRASH_GRACE_DAYS"),
            ("TRASHGRACEDAYS", HEARTBEAT, "TRASH_GRACE_DAYS"),
            ("ECS_CLUSTERS", HEARTBEAT, "ECS_CLUSTER"),
            ("WORKSPACES_TABLE", HEARTBEAT, "WORKSPACE_TABLE"),
            ("NOTICE_EVENTS_BUS", HEARTBEAT, "NOTICE_EVENT_BUS"),
            ("MAX_ACTION", PRUNER, "MAX_ACTIONS"),
        ];
        for (name, known, meant) in cases {
            let e = check(&["WORKSPACE_TABLE", name], known).unwrap_err();
            assert_eq!(e.var, *meant, "{name}: {e}");
            assert!(
                e.to_string().contains(name) && e.to_string().contains("did you mean"),
                "{e}"
            );
        }
    }

    #[test]
    fn known_platform_and_unrelated_names_pass() {
        // The pruner knows ECS_CLUSTERS; the shared ECS_CLUSTER is known to it too.
        check(&["ECS_CLUSTERS", "ECS_CLUSTER", "DRY_RUN"], PRUNER).unwrap();
        check(
            &[
                "AWS_REGION",
                "AWS_LAMBDA_FUNCTION_NAME",
                "AWS_LAMBDA_RUNTIME_API",
                "LAMBDA_TASK_ROOT",
                "LAMBDA_RUNTIME_DIR",
                "_HANDLER",
                "_X_AMZN_TRACE_ID",
                "RUST_LOG",
                "RUST_BACKTRACE",
                "CARGO_MANIFEST_DIR",
                "PATH",
                "HOME",
                "LANG",
                "TZ",
                "LD_LIBRARY_PATH",
                "MOTO_ENDPOINT",
                "DRY_RUN",
            ],
            HEARTBEAT,
        )
        .unwrap();
    }

    #[test]
    fn check_refuses_a_blank_known_variable_even_one_the_function_does_not_read() {
        let env = Env(|k: &str| (k == "ECS_CLUSTERS").then(|| " ".to_string()));
        let e = env.check(["ECS_CLUSTERS"], PRUNER).unwrap_err();
        assert_eq!(e.var, "ECS_CLUSTERS");
    }

    #[test]
    fn the_shared_config_reads_only_shared_variables() {
        let read = std::sync::Mutex::new(Vec::new());
        let _ = Config::from(&Env(|k: &str| {
            read.lock().unwrap().push(k.to_string());
            match k {
                "WORKSPACE_TABLE" => Some("t12".into()),
                "ECS_CLUSTER" => Some("none".into()),
                _ => None,
            }
        }));
        let read = read.into_inner().unwrap();
        assert!(
            read.iter().all(|k| SHARED_VARS.contains(&k.as_str())),
            "{read:?}"
        );
        assert_eq!(read.len(), SHARED_VARS.len(), "{read:?}");
    }

    #[test]
    fn a_known_name_with_a_prefix_or_suffix_is_a_near_miss() {
        let known = &["DRY_RUN", "MAX_ACTIONS", "ECS_CLUSTER"];
        for name in [
            "WORKSPACE_DRY_RUN",
            "LIFECYCLE_DRY_RUN",
            "lifecycle-dry-run",
            "DRY_RUN_ALL",
        ] {
            assert_eq!(near_miss(name, known), Some("DRY_RUN"), "{name}");
        }
        assert_eq!(near_miss("SWEEPER_MAX_ACTIONS", known), Some("MAX_ACTIONS"));
        // Not a known name as a word: left alone.
        for name in [
            "DRY_RUNNER_HOME",
            "PATH",
            "HOME",
            "AWS_DRY_RUN",
            "ECS_CLUSTER",
        ] {
            assert_eq!(near_miss(name, known), None, "{name}");
        }
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("DRY_RUN", "DRY_RUN"), 0);
        assert_eq!(edit_distance("DRYRUN", "DRY_RUN"), 1);
        assert_eq!(edit_distance("DRY_RUNS", "DRY_RUN"), 1);
        assert_eq!(edit_distance("TRY_RAN", "DRY_RUN"), 2);
        assert_eq!(edit_distance("", "ABC"), 3);
    }
}

/// Fan-out (`WORK_QUEUE_URL`, `RUNS_TABLE`, `RUN_VALID_HOURS`): a scheduled run plans and
/// enqueues units; the same function on the queue's events carries them out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanOutConfig {
    pub queue_url: String,
    pub runs_table: String,
    /// A unit met this long after its run began is dropped, not acted on.
    pub run_valid_secs: i64,
}

impl FanOutConfig {
    pub const VARS: &'static [&'static str] = &["WORK_QUEUE_URL", "RUNS_TABLE", "RUN_VALID_HOURS"];

    /// `None` when neither `WORK_QUEUE_URL` nor `RUNS_TABLE` is set (one invocation plans and
    /// acts). One without the other is an error: units without a ledger could not be checked.
    pub fn from<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Option<Self>, ConfigError> {
        let hours: i64 = env.number("RUN_VALID_HOURS", 24, 1..=168)?;
        let (queue_url, runs_table) = match (env.get("WORK_QUEUE_URL")?, env.get("RUNS_TABLE")?) {
            (None, None) => return Ok(None),
            (Some(_), None) => {
                return Err(err(
                    "RUNS_TABLE",
                    "is not set but WORK_QUEUE_URL is: units need the run ledger",
                ))
            }
            (None, Some(_)) => {
                return Err(err(
                    "WORK_QUEUE_URL",
                    "is not set but RUNS_TABLE is: the ledger has no queue to feed",
                ))
            }
            (Some(q), Some(t)) => (q, t),
        };
        if !(queue_url.starts_with("https://") || queue_url.starts_with("http://")) {
            return Err(err(
                "WORK_QUEUE_URL",
                format!("{queue_url:?} is not a queue URL (https://sqs.<region>.amazonaws.com/<account>/<name>)"),
            ));
        }
        let table_ok = (3..=255).contains(&runs_table.len())
            && runs_table
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !table_ok {
            return Err(err(
                "RUNS_TABLE",
                format!("{runs_table:?} is not a DynamoDB table name"),
            ));
        }
        Ok(Some(Self {
            queue_url,
            runs_table,
            run_valid_secs: hours * 3600,
        }))
    }
}
