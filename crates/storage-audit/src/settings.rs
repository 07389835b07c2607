//! The audit's own settings: what to check beyond the lifecycle's own resources.

use lifecycle_domain::audit::ACCESS_POINT_QUOTA;
use lifecycle_runtime::config::{ConfigError, Env};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `AUDIT_LOG_GROUP_PREFIXES`: log groups whose names start with one of these are checked.
    pub log_group_prefixes: Vec<String>,
    /// `AUDIT_S3_BUCKETS`: buckets checked for lifecycle rules and noncurrent-version expiry.
    pub buckets: Vec<String>,
    /// `AUDIT_ACCESS_POINT_QUOTA`: access points allowed per file system (EFS: 10,000).
    pub access_point_quota: usize,
    /// `AUDIT_EVENT_BUS`: where the findings go as one event; `None` with `off`.
    pub event_bus: Option<String>,
}

impl Settings {
    /// The variables the audit reads itself.
    pub const OWN_VARS: &'static [&'static str] = &[
        "AUDIT_LOG_GROUP_PREFIXES",
        "AUDIT_S3_BUCKETS",
        "AUDIT_ACCESS_POINT_QUOTA",
        "AUDIT_EVENT_BUS",
    ];

    pub fn from<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let err = |var: &'static str, problem: String| ConfigError { var, problem };
        let list = |var: &'static str| -> Result<Vec<String>, ConfigError> {
            Ok(env
                .get(var)?
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default())
        };
        let log_group_prefixes = list("AUDIT_LOG_GROUP_PREFIXES")?;
        for p in &log_group_prefixes {
            // CloudWatch Logs names: 1-512 of [.-_/#A-Za-z0-9].
            if p.len() > 512
                || !p
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-/#".contains(c))
            {
                return Err(err(
                    "AUDIT_LOG_GROUP_PREFIXES",
                    format!("{p:?} is not a log group name prefix"),
                ));
            }
        }
        let buckets = list("AUDIT_S3_BUCKETS")?;
        for b in &buckets {
            let valid = (3..=63).contains(&b.len())
                && b.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
                && !b.starts_with(['.', '-'])
                && !b.ends_with(['.', '-']);
            if !valid {
                return Err(err(
                    "AUDIT_S3_BUCKETS",
                    format!("{b:?} is not an S3 bucket name"),
                ));
            }
        }
        let event_bus = match env.get("AUDIT_EVENT_BUS")? {
            None => None,
            Some(v) if v == "off" => None,
            Some(v) => Some(v),
        };
        Ok(Self {
            log_group_prefixes,
            buckets,
            access_point_quota: env.number(
                "AUDIT_ACCESS_POINT_QUOTA",
                ACCESS_POINT_QUOTA,
                1..=1_000_000,
            )?,
            event_bus,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifecycle_runtime::config::variables_read;

    fn env(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from(&Env(move |k: &str| map.get(k).cloned()))
    }

    #[test]
    fn every_variable_read_is_a_known_one() {
        let read = variables_read(|env| Settings::from(env).unwrap());
        assert!(!read.is_empty());
        for var in read {
            assert!(Settings::OWN_VARS.contains(&var.as_str()), "{var}");
        }
    }

    #[test]
    fn settings_are_validated() {
        let s = env(&[
            ("AUDIT_S3_BUCKETS", "outputs, state-1"),
            ("AUDIT_LOG_GROUP_PREFIXES", "/aws/lambda/x-,/outpost"),
            ("AUDIT_EVENT_BUS", "off"),
        ])
        .unwrap();
        assert_eq!(s.buckets, vec!["outputs", "state-1"]);
        assert_eq!(s.log_group_prefixes, vec!["/aws/lambda/x-", "/outpost"]);
        assert_eq!(s.event_bus, None);
        assert_eq!(s.access_point_quota, 10_000);
        assert_eq!(
            env(&[("AUDIT_S3_BUCKETS", "Bad_Bucket")]).unwrap_err().var,
            "AUDIT_S3_BUCKETS"
        );
        assert_eq!(
            env(&[("AUDIT_LOG_GROUP_PREFIXES", "/a b")])
                .unwrap_err()
                .var,
            "AUDIT_LOG_GROUP_PREFIXES"
        );
        assert!(env(&[("AUDIT_ACCESS_POINT_QUOTA", "0")]).is_err());
        assert!(
            env(&[("AUDIT_S3_BUCKETS", " ")]).is_err(),
            "blank is refused"
        );
    }
}
