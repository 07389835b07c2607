//! DynamoDB stream events as Lambda delivers them. moto never sends the TTL service's
//! `userIdentity`, so tests build these records themselves.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};

/// Sequence numbers in the order records are built: stream order within a test.
static SEQUENCE: AtomicU32 = AtomicU32::new(100);

fn image_json(item: &HashMap<String, AttributeValue>) -> Value {
    serde_json::to_value(lifecycle_aws::codec::from_item(item.clone())).unwrap()
}

/// One stream record with the given images; `ttl` adds the TTL service's `userIdentity`.
pub fn stream_record(
    event_name: &str,
    old: Option<&HashMap<String, AttributeValue>>,
    new: Option<&HashMap<String, AttributeValue>>,
    ttl: bool,
) -> Value {
    let seq = format!("{:021}", SEQUENCE.fetch_add(1, Ordering::Relaxed));
    let key_source = old.or(new).expect("an image");
    let mut dynamodb = json!({
        "ApproximateCreationDateTime": lifecycle_domain::time::now_epoch() as f64,
        "Keys": {"workspaceId": image_json(key_source)["workspaceId"].clone()},
        "SequenceNumber": seq,
        "SizeBytes": 256,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    });
    if let Some(old) = old {
        dynamodb["OldImage"] = image_json(old);
    }
    if let Some(new) = new {
        dynamodb["NewImage"] = image_json(new);
    }
    let mut record = json!({
        "eventID": format!("ev-{seq}"),
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": dynamodb,
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/workspaces/stream/2026-11-24T00:00:00.000",
    });
    if ttl {
        record["userIdentity"] =
            json!({"type": "Service", "principalId": "dynamodb.amazonaws.com"});
    }
    record
}

/// The record of DynamoDB TTL deleting `old`.
pub fn ttl_remove(old: &HashMap<String, AttributeValue>) -> Value {
    stream_record("REMOVE", Some(old), None, true)
}

/// The record of someone (the control plane, a user) deleting `old`: not an expiry.
pub fn user_remove(old: &HashMap<String, AttributeValue>) -> Value {
    stream_record("REMOVE", Some(old), None, false)
}

/// A batch as the event source mapping invokes the function with.
pub fn batch(records: Vec<Value>) -> Value {
    json!({ "Records": records })
}

/// What the function names a failed record by in `batchItemFailures`.
pub fn sequence_of(record: &Value) -> String {
    record["dynamodb"]["SequenceNumber"]
        .as_str()
        .unwrap()
        .to_string()
}
