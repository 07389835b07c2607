//! The `lifecycle` binary against the moto server and a real temporary EFS root.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use lifecycle_runtime::{Function, Invocation};
use lifecycle_testkit::*;
use serde_json::Value;

fn lifecycle(fx: &Fixture, args: &[&str]) -> (i32, String, String) {
    lifecycle_with(fx, args, &[])
}

/// `lifecycle` with some variables changed (`None` removes one).
fn lifecycle_with(
    fx: &Fixture,
    args: &[&str],
    changes: &[(&str, Option<&str>)],
) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lifecycle"));
    command
        .args(args)
        // No terminal: a command that would ask must refuse instead.
        .stdin(Stdio::null())
        .envs(fx.vars(&[]))
        .env("AWS_ENDPOINT_URL", moto_endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("RUST_LOG", "off");
    for (var, value) in changes {
        match value {
            Some(v) => command.env(var, v),
            None => command.env_remove(var),
        };
    }
    let out = command.output().expect("run lifecycle");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json_of(fx: &Fixture, args: &[&str]) -> Value {
    let (code, out, err) = lifecycle(fx, &[args, &["--json"]].concat());
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

async fn seed(fx: &Fixture) {
    let now = lifecycle_domain::time::now_epoch();
    for (ws, tier, status, exp) in [
        ("ws-free", "free", "active", now - 60),
        ("ws-pro", "pro", "active", now + 3 * 3600),
        ("ws-ent", "enterprise", "cancelled", now + 3 * 86_400),
        ("ws-sus", "pro", "suspended", now + 30 * 86_400),
    ] {
        let mut item = fx.record("acme", ws, None);
        item.insert("tier".into(), AttributeValue::S(tier.into()));
        item.insert(
            "subscriptionStatus".into(),
            AttributeValue::S(status.into()),
        );
        item.insert("expiresAt".into(), AttributeValue::N(exp.to_string()));
        fx.put(&item).await;
        fx.make_workspace("acme", ws);
    }
    let mut held = fx.record("globex", "ws-held", None);
    held.remove("expiresAt");
    held.insert("hold".into(), AttributeValue::Bool(true));
    fx.put(&held).await;
}

#[tokio::test]
async fn status_counts_the_seeded_fleet() {
    let fx = Fixture::new().await;
    seed(&fx).await;
    let status = json_of(&fx, &["status"]);
    assert_eq!(status["workspaces"], 5);
    assert_eq!(
        status["byTier"],
        serde_json::json!({"enterprise": 1, "free": 1, "pro": 3})
    );
    assert_eq!(
        status["byStatus"],
        serde_json::json!({"active": 3, "cancelled": 1, "suspended": 1})
    );
    assert_eq!(
        status["expiringWithin24h"], 2,
        "ws-free (overdue) and ws-pro"
    );
    assert_eq!(status["expiringWithin7d"], 3);
    assert_eq!(status["held"], 1);
    assert_eq!(status["trash"]["entries"], 0);

    let forecast = &status["forecast"];
    let days = forecast["days"].as_array().unwrap();
    assert_eq!(days.len(), 30);
    assert_eq!(forecast["overdue"]["workspaces"], 1, "ws-free");
    assert_eq!(forecast["held"], 1);
    // ws-pro expires today or tomorrow (by the clock), ws-ent on the fourth day, ws-sus (30
    // days out) after the window.
    let per_day: Vec<u64> = days
        .iter()
        .map(|d| d["workspaces"].as_u64().unwrap())
        .collect();
    assert_eq!(per_day[0] + per_day[1], 1, "{per_day:?}");
    assert_eq!(per_day[3], 1, "{per_day:?}");
    assert_eq!(per_day.iter().sum::<u64>(), 2, "{per_day:?}");
    assert!(
        days[3]["bytes"].as_u64().unwrap() > 0,
        "the data is measured"
    );

    // Once expired, ws-free is in the trash, in the youngest band.
    expire_by_ttl(&fx, "ws-free").await;
    let status = json_of(&fx, &["status"]);
    assert_eq!(status["trash"]["entries"], 1);
    let bands = status["trashByAge"].as_array().unwrap();
    assert_eq!(bands[0]["label"], "0-1 d");
    assert_eq!(bands[0]["entries"], 1);
    assert_eq!(bands[0]["purgeDue"], false);
    assert!(bands.iter().any(|b| b["purgeDue"] == true));
    assert_eq!(status["trashOther"]["entries"], 0);
    let (code, text, err) = lifecycle(&fx, &["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(text.contains("expiring per day, next 30 days"), "{text}");
    assert!(text.contains("trash by age"), "{text}");
    assert!(text.contains('█'), "{text}");
}

/// What DynamoDB TTL does (moto never does it): the expired record deleted, and its REMOVE
/// handed to ttl-expiry, built as its `main` builds it.
async fn expire_by_ttl(fx: &Fixture, ws: &str) {
    let event = ttl_delete_unhandled(fx, ws).await;
    let function = fx.ttl_expiry(&[]);
    let response = Function::handle(&function, event, Invocation::now())
        .await
        .expect("a stream event");
    assert!(response.batch_item_failures.is_empty());
}

#[tokio::test]
async fn ttl_expiry_then_restore_round_trip_is_byte_identical() {
    let fx = Fixture::new().await;
    seed(&fx).await;
    let ap = fx.create_access_point("acme", "ws-free").await;
    fx.ddb
        .update_item()
        .table_name(&fx.table)
        .key("workspaceId", AttributeValue::S("ws-free".into()))
        .update_expression("SET accessPointId = :ap")
        .expression_attribute_values(":ap", AttributeValue::S(ap.clone()))
        .send()
        .await
        .unwrap();
    let before = snapshot(&fx.workspace_dir("acme", "ws-free"));
    expire_by_ttl(&fx, "ws-free").await;
    assert!(!fx.workspace_dir("acme", "ws-free").exists());
    assert!(fx.get("ws-free").await.is_none());
    assert!(!fx.access_point_exists(&ap).await);

    let restored = json_of(&fx, &["restore", "ws-free"]);
    assert_eq!(snapshot(&fx.workspace_dir("acme", "ws-free")), before);
    assert_eq!(
        PathBuf::from(restored["place"].as_str().unwrap()),
        fx.workspace_dir("acme", "ws-free")
    );
    let item = fx.get("ws-free").await.expect("record re-created");
    let new_ap = restored["accessPointId"].as_str().unwrap();
    assert_ne!(new_ap, ap);
    assert_eq!(item["accessPointId"], AttributeValue::S(new_ap.into()));
    // Made like the one it replaces: where the layout puts the workspace, tagged with its id.
    let described = fx
        .efs
        .describe_access_points()
        .access_point_id(new_ap)
        .send()
        .await
        .unwrap();
    let made = &described.access_points()[0];
    assert_eq!(made.file_system_id(), Some(fx.file_system_id.as_str()));
    assert_eq!(
        made.root_directory().and_then(|r| r.path()),
        Some("/workspaces/acme/ws-free")
    );
    let tag = |key: &str| {
        made.tags()
            .iter()
            .find(|t| t.key() == key)
            .map(|t| t.value().to_string())
    };
    assert_eq!(tag("workspaceId").as_deref(), Some("ws-free"));
    assert!(tag("createdAt").is_some_and(|t| t.parse::<i64>().is_ok()));
    let (code, _, err) = lifecycle(&fx, &["restore", "ws-free"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("no trash entry") && err.lines().count() == 1,
        "{err}"
    );
}

#[tokio::test]
async fn plan_is_stable_and_apply_does_exactly_the_plan() {
    let fx = Fixture::new().await;
    seed(&fx).await;
    let old = lifecycle_domain::time::now_epoch() - 10 * 86_400;
    std::fs::create_dir_all(
        fx.root()
            .join(".trash")
            .join(format!("{old}+acme+ws-gone"))
            .join("data"),
    )
    .unwrap();
    let (code, first, _) = lifecycle(&fx, &["plan", "sweep"]);
    assert_eq!(code, 0);
    let (_, second, _) = lifecycle(&fx, &["plan", "sweep"]);
    assert_eq!(first, second, "plan output is stable");
    assert!(
        first.contains("trash_grace_elapsed") && first.contains("total: 1 actions"),
        "{first}"
    );
    let plan = json_of(&fx, &["plan", "sweep"]);
    let applied = json_of(&fx, &["apply", "sweep", "--yes"]);
    let planned: Vec<&Value> = plan["actions"].as_array().unwrap().iter().collect();
    let done: Vec<&Value> = applied["actions"].as_array().unwrap().iter().collect();
    assert_eq!(planned.len(), 1, "{plan}");
    assert_eq!(planned.len(), done.len());
    for (p, d) in planned.iter().zip(&done) {
        assert_eq!(
            (&p["kind"], &p["entry"], &p["reason"]),
            (&d["kind"], &d["entry"], &d["reason"])
        );
    }
    assert!(!fx
        .root()
        .join(".trash")
        .join(format!("{old}+acme+ws-gone"))
        .exists());
}

#[tokio::test]
async fn touch_and_clear_errors() {
    let fx = Fixture::new().await;
    seed(&fx).await;
    let expiry = |item: &std::collections::HashMap<String, AttributeValue>| match &item["expiresAt"]
    {
        AttributeValue::N(n) => n.parse::<i64>().unwrap(),
        other => panic!("{other:?}"),
    };
    let before = expiry(&fx.get("ws-pro").await.unwrap());
    let touched = json_of(&fx, &["touch", "ws-pro"]);
    assert_eq!(touched["extended"][0]["workspaceId"], "ws-pro");
    let after = expiry(&fx.get("ws-pro").await.unwrap());
    assert!(after > before, "{before} -> {after}");
    assert_eq!(touched["extended"][0]["expiresAt"], after);

    let (code, _, err) = lifecycle(&fx, &["touch", "ws-missing"]);
    assert_ne!(code, 0);
    assert!(err.contains("no workspace ws-missing"), "{err}");
    let (code, _, err) = lifecycle(&fx, &["plan", "sweep", "--bogus"]);
    assert_eq!(code, 2);
    assert_eq!(err.lines().count(), 1, "{err}");
    let (code, _, err) = lifecycle(&fx, &["--endpoint-url", "http://127.0.0.1:1", "status"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("Connection refused") && err.lines().count() == 1,
        "{err}"
    );
    // Expiring records is DynamoDB TTL's work (the demo tooling imitates it), not an operator's.
    let (code, _, err) = lifecycle(&fx, &["expire"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("expire"), "{err}");
}

#[tokio::test]
async fn apply_refuses_without_confirmation_or_in_use_guard_and_deletes_nothing() {
    let fx = Fixture::new().await;
    seed(&fx).await;
    let old = lifecycle_domain::time::now_epoch() - 10 * 86_400;
    let due = fx.root().join(".trash").join(format!("{old}+acme+ws-gone"));
    std::fs::create_dir_all(due.join("data")).unwrap();
    // Each refusal is one line, exit code 1, and the due entry is still there.
    let refused = |(code, out, err): (i32, String, String), says: &[&str]| {
        assert_eq!(code, 1, "{out}{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(says.iter().all(|s| err.contains(s)), "{err}");
        assert!(due.exists(), "nothing deleted");
    };
    // No --yes, and no terminal to ask on: the plan is shown, then refused.
    let (code, out, err) = lifecycle(&fx, &["apply", "sweep"]);
    assert!(
        out.contains("purge_trash") && out.contains("total: 1 actions"),
        "{out}"
    );
    refused(
        (code, out, err),
        &[
            "refusing to apply these 1 actions without a terminal",
            "--yes",
        ],
    );
    // Deleting needs the in-use guard, or `none` said explicitly.
    refused(
        lifecycle_with(&fx, &["apply", "sweep", "--yes"], &[("ECS_CLUSTER", None)]),
        &["ECS_CLUSTER", "is required", "none"],
    );
    refused(
        lifecycle_with(
            &fx,
            &["apply", "sweep", "--yes"],
            &[("ECS_CLUSTER", Some(" "))],
        ),
        &["ECS_CLUSTER", "blank"],
    );
    // The same entry goes once confirmed: the refusals above were what kept it.
    let (code, _, err) = lifecycle(&fx, &["apply", "sweep", "--yes"]);
    assert_eq!(code, 0, "{err}");
    assert!(!due.exists());
}

/// A plan (and `status`, which shows one) predicts what a delete would do, so it needs the in-use
/// guard as the delete does, or `none` said explicitly: without it, a plan showed as orphans the
/// workspaces running tasks use, without a word (red team).
#[tokio::test]
async fn plans_need_the_in_use_guard_and_settings_are_checked() {
    let fx = Fixture::new().await;
    seed(&fx).await;
    let no_cluster = [("ECS_CLUSTER", None)];
    for args in [&["status"][..], &["plan", "sweep"][..]] {
        let (code, _, err) = lifecycle_with(&fx, args, &no_cluster);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(
            ["ECS_CLUSTER", "is required", "none"]
                .iter()
                .all(|s| err.contains(s)),
            "{err}"
        );
        let (code, _, err) = lifecycle_with(&fx, args, &[("ECS_CLUSTER", Some("none"))]);
        assert_eq!(code, 0, "{args:?}, the guard off as said: {err}");
    }
    let (code, _, err) = lifecycle_with(&fx, &["status"], &[("DRYRUN", Some("true"))]);
    assert_ne!(code, 0);
    assert!(err.contains("did you mean DRY_RUN"), "{err}");
    let (code, _, err) = lifecycle_with(&fx, &["status"], &[("ECS_CLUSTER", Some(" "))]);
    assert_ne!(code, 0);
    assert!(
        err.contains("ECS_CLUSTER") && err.contains("blank"),
        "{err}"
    );
}

/// A TTL deletion whose batch Lambda gave up on: the record is gone, the data still in place.
async fn ttl_delete_unhandled(fx: &Fixture, ws: &str) -> Value {
    let old = fx
        .ddb
        .delete_item()
        .table_name(&fx.table)
        .key("workspaceId", AttributeValue::S(ws.into()))
        .return_values(ReturnValue::AllOld)
        .send()
        .await
        .unwrap()
        .attributes
        .expect("the record existed");
    batch(vec![ttl_remove(&old)])
}

#[tokio::test]
async fn replay_lists_then_hands_failed_batches_to_ttl_expiry_again() {
    let fx = Fixture::new().await;
    seed(&fx).await;
    let bucket = fx.bucket().await;
    let (code, out, err) = lifecycle(&fx, &["replay", "--bucket", &bucket]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("no failed batches"), "{out}");

    let event = ttl_delete_unhandled(&fx, "ws-free").await;
    let key = "aws/lambda/esm/2026/11/28/04/batch-1";
    fx.put_object(
        &bucket,
        key,
        lifecycle_testkit::s3::failed_batch_object(&event),
    )
    .await;
    // The record of ws-pro was deleted by a user meanwhile: not a TTL deletion, nothing done.
    let listed = json_of(&fx, &["replay", "--bucket", &bucket]);
    assert_eq!(listed[0]["key"], key, "{listed}");
    assert!(
        fx.workspace_dir("acme", "ws-free").exists(),
        "listing changes nothing"
    );

    // A dry run decides every record, says what it would do (the audit lines on stderr) and
    // changes nothing.
    let (code, out, err) = lifecycle_with(
        &fx,
        &[
            "replay",
            "--bucket",
            &bucket,
            "--all",
            "--dry-run",
            "--json",
        ],
        &[("RUST_LOG", None)],
    );
    assert_eq!(code, 0, "{err}");
    let dry: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(dry["dryRun"], true);
    let audits: Vec<Value> = err
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|l: &Value| l["target"] == "audit")
        .collect();
    assert!(
        audits.iter().any(|a| a["action"] == "move_to_trash"
            && a["workspaceId"] == "ws-free"
            && a["dryRun"] == true),
        "{err}"
    );
    assert_eq!(dry["batches"][0]["records"], 1);
    assert!(fx.workspace_dir("acme", "ws-free").exists());

    // Without a terminal and without --yes, nothing is replayed.
    let (code, _, err) = lifecycle(&fx, &["replay", "--bucket", &bucket, "--key", key]);
    assert_ne!(code, 0);
    assert!(err.contains("--yes"), "{err}");
    assert!(fx.workspace_dir("acme", "ws-free").exists());

    let done = json_of(&fx, &["replay", "--bucket", &bucket, "--key", key, "--yes"]);
    assert_eq!(done["batches"][0]["failedAgain"], serde_json::json!([]));
    assert!(
        !fx.workspace_dir("acme", "ws-free").exists(),
        "now in the trash"
    );
    let trash: Vec<_> = std::fs::read_dir(fx.root().join(".trash"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        trash.len() == 1 && trash[0].contains("+acme+ws-free+"),
        "{trash:?}"
    );
    // Again: the same entry, nothing else moved.
    let again = json_of(&fx, &["replay", "--bucket", &bucket, "--all", "--yes"]);
    assert_eq!(again["batches"][0]["failedAgain"], serde_json::json!([]));
    assert_eq!(
        std::fs::read_dir(fx.root().join(".trash")).unwrap().count(),
        1
    );
}

#[tokio::test]
async fn replay_keeps_a_workspace_recreated_since_and_refuses_what_it_cannot_read() {
    let fx = Fixture::new().await;
    seed(&fx).await;
    let event = ttl_delete_unhandled(&fx, "ws-pro").await;
    // Re-created since the batch failed: the replay must keep it.
    let item = fx.record("acme", "ws-pro", None);
    fx.put(&item).await;
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("batch.json");
    std::fs::write(&saved, lifecycle_testkit::s3::failed_batch_object(&event)).unwrap();
    let done = json_of(&fx, &["replay", "--file", saved.to_str().unwrap(), "--yes"]);
    assert_eq!(done["batches"][0]["failedAgain"], serde_json::json!([]));
    assert!(fx.workspace_dir("acme", "ws-pro").exists());
    assert!(fx.get("ws-pro").await.is_some());

    // An SQS-style pointer (no payload), a missing key, no bucket at all: one clear line each.
    let bucket = fx.bucket().await;
    fx.put_object(
        &bucket,
        "pointer",
        br#"{"requestContext": {}, "DDBStreamBatchInfo": {}}"#.to_vec(),
    )
    .await;
    // Bigger than any failed batch: refused before it is read.
    let big = fx.bucket().await;
    fx.put_object(&big, "huge", vec![b' '; 17 * 1024 * 1024])
        .await;
    for (args, expected) in [
        (
            vec!["replay", "--bucket", bucket.as_str(), "--all", "--yes"],
            "SQS or SNS",
        ),
        (
            vec![
                "replay",
                "--bucket",
                bucket.as_str(),
                "--key",
                "nope",
                "--yes",
            ],
            "no such object",
        ),
        (vec!["replay", "--all", "--yes"], "FAILED_BATCH_BUCKET"),
        (
            vec!["replay", "--bucket", big.as_str(), "--key", "huge", "--yes"],
            "more than",
        ),
    ] {
        let (code, _, err) = lifecycle_with(&fx, &args, &[("FAILED_BATCH_BUCKET", None)]);
        assert_ne!(code, 0, "{args:?}");
        assert!(
            err.contains(expected) && err.lines().count() == 1,
            "{args:?}: {err}"
        );
    }
}

#[tokio::test]
async fn an_archived_workspace_is_listed_and_restored_from_the_archive() {
    let fx = Fixture::new().await;
    seed(&fx).await;
    let bucket = fx.archive_bucket().await;
    let before = snapshot(&fx.workspace_dir("acme", "ws-free"));
    expire_by_ttl(&fx, "ws-free").await;
    let summary = fx
        .sweeper(&[
            ("TRASH_GRACE_DAYS", "0"),
            ("ARCHIVE_BUCKET", bucket.as_str()),
        ])
        // Two days on: no entry is archived and purged before it is a day old, whatever the grace.
        .run(lifecycle_domain::time::now_epoch() + 2 * 86_400, None)
        .await
        .unwrap();
    assert_eq!(summary.actions.len(), 1, "{summary:?}");
    assert!(std::fs::read_dir(fx.root().join(".trash"))
        .unwrap()
        .next()
        .is_none());
    let with_bucket = [("ARCHIVE_BUCKET", Some(bucket.as_str()))];

    let (code, out, err) = lifecycle_with(
        &fx,
        &["archive", "ls", "--tenant", "acme", "--json"],
        &with_bucket,
    );
    assert_eq!(code, 0, "{err}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{out}");
    assert_eq!(listed[0]["workspaceId"], "ws-free");
    // free tier: kept 30 days from its archiving.
    assert_eq!(
        listed[0]["expiresAt"].as_i64().unwrap() - listed[0]["archivedAt"].as_i64().unwrap(),
        30 * 86_400
    );
    let (code, out, _) = lifecycle_with(
        &fx,
        &["archive", "ls", "--tenant", "globex", "--json"],
        &with_bucket,
    );
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        Value::Array(vec![])
    );

    let (code, out, err) = lifecycle_with(&fx, &["status", "--json"], &with_bucket);
    assert_eq!(code, 0, "{err}");
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["archive"]["archives"], 1, "{out}");
    assert_eq!(status["archive"]["byClass"]["STANDARD"][0], 1, "{out}");
    assert!(status["archive"]["bytes"].as_u64().unwrap() > 0);

    // Not in the trash any more: without the bucket there is nothing to restore from.
    let (code, _, err) = lifecycle(&fx, &["restore", "ws-free"]);
    assert_ne!(code, 0);
    assert!(err.contains("no trash entry"), "{err}");
    let (code, out, err) = lifecycle_with(&fx, &["restore", "ws-free", "--json"], &with_bucket);
    assert_eq!(code, 0, "{err}");
    let restored: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        PathBuf::from(restored["place"].as_str().unwrap()),
        fx.workspace_dir("acme", "ws-free")
    );
    assert_eq!(snapshot(&fx.workspace_dir("acme", "ws-free")), before);
    assert!(fx.get("ws-free").await.is_some(), "record re-created");

    // Its record exists again: a second restore from the archive is refused.
    std::fs::remove_dir_all(fx.workspace_dir("acme", "ws-free")).unwrap();
    let (code, _, err) = lifecycle_with(&fx, &["restore", "ws-free"], &with_bucket);
    assert_ne!(code, 0);
    assert!(err.contains("has a record again"), "{err}");
    assert!(!fx.workspace_dir("acme", "ws-free").exists());
}

#[tokio::test]
async fn runs_shows_each_fanned_out_run_and_its_progress() {
    use lifecycle_runtime::Function;
    let fx = Fixture::new().await;
    let (url, runs) = fx.work_queue().await;
    let now = lifecycle_domain::time::now_epoch();
    let trash = fx.root().join(".trash").join(format!(
        "{}+acme+ws-gone+0123456789abcdef",
        now - 30 * 86_400
    ));
    std::fs::create_dir_all(trash.join("data")).unwrap();
    let sweeper = fx.sweeper(&[("WORK_QUEUE_URL", &url), ("RUNS_TABLE", &runs)]);
    sweeper
        .handle(
            serde_json::json!({}),
            lifecycle_runtime::Invocation::at(now),
        )
        .await
        .unwrap();
    let listed = json_of(&fx, &["runs", "--runs-table", &runs]);
    let run = &listed.as_array().unwrap()[0];
    assert_eq!(
        (
            run["function"].as_str(),
            run["unitsTotal"].as_i64(),
            run["unitsLeft"].as_i64()
        ),
        (Some("efs-sweeper"), Some(1), Some(1)),
        "{listed}"
    );
    assert!(run["reportedAt"].is_null());
    let messages = fx.receive_units(&url).await;
    sweeper
        .handle(
            lifecycle_testkit::work::sqs_event(&messages),
            lifecycle_runtime::Invocation::at(now),
        )
        .await
        .unwrap();
    let listed = json_of(
        &fx,
        &["runs", "--runs-table", &runs, "--function", "efs-sweeper"],
    );
    let run = &listed.as_array().unwrap()[0];
    assert_eq!(run["unitsLeft"], 0);
    assert_eq!(run["counters"]["TrashPurged"], 1);
    assert!(run["reportedAt"].is_i64());
    let none = json_of(
        &fx,
        &["runs", "--runs-table", &runs, "--function", "ecr-pruner"],
    );
    assert_eq!(none, serde_json::json!([]));
    let (code, out, _) = lifecycle(&fx, &["runs", "--runs-table", &runs]);
    assert_eq!(code, 0);
    assert!(
        out.contains("done, reported") && out.contains("TrashPurged 1"),
        "{out}"
    );
}
