//! Expiry notices on EventBridge.

use async_trait::async_trait;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use lifecycle_domain::activity::ExpiryNotice;
use lifecycle_ports::Notices;

use crate::sdk::service_error;

/// Where expiry notices go: an EventBridge bus.
#[derive(Debug, Clone)]
pub struct EventBridgeNotices {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

/// The `source` of the events this project puts on a bus.
pub const NOTICE_SOURCE: &str = "workspace.lifecycle";
pub const NOTICE_DETAIL_TYPE: &str = "Workspace Expiring";
/// PutEvents accepts at most this many entries per call.
const PUT_EVENTS_MAX: usize = 10;

impl EventBridgeNotices {
    pub fn new(client: aws_sdk_eventbridge::Client, bus: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
        }
    }
}

#[async_trait]
impl Notices for EventBridgeNotices {
    async fn publish(&self, notices: &[ExpiryNotice]) -> Vec<Result<(), String>> {
        let mut results = Vec::with_capacity(notices.len());
        for chunk in notices.chunks(PUT_EVENTS_MAX) {
            let entries = chunk
                .iter()
                .map(|n| {
                    PutEventsRequestEntry::builder()
                        .source(NOTICE_SOURCE)
                        .detail_type(NOTICE_DETAIL_TYPE)
                        .detail(serde_json::to_string(n).expect("a notice serializes"))
                        .event_bus_name(&self.bus)
                        .resources(format!("workspace/{}", n.workspace_id))
                        .build()
                })
                .collect::<Vec<_>>();
            // A failed call fails its own entries only: the calls before it were delivered.
            match self
                .client
                .put_events()
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(out) => results.extend(entry_results(chunk.len(), out.entries())),
                Err(e) => {
                    let error = service_error("EventBridge PutEvents", e).to_string();
                    results.extend(chunk.iter().map(|_| Err(error.clone())));
                }
            }
        }
        results
    }
}

/// PutEvents answers one entry per request entry, in order; a missing answer is a failure.
fn entry_results(
    sent: usize,
    answered: &[aws_sdk_eventbridge::types::PutEventsResultEntry],
) -> Vec<Result<(), String>> {
    (0..sent)
        .map(|i| match answered.get(i) {
            Some(entry) if entry.error_code().is_none() && entry.event_id().is_some() => Ok(()),
            Some(entry) => Err(format!(
                "{}: {}",
                entry.error_code().unwrap_or("NoEventId"),
                entry.error_message().unwrap_or_default()
            )),
            None => Err("no result for this entry".to_string()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_eventbridge::types::PutEventsResultEntry;

    #[test]
    fn each_put_events_entry_decides_its_own_result() {
        let ok = PutEventsResultEntry::builder().event_id("e-1").build();
        let failed = PutEventsResultEntry::builder()
            .error_code("InternalFailure")
            .error_message("try again")
            .build();
        let results = entry_results(3, &[ok, failed]);
        assert_eq!(results[0], Ok(()));
        assert_eq!(results[1], Err("InternalFailure: try again".to_string()));
        assert!(results[2].is_err(), "no answer is no delivery");
    }
}
