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

#[async_trait]
impl WorkQueue for SqsWorkQueue {
    async fn send(&self, bodies: &[String]) -> Vec<Result<(), ServiceError>> {
        let mut results: Vec<Result<(), ServiceError>> = bodies
            .iter()
            .map(|_| Err(ServiceError::retryable(OPERATION, "not sent")))
            .collect();
        for (chunk_index, chunk) in bodies.chunks(10).enumerate() {
            let base = chunk_index * 10;
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
