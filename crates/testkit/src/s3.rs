//! Failed batches: a bucket with objects in the shape Lambda's S3 on-failure destination writes
//! for a stream source (metadata, and the invocation's payload as JSON text).

use serde_json::{json, Value};

use crate::moto::unique;
use crate::Fixture;

impl Fixture {
    /// An S3 client for set-up and checks (straight to moto, path-style).
    pub fn s3(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::config::Builder::from(&self.direct)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// A new, empty bucket.
    pub async fn bucket(&self) -> String {
        let bucket = unique("failed-batches").to_lowercase();
        self.s3()
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .expect("create bucket");
        bucket
    }

    /// A new archive bucket, versioned as the template makes it.
    pub async fn archive_bucket(&self) -> String {
        let bucket = unique("archive").to_lowercase();
        let s3 = self.s3();
        s3.create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .expect("create bucket");
        s3.put_bucket_versioning()
            .bucket(&bucket)
            .versioning_configuration(
                aws_sdk_s3::types::VersioningConfiguration::builder()
                    .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .expect("versioning");
        bucket
    }

    /// Multipart uploads of `bucket` started and neither completed nor aborted.
    pub async fn open_uploads(&self, bucket: &str) -> usize {
        self.s3()
            .list_multipart_uploads()
            .bucket(bucket)
            .send()
            .await
            .expect("list uploads")
            .uploads()
            .len()
    }

    /// The keys of `bucket`.
    pub async fn keys(&self, bucket: &str) -> Vec<String> {
        self.s3()
            .list_objects_v2()
            .bucket(bucket)
            .send()
            .await
            .expect("list objects")
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_string))
            .collect()
    }

    pub async fn put_object(&self, bucket: &str, key: &str, body: Vec<u8>) {
        self.s3()
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(body.into())
            .send()
            .await
            .expect("put object");
    }
}

/// The object Lambda writes when it gives up on `event` (a stream batch) after its retries.
pub fn failed_batch_object(event: &Value) -> Vec<u8> {
    let records = event["Records"].as_array().map(Vec::len).unwrap_or(0);
    let sequence = |i: usize| {
        event["Records"][i]["dynamodb"]["SequenceNumber"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    serde_json::to_vec(&json!({
        "requestContext": {
            "requestId": "5c1e4d7e-0c8b-4f5e-9b1a-2f3c4d5e6f70",
            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:ttl-expiry",
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": 3
        },
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0",
        "timestamp": "2026-11-28T04:00:06.021Z",
        "DDBStreamBatchInfo": {
            "shardId": "shardId-00000001573689847184-864758bb",
            "startSequenceNumber": sequence(0),
            "endSequenceNumber": sequence(records.saturating_sub(1)),
            "batchSize": records,
            "streamArn": "arn:aws:dynamodb:us-east-1:123456789012:table/workspaces/stream/2026-11-01T00:00:00.000"
        },
        "payload": event.to_string()
    }))
    .expect("serializes")
}
