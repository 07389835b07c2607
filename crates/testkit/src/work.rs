//! Fan-out: a work queue and a runs table on moto, and SQS's side of the event source mapping
//! (receive, the event a worker gets, delete what it acknowledged).

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use serde_json::{json, Value};

use crate::moto::unique;
use crate::Fixture;

/// A message as received from the queue.
#[derive(Debug, Clone)]
pub struct Received {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
}

impl Fixture {
    /// A new work queue and runs table: `(queue url, table name)`.
    pub async fn work_queue(&self) -> (String, String) {
        let sqs = aws_sdk_sqs::Client::new(&self.direct);
        let url = sqs
            .create_queue()
            .queue_name(unique("work"))
            .send()
            .await
            .expect("create queue")
            .queue_url
            .unwrap();
        let table = unique("runs");
        self.ddb
            .create_table()
            .table_name(&table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("id")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("id")
                    .key_type(KeyType::Hash)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("create runs table");
        (url, table)
    }

    /// Up to ten messages waiting in `url` (each invisible for a minute once received).
    pub async fn receive_units(&self, url: &str) -> Vec<Received> {
        let sqs = aws_sdk_sqs::Client::new(&self.direct);
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(60)
            .send()
            .await
            .expect("receive");
        out.messages()
            .iter()
            .map(|m| Received {
                message_id: m.message_id().unwrap().to_string(),
                receipt_handle: m.receipt_handle().unwrap().to_string(),
                body: m.body().unwrap().to_string(),
            })
            .collect()
    }

    /// Deletes a message a worker acknowledged.
    pub async fn delete_unit(&self, url: &str, message: &Received) {
        aws_sdk_sqs::Client::new(&self.direct)
            .delete_message()
            .queue_url(url)
            .receipt_handle(&message.receipt_handle)
            .send()
            .await
            .expect("delete message");
    }

    /// A run's header item (`None` when absent).
    pub async fn run_item(
        &self,
        table: &str,
        id: &str,
    ) -> Option<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        self.ddb
            .get_item()
            .table_name(table)
            .key("id", aws_sdk_dynamodb::types::AttributeValue::S(id.into()))
            .consistent_read(true)
            .send()
            .await
            .expect("get run")
            .item
    }
}

/// The event the SQS event source mapping hands a function for `messages`.
pub fn sqs_event(messages: &[Received]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            json!({
                "messageId": m.message_id,
                "receiptHandle": m.receipt_handle,
                "body": m.body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:work",
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    json!({ "Records": records })
}
