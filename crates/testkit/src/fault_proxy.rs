//! The project's fault proxy (`tools/fault-proxy`) in front of moto: throttling, 5xx, dropped
//! connections, latency and partial answers per operation, with counts a test can assert on.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

use crate::moto::{http, moto_endpoint};

/// The proxy of one test, killed on drop. Give its `endpoint` to [`crate::Fixture::with_endpoint`].
pub struct FaultProxy {
    child: Child,
    pub endpoint: String,
}

impl FaultProxy {
    /// Starts a proxy on a free port with `rules` (`OPERATION=FAULT:WHEN`, as
    /// `tools/fault-proxy/fault_proxy.py` documents them).
    pub fn start(rules: &[&str]) -> Self {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/fault-proxy/fault_proxy.py");
        let mut cmd = Command::new("python3");
        cmd.arg(script)
            .args(["--upstream", &moto_endpoint(), "--port", "0", "--seed", "7"]);
        for rule in rules {
            cmd.args(["--rule", rule]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .expect("start fault proxy");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        let endpoint = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .expect("proxy address")
            .to_string();
        Self { child, endpoint }
    }

    /// `(rule, matched, injected)` for each rule, as the proxy counted them.
    pub fn counts(&self) -> Vec<(String, u64, u64)> {
        let (_, body) = http("GET", &format!("{}/__faults", self.endpoint), "");
        let v: Value = serde_json::from_str(&body).unwrap();
        v["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["rule"].as_str().unwrap().to_string(),
                    r["matched"].as_u64().unwrap(),
                    r["injected"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    /// Replaces the rules (and their counts) while the proxy runs.
    pub fn set_rules(&self, rules: &[&str]) {
        let (status, body) = http(
            "POST",
            &format!("{}/__faults", self.endpoint),
            &json!({"rules": rules}).to_string(),
        );
        assert_eq!(status, 200, "{body}");
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
