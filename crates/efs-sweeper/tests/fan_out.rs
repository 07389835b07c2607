//! The sweep fanned out on moto: the coordinator's run in DynamoDB and SQS, workers fed the
//! queue's messages as the event source mapping feeds them, and the ledger's conditions.

use std::fs;

use aws_sdk_dynamodb::types::AttributeValue;
use efs_sweeper::fanout::SweepCoordinated;
use efs_sweeper::{SweepOutput, Sweeper};
use lifecycle_domain::fanout::{Counters, RunHeader, UnitEntry};
use lifecycle_domain::layout::TrashName;
use lifecycle_ports::fanout::{Claim, Finish};
use lifecycle_ports::Failure;
use lifecycle_runtime::{Function, Invocation};
use lifecycle_testkit::work::{sqs_event, Received};
use lifecycle_testkit::*;

const H: i64 = 3600;
const DAY: i64 = 86_400;

fn now() -> i64 {
    lifecycle_domain::time::now_epoch()
}

fn trash_entry(fx: &Fixture, deleted_at: i64, tenant: &str, ws: &str) -> std::path::PathBuf {
    let name = TrashName::new(
        deleted_at,
        lifecycle_domain::TenantId::parse(tenant).unwrap(),
        lifecycle_domain::WorkspaceId::parse(ws).unwrap(),
        lifecycle_domain::layout::fresh_nonce(),
    );
    let entry = fx.root().join(".trash").join(name.to_string());
    fs::create_dir_all(entry.join("data/a")).unwrap();
    for i in 0..5 {
        fs::write(entry.join(format!("data/a/f{i}")), b"0123456789").unwrap();
    }
    fs::write(entry.join("record.json"), b"{\"item\": null}").unwrap();
    entry
}

struct Fanned {
    fx: Fixture,
    url: String,
    table: String,
}

impl Fanned {
    async fn new() -> Self {
        let fx = Fixture::new().await;
        let (url, table) = fx.work_queue().await;
        Self { fx, url, table }
    }

    fn sweeper(&self) -> Sweeper {
        self.fx.sweeper(&[
            ("WORK_QUEUE_URL", &self.url),
            ("RUNS_TABLE", &self.table),
            ("UNIT_MAX_ACTIONS", "2"),
        ])
    }

    async fn coordinate(&self, at: i64) -> SweepCoordinated {
        match self
            .sweeper()
            .handle(serde_json::json!({}), Invocation::at(at))
            .await
            .unwrap()
        {
            SweepOutput::Coordinated(c) => c,
            other => panic!("not a coordinator's answer: {other:?}"),
        }
    }

    /// Hands `messages` to a worker; deletes what it acknowledged (as the mapping does) and
    /// returns the ids it asked to get again.
    async fn deliver(&self, messages: &[Received], at: i64) -> Vec<String> {
        let out = self
            .sweeper()
            .handle(sqs_event(messages), Invocation::at(at))
            .await
            .unwrap();
        let SweepOutput::Units(response) = out else {
            panic!("not a worker's answer: {out:?}");
        };
        let again: Vec<String> = response
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        for m in messages {
            if !again.contains(&m.message_id) {
                self.fx.delete_unit(&self.url, m).await;
            }
        }
        again
    }

