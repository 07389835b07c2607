//! Epoch seconds, and how people and EventBridge read them.

/// Seconds since the Unix epoch, now.
pub fn now_epoch() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `2026-11-24 04:00 UTC` for epoch seconds (for people: reports, the CLI, the demo).
pub fn format_epoch(epoch: i64) -> String {
    chrono::DateTime::from_timestamp(epoch, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| epoch.to_string())
}

/// RFC 3339 (`2026-11-24T04:00:00Z`), as EventBridge writes an event's time.
pub fn rfc3339(epoch: i64) -> String {
    chrono::DateTime::from_timestamp(epoch, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// Epoch seconds or RFC 3339 text (as tags carry times); `None` when it is neither.
pub fn epoch_or_rfc3339(text: &str) -> Option<i64> {
    text.parse().ok().or_else(|| {
        chrono::DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.timestamp())
    })
}
