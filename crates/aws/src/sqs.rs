//! A run's work queue on SQS: SendMessageBatch in batches of ten, each entry's answer its own
//! (a batch call can accept some entries and refuse others: `Failed`).

use async_trait::async_trait;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use aws_sdk_sqs::Client;
use lifecycle_ports::fanout::WorkQueue;
use lifecycle_ports::{Failure, ServiceError};

use crate::sdk::{failure_text, partial_backoff, service_error, PARTIAL_ATTEMPTS};

#[derive(Debug, Clone)]
pub struct SqsWorkQueue {
    client: Client,
    url: String,
}

impl SqsWorkQueue {
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }
}

const OPERATION: &str = "SQS SendMessageBatch";

/// What one SendMessageBatch may carry in all (SQS: 256 KiB for the whole batch, as for one
/// message): ten messages of a unit's size together would be refused whole.
const MAX_BATCH_BYTES: usize = 256 * 1024;

/// Consecutive index ranges of `bodies`, each at most ten messages and [`MAX_BATCH_BYTES`]
/// together (a body alone over it is a batch of its own, which SQS refuses for that body only).
fn batches(bodies: &[String]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, body) in bodies.iter().enumerate() {
        if i > start && (i - start == 10 || bytes + body.len() > MAX_BATCH_BYTES) {
            out.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += body.len();
    }
    if start < bodies.len() {
        out.push(start..bodies.len());
    }
    out
}

#[async_trait]
impl WorkQueue for SqsWorkQueue {
    async fn send(&self, bodies: &[String]) -> Vec<Result<(), ServiceError>> {
        let mut results: Vec<Result<(), ServiceError>> = bodies
            .iter()
            .map(|_| Err(ServiceError::retryable(OPERATION, "not sent")))
            .collect();
        for range in batches(bodies) {
            let base = range.start;
            let chunk = &bodies[range];
            // Entries a batch answered `Failed` as the sender's fault are not asked again; the
            // others (throttled, internal) are, with backoff.
            let mut pending: Vec<usize> = (0..chunk.len()).collect();
            for attempt in 1..=PARTIAL_ATTEMPTS {
                let entries: Vec<SendMessageBatchRequestEntry> = pending
                    .iter()
                    .map(|i| {
                        SendMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .message_body(&chunk[*i])
                            .build()
                            .expect("id and body are set")
                    })
                    .collect();
                let out = match self
                    .client
                    .send_message_batch()
                    .queue_url(&self.url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                {
                    Ok(out) => out,
                    Err(e) => {
                        let e = service_error(OPERATION, e);
                        for i in &pending {
                            results[base + i] = Err(e.clone());
                        }
                        if !e.is_retryable() {
                            break;
                        }
                        tokio::time::sleep(partial_backoff(attempt)).await;
                        continue;
                    }
                };
                let mut again = Vec::new();
                for ok in out.successful() {
                    if let Ok(i) = ok.id().parse::<usize>() {
                        results[base + i] = Ok(());
                    }
                }
                for failed in out.failed() {
                    let Ok(i) = failed.id().parse::<usize>() else {
                        continue;
                    };
                    let failure = if failed.sender_fault() {
                        Failure::Permanent
                    } else {
                        again.push(i);
                        Failure::Retryable
                    };
                    results[base + i] = Err(ServiceError::new(
                        OPERATION,
                        failure_text(Some(&failed.code()), failed.message()),
                        failure,
                    ));
                }
                pending = again;
                if pending.is_empty() {
                    break;
                }
                tokio::time::sleep(partial_backoff(attempt)).await;
            }
        }
        results
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_holds_at_most_ten_messages_and_256_kib() {
        let small = vec!["x".to_string(); 25];
        assert_eq!(batches(&small), vec![0..10, 10..20, 20..25]);
        let big = vec!["y".repeat(100 * 1024); 5];
        assert_eq!(batches(&big), vec![0..2, 2..4, 4..5]);
        let huge = vec!["z".repeat(300 * 1024), "a".into(), "b".into()];
        assert_eq!(batches(&huge), vec![0..1, 1..3]);
        assert!(batches(&[]).is_empty());
    }
}
