//! A stub of the one ECR operation moto does not implement, UpdateImageStorageClass: a small
//! HTTP server on 127.0.0.1 answering the JSON 1.1 target
//! `AmazonEC2ContainerRegistry_V20150921.UpdateImageStorageClass` as ECR does, recording every
//! request, and answering the errors a test queues (throttling, server errors, refusals). Any
//! other target is refused (`UnknownOperationException`), so a test sees every call it did not
//! expect.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use aws_config::retry::RetryConfig;
use serde_json::{json, Value};

pub const TARGET: &str = "AmazonEC2ContainerRegistry_V20150921.UpdateImageStorageClass";

/// One request the stub received.
#[derive(Debug, Clone, PartialEq)]
pub struct StubRequest {
    /// `X-Amz-Target`.
    pub target: String,
    pub body: Value,
}

/// An answer a test queues for the next request.
#[derive(Debug, Clone)]
pub enum StubAnswer {
    /// 200 with this `imageStatus` (and the image asked about).
    Status(&'static str),
    /// 200 naming another image than the one asked about.
    OtherImage(String),
    /// An error answer: HTTP status, `__type`, message.
    Error(u16, &'static str, &'static str),
}

#[derive(Default)]
struct State {
    requests: Vec<StubRequest>,
    queued: VecDeque<StubAnswer>,
}

/// The running stub; it stops with the test process (its threads only answer).
pub struct EcrStub {
    endpoint: String,
    state: Arc<Mutex<State>>,
}

impl EcrStub {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the stub");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        Self { endpoint, state }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Answers the next request with `answer` (queued in order; past them: success).
    pub fn answer(&self, answer: StubAnswer) {
        self.state.lock().unwrap().queued.push_back(answer);
    }

    pub fn requests(&self) -> Vec<StubRequest> {
        self.state.lock().unwrap().requests.clone()
    }

    /// An ECR client pointed at the stub, with the SDK's own retries off: what the adapter
    /// does with each answer is what the test sees.
    pub async fn client(&self) -> aws_sdk_ecr::Client {
        let sdk = crate::sdk_config(&self.endpoint).await;
        let config = aws_sdk_ecr::config::Builder::from(&sdk)
            .retry_config(RetryConfig::disabled())
            .build();
        aws_sdk_ecr::Client::from_conf(config)
    }

    /// The project's ECR adapter on [`EcrStub::client`].
    pub async fn registry(&self) -> lifecycle_aws::EcrRegistry {
        lifecycle_aws::EcrRegistry::new(self.client().await)
    }
}

fn serve(stream: TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone the stream"));
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let (mut target, mut length) = (String::new(), 0usize);
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                match name.trim().to_ascii_lowercase().as_str() {
                    "x-amz-target" => target = value.trim().to_string(),
                    "content-length" => length = value.trim().parse().unwrap_or(0),
                    _ => {}
                }
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let (status, answer) = answer(state, &target, &body);
        let text = answer.to_string();
        let response = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\nx-amzn-RequestId: stub\r\n\r\n{text}",
            if status == 200 { "OK" } else { "Error" },
            text.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

fn answer(state: &Mutex<State>, target: &str, body: &Value) -> (u16, Value) {
    let mut state = state.lock().unwrap();
    state.requests.push(StubRequest {
        target: target.to_string(),
        body: body.clone(),
    });
    if target != TARGET {
        return (
            400,
            json!({"__type": "UnknownOperationException", "message": format!("the stub answers {TARGET} only")}),
        );
    }
    let image_id = body["imageId"].clone();
    let answer = state.queued.pop_front().unwrap_or_else(|| {
        StubAnswer::Status(match body["targetStorageClass"].as_str() {
            Some("ARCHIVE") => "ARCHIVED",
            _ => "ACTIVATING",
        })
    });
    let ok = |image_id: Value, status: &str| {
        json!({
            "registryId": "123456789012",
            "repositoryName": body["repositoryName"],
            "imageId": image_id,
            "imageStatus": status,
        })
    };
    match answer {
        StubAnswer::Status(status) => (200, ok(image_id, status)),
        StubAnswer::OtherImage(digest) => (200, ok(json!({"imageDigest": digest}), "ARCHIVED")),
        StubAnswer::Error(status, code, message) => {
            (status, json!({"__type": code, "message": message}))
        }
    }
}
