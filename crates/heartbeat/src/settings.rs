//! heartbeat's own settings, beside the shared [`lifecycle_runtime::config::Config`].

use lifecycle_runtime::config::{ConfigError, Env};

pub const DEFAULT_MIN_INTERVAL_SECONDS: i64 = 300;
pub const DEFAULT_NOTICE_DAYS: u32 = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `HEARTBEAT_MIN_INTERVAL_SECONDS`: activity this close to the stored one is not written.
    pub min_interval: i64,
    /// `EXPIRY_NOTICE_DAYS`: how far ahead a workspace's expiry is announced.
    pub notice_days: u32,
    /// `NOTICE_EVENT_BUS` (`default` unless set; `off` disables notices).
    pub notice_bus: Option<String>,
}

impl Settings {
    /// The variables heartbeat reads beside [`lifecycle_runtime::config::SHARED_VARS`].
    pub const VARS: &'static [&'static str] = &[
        "HEARTBEAT_MIN_INTERVAL_SECONDS",
        "EXPIRY_NOTICE_DAYS",
        "NOTICE_EVENT_BUS",
    ];

    pub fn from<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let notice_bus = match env.get("NOTICE_EVENT_BUS")?.as_deref() {
            Some("off") => None,
            Some(bus) => Some(bus.to_string()),
            None => Some("default".to_string()),
        };
        Ok(Self {
            min_interval: env.number(
                "HEARTBEAT_MIN_INTERVAL_SECONDS",
                DEFAULT_MIN_INTERVAL_SECONDS,
                0..=86_400,
            )?,
            notice_days: env.number("EXPIRY_NOTICE_DAYS", DEFAULT_NOTICE_DAYS, 1..=365)?,
            notice_bus,
        })
    }
}