    fn counter(&self, item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> i64 {
        match item.get(&format!("c_{name}")) {
            Some(AttributeValue::N(n)) => n.parse().unwrap(),
            _ => 0,
        }
    }
}

#[tokio::test]
async fn a_fanned_out_sweep_does_what_one_run_does_and_reports_once() {
    let f = Fanned::new().await;
    let fx = &f.fx;
    let due: Vec<_> = (0..3)
        .map(|i| trash_entry(fx, now() - 30 * DAY, "acme", &format!("ws-gone{i}")))
        .collect();
    let recent = trash_entry(fx, now() - DAY, "acme", "ws-recent");
    for i in 0..3 {
        fx.make_workspace("acme", &format!("ws-orphan{i}"));
    }
    fx.make_workspace("acme", "ws-owned");
    fx.put(&fx.record("acme", "ws-owned", None)).await;
    let later = now() + 25 * H;

    let run = f.coordinate(later).await;
    let id = run.run.run_id.clone().unwrap();
    assert_eq!((run.actions, run.run.units, run.run.enqueued), (6, 5, 5));
    assert!(
        due.iter().all(|e| e.exists()),
        "the coordinator acts on nothing"
    );
    // A second schedule while the run goes on opens nothing.
    let second = f
        .sweeper()
        .handle(serde_json::json!({}), Invocation::at(later))
        .await;
    assert!(second.unwrap_err().to_string().contains("still going"));

    // One message at a time, as with BatchSize 1; a duplicate of each too.
    let mut seen = Vec::new();
    loop {
        let messages = fx.receive_units(&f.url).await;
        if messages.is_empty() {
            break;
        }
        for m in messages {
            assert!(f.deliver(std::slice::from_ref(&m), later).await.is_empty());
            seen.push(m);
        }
    }
    assert_eq!(seen.len(), 5);
    for m in &seen {
        assert!(
            f.deliver(std::slice::from_ref(m), later).await.is_empty(),
            "a duplicate is acknowledged"
        );
    }

    let header = fx.run_item(&f.table, &id).await.unwrap();
    assert_eq!(f.counter(&header, "TrashPurged"), 3);
    assert_eq!(f.counter(&header, "OrphanDirectories"), 3);
    assert_eq!(f.counter(&header, "UnitsDone"), 5, "each unit counted once");
    assert_eq!(
        f.counter(&header, "FilesFreed"),
        18,
        "5 files and record.json, 3 times"
    );
    assert_eq!(header["unitsLeft"], AttributeValue::N("0".into()));
    assert!(header.contains_key("reportedAt"));
    assert!(
        fx.run_item(&f.table, "lock#efs-sweeper").await.is_none(),
        "the lock is given back"
    );
    assert!(due.iter().all(|e| !e.exists()) && recent.exists());
    assert!(fx.root().join("acme/ws-owned").exists());
    for i in 0..3 {
        assert!(!fx.root().join(format!("acme/ws-orphan{i}")).exists());
    }
}

#[tokio::test]
async fn a_record_back_between_the_plan_and_the_unit_keeps_the_directory() {
    let f = Fanned::new().await;
    let fx = &f.fx;
    let dir = fx.make_workspace("acme", "ws-back");
    let later = now() + 25 * H;
    f.coordinate(later).await;
    // The workspace gets its record again after the coordinator planned its move.
    fx.put(&fx.record("acme", "ws-back", None)).await;
    let messages = fx.receive_units(&f.url).await;
    assert_eq!(messages.len(), 1);
    assert!(f.deliver(&messages, later).await.is_empty());
    assert!(dir.exists(), "re-checked right before the move: kept");
    assert!(!fs::read_dir(fx.root().join(".trash"))
        .map(|mut d| d.next().is_some())
        .unwrap_or(false));
}

#[tokio::test]
async fn the_ledger_on_dynamodb_keeps_its_conditions() {
    let f = Fanned::new().await;
    let ledger = lifecycle_runtime::Aws::new(f.fx.sdk.clone()).run_ledger(&f.table);
    let at = now();
    let run = RunHeader {
        run_id: "efs-sweeper-1-a".into(),
        function: "efs-sweeper".into(),
        started_at: at,
        valid_until: at + DAY,
        dry_run: false,
        counters: Counters::from([("Actions".to_string(), 2)]),
    };
    let units = [
        UnitEntry {
            unit: "0".into(),
            digest: "d0".into(),
        },
        UnitEntry {
            unit: "1".into(),
            digest: "d1".into(),
        },
    ];
    ledger.open(&run, &units).await.unwrap();
    let other = RunHeader {
        run_id: "efs-sweeper-1-b".into(),
        ..run.clone()
    };
    let locked = ledger.open(&other, &units).await.unwrap_err();
    assert_eq!(locked.failure, Failure::Conflict, "{locked}");
    assert!(f.fx.run_item(&f.table, "efs-sweeper-1-b").await.is_none());

    let id = run.run_id.as_str();
    assert_eq!(
        ledger
            .claim(id, "0", "forged", "w1", at + 60, at)
            .await
            .unwrap(),
        Claim::DigestMismatch
    );
    assert_eq!(
        ledger
            .claim(id, "7", "d0", "w1", at + 60, at)
            .await
            .unwrap(),
        Claim::NoSuchUnit
    );
    assert_eq!(
        ledger
            .claim(id, "0", "d0", "w1", at + 60, at)
            .await
            .unwrap(),
        Claim::Claimed
    );
    assert_eq!(
        ledger
            .claim(id, "0", "d0", "w2", at + 60, at)
            .await
            .unwrap(),
        Claim::Held
    );
    // w1's lease ends; w2 takes the unit over, and w1's late finish is not counted.
    assert_eq!(
        ledger
            .claim(id, "0", "d0", "w2", at + 200, at + 61)
            .await
            .unwrap(),
        Claim::Claimed
    );
    let one = Counters::from([("TrashPurged".to_string(), 1)]);
    assert_eq!(
        ledger.finish(id, "0", "w1", &one, at).await.unwrap(),
        Finish::NotOwner
    );
    assert_eq!(
        ledger.finish(id, "0", "w2", &one, at).await.unwrap(),
        Finish::Counted(None)
    );
    assert_eq!(
        ledger
            .claim(id, "0", "d0", "w3", at + 60, at + 300)
            .await
            .unwrap(),
        Claim::AlreadyDone
    );
    // A continuation keeps the run open until it is done.
    ledger
        .add_unit(
            id,
            &UnitEntry {
                unit: "1+c".into(),
                digest: "dc".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        ledger
            .claim(id, "1", "d1", "w1", at + 60, at)
            .await
            .unwrap(),
        Claim::Claimed
    );
    assert_eq!(
        ledger.finish(id, "1", "w1", &one, at).await.unwrap(),
        Finish::Counted(None)
    );
    assert_eq!(
        ledger
            .claim(id, "1+c", "dc", "w1", at + 60, at)
            .await
            .unwrap(),
        Claim::Claimed
    );
    let Finish::Counted(Some(state)) = ledger.finish(id, "1+c", "w1", &one, at).await.unwrap()
    else {
        panic!("the last finish reports");
    };
    assert_eq!(
        (
            state.units_left,
            state.counters["TrashPurged"],
            state.counters["Actions"]
        ),
        (0, 3, 2)
    );
    // The lock is free again.
    ledger.open(&other, &units).await.unwrap();
}
