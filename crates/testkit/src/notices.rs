//! Notices: an EventBridge bus whose "Workspace Expiring" events land in an SQS queue a test
//! reads.

use serde_json::Value;

use crate::moto::unique;
use crate::Fixture;

impl Fixture {
    /// A new event bus whose notices land in an SQS queue the test can read: `(bus, queue url)`.
    pub async fn notice_bus(&self) -> (String, String) {
        let events = aws_sdk_eventbridge::Client::new(&self.direct);
        let sqs = aws_sdk_sqs::Client::new(&self.direct);
        let bus = unique("notices");
        events
            .create_event_bus()
            .name(&bus)
            .send()
            .await
            .expect("create bus");
        let queue = sqs
            .create_queue()
            .queue_name(unique("notices"))
            .send()
            .await
            .expect("create queue");
        let url = queue.queue_url.unwrap();
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
            .clone();
        events
            .put_rule()
            .name("notices")
            .event_bus_name(&bus)
            .event_pattern(
                r#"{"source": ["workspace.lifecycle"], "detail-type": ["Workspace Expiring"]}"#,
            )
            .send()
            .await
            .expect("put rule");
        events
            .put_targets()
            .rule("notices")
            .event_bus_name(&bus)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("queue")
                    .arn(arn)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("put targets");
        (bus, url)
    }

    /// Every message now in the queue (their bodies, parsed).
    pub async fn drain(&self, queue_url: &str) -> Vec<Value> {
        let sqs = aws_sdk_sqs::Client::new(&self.direct);
        let mut out = Vec::new();
        loop {
            let got = sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("receive");
            let messages = got.messages.unwrap_or_default();
            if messages.is_empty() {
                return out;
            }
            for m in messages {
                out.push(serde_json::from_str(m.body().unwrap()).unwrap());
                sqs.delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
}
