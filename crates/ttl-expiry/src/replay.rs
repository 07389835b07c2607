//! A failed batch, as the event source mapping's S3 on-failure destination keeps it: what Lambda
//! gave up on after its retries, with the invocation's payload, so it can be handled again.
//!
//! Handling it again is safe for the same reason a redelivery is: every record is decided afresh
//! from what the table, ECS and the file system say now (a workspace re-created or in use since
//! is kept), and a record already handled finds nothing left to do.

use serde_json::Value;

/// One failed batch: the stream event to hand to the handler again, and what Lambda said of it.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedBatch {
    /// `{"Records": [...]}`, the invocation's payload.
    pub event: Value,
    pub records: usize,
    /// Why Lambda gave up (`RetryAttemptsExhausted`, `RecordAgeExceeded`, ...), when it said.
    pub condition: Option<String>,
    /// When Lambda wrote it (RFC 3339, as it wrote it).
    pub timestamp: Option<String>,
    pub first_sequence: Option<String>,
    pub last_sequence: Option<String>,
}

/// The most records a DynamoDB stream batch can hold (the event source mapping's `BatchSize`).
pub const MAX_RECORDS: usize = 10_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReplayError {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error(
        "no payload with the records: the destination is SQS or SNS (they keep only the batch's \
         sequence numbers; read those from the stream while it retains them) or not a failed batch"
    )]
    NoPayload,
    #[error("the payload is not a stream event: expected an object with a \"Records\" array")]
    NotAStreamEvent,
    #[error("{0} records: more than a stream batch can hold ({MAX_RECORDS})")]
    TooManyRecords(usize),
}

impl FailedBatch {
    /// Reads the object Lambda wrote (the payload as a JSON object or as JSON text), or a plain
    /// stream event (`{"Records": [...]}`) an operator saved.
    pub fn parse(bytes: &[u8]) -> Result<Self, ReplayError> {
        let object: Value =
            serde_json::from_slice(bytes).map_err(|e| ReplayError::NotJson(e.to_string()))?;
        let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);
        let (event, info) = if object.get("Records").is_some() {
            (object.clone(), Value::Null)
        } else {
            let payload = match object.get("payload") {
                Some(Value::String(json)) => serde_json::from_str(json)
                    .map_err(|e| ReplayError::NotJson(format!("payload: {e}")))?,
                Some(payload @ Value::Object(_)) => payload.clone(),
                _ => return Err(ReplayError::NoPayload),
            };
            (payload, object)
        };
        let records = event
            .get("Records")
            .and_then(Value::as_array)
            .ok_or(ReplayError::NotAStreamEvent)?
            .len();
        if records > MAX_RECORDS {
            return Err(ReplayError::TooManyRecords(records));
        }
        let batch = info.get("DDBStreamBatchInfo").unwrap_or(&Value::Null);
        Ok(FailedBatch {
            records,
            condition: info
                .get("requestContext")
                .and_then(|c| text(c, "condition")),
            timestamp: text(&info, "timestamp"),
            first_sequence: text(batch, "startSequenceNumber"),
            last_sequence: text(batch, "endSequenceNumber"),
            event,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(seq: &str) -> Value {
        json!({"eventName": "REMOVE", "dynamodb": {"SequenceNumber": seq}})
    }

    fn destination_object(payload: Value) -> Value {
        json!({
            "requestContext": {
                "requestId": "c9b8fa9f-5a7f-4d1c-af9c-0c604cde93a5",
                "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:ttl-expiry",
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": 3
            },
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "version": "1.0",
            "timestamp": "2026-11-28T04:00:06.021Z",
            "DDBStreamBatchInfo": {
                "shardId": "shardId-00000001573689847184-864758bb",
                "startSequenceNumber": "100",
                "endSequenceNumber": "200",
                "batchSize": 2,
                "streamArn": "arn:aws:dynamodb:us-east-1:123456789012:table/workspaces/stream/2026-11-01T00:00:00.000"
            },
            "payload": payload
        })
    }

    #[test]
    fn the_payload_is_read_as_text_or_object() {
        let event = json!({"Records": [record("100"), record("200")]});
        for payload in [Value::String(event.to_string()), event.clone()] {
            let bytes = serde_json::to_vec(&destination_object(payload)).unwrap();
            let batch = FailedBatch::parse(&bytes).unwrap();
            assert_eq!(batch.event, event);
            assert_eq!(batch.records, 2);
            assert_eq!(batch.condition.as_deref(), Some("RetryAttemptsExhausted"));
            assert_eq!(batch.first_sequence.as_deref(), Some("100"));
            assert_eq!(batch.last_sequence.as_deref(), Some("200"));
            assert_eq!(batch.timestamp.as_deref(), Some("2026-11-28T04:00:06.021Z"));
        }
    }

    #[test]
    fn a_saved_stream_event_is_a_batch_too() {
        let event = json!({"Records": [record("7")]});
        let batch = FailedBatch::parse(event.to_string().as_bytes()).unwrap();
        assert_eq!((batch.records, batch.condition), (1, None));
    }

    #[test]
    fn what_cannot_be_replayed_says_why() {
        let mut sqs_pointer = destination_object(Value::Null);
        sqs_pointer.as_object_mut().unwrap().remove("payload");
        for (bytes, expected) in [
            (b"not json".to_vec(), "not JSON"),
            (sqs_pointer.to_string().into_bytes(), "SQS or SNS"),
            (
                destination_object(json!({"records": []}))
                    .to_string()
                    .into_bytes(),
                "not a stream event",
            ),
            (
                destination_object(Value::String("{".into()))
                    .to_string()
                    .into_bytes(),
                "payload",
            ),
        ] {
            let err = FailedBatch::parse(&bytes).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        }
        let too_many = json!({"Records": vec![record("1"); MAX_RECORDS + 1]});
        assert_eq!(
            FailedBatch::parse(too_many.to_string().as_bytes()),
            Err(ReplayError::TooManyRecords(MAX_RECORDS + 1))
        );
    }
}
