//! Archiving before purge against moto's S3 (multipart uploads with SHA-256 checksums), through
//! the fault proxy for an upload that dies half-way, and restoring from the archive.

use std::collections::HashMap;
use std::fs;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::types::ChecksumMode;
use efs_sweeper::{SweepSummary, Sweeper, Unfinished};
use lifecycle_domain::archive::{archive_key, record_key, RETENTION_TAG};
use lifecycle_domain::layout::TrashName;
use lifecycle_domain::retention::RetentionPolicy;
use lifecycle_fs::archive::{restore_from_archive, ArchiveRestoreError};
use lifecycle_fs::restore::{RestoreError, Supplied};
use lifecycle_fs::WorkspaceFs;
use lifecycle_runtime::Aws;
use lifecycle_testkit::*;

const DAY: i64 = 86_400;
/// S3's smallest part: enough bytes of noise make an archive of two parts.
const PART: usize = 5 * 1024 * 1024;

/// A trash entry past its grace, its record kept with it (`status` of a pro workspace), with
/// `noise` bytes that do not compress.
fn trashed(fx: &Fixture, ws: &str, status: &str, noise: usize) -> (std::path::PathBuf, TrashName) {
    let name = TrashName::new(
        now() - 30 * DAY,
        lifecycle_domain::TenantId::parse("acme").unwrap(),
        lifecycle_domain::WorkspaceId::parse(ws).unwrap(),
        lifecycle_domain::layout::fresh_nonce(),
    );
    let entry = fx.root().join(".trash").join(name.to_string());
    fs::create_dir_all(entry.join("data/src")).unwrap();
    fs::write(entry.join("data/src/main.rs"), b"fn main() {}\n").unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let bytes: Vec<u8> = (0..noise)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    fs::write(entry.join("data/noise.bin"), bytes).unwrap();
    std::os::unix::fs::symlink("src/main.rs", entry.join("data/link")).unwrap();
    let mut item: HashMap<String, serde_json::Value> = HashMap::new();
    for (k, v) in fx.record("acme", ws, None) {
        let v = match v {
            AttributeValue::S(s) => serde_json::json!({"S": s}),
            AttributeValue::N(n) => serde_json::json!({"N": n}),
            other => panic!("{other:?}"),
        };
        item.insert(k, v);
    }
    item.insert(
        "subscriptionStatus".into(),
        serde_json::json!({"S": status}),
    );
    let kept = serde_json::json!({"deletedAt": name.deleted_at, "item": item});
    fs::write(
        entry.join("record.json"),
        serde_json::to_vec(&kept).unwrap(),
    )
    .unwrap();
    (entry, name)
}

fn archiving(fx: &Fixture, bucket: &str) -> Sweeper {
    let mut sweeper = fx.sweeper(&[("ARCHIVE_BUCKET", bucket)]);
    sweeper.archive.as_mut().unwrap().part_size = PART;
    sweeper
}

fn reasons(summary: &SweepSummary) -> Vec<String> {
    summary
        .actions
        .iter()
        .map(|a| a.reason.to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archived_workspace_is_verified_purged_and_comes_back() {
    let fx = Fixture::new().await;
    let bucket = fx.archive_bucket().await;
    let (entry, name) = trashed(&fx, "ws-arch", "active", PART + 1024 * 1024);
    let before = snapshot(&entry.join("data"));
    let summary = archiving(&fx, &bucket).run(now(), None).await.unwrap();
    assert_eq!(
        reasons(&summary),
        vec!["trash_grace_elapsed"],
        "{summary:?}"
    );
    assert!(!entry.exists(), "purged after the verified archive");

    // S3's own checksum of the object: a composite of two SHA-256 parts.
    let key = archive_key(&name);
    let head = fx
        .s3()
        .head_object()
        .bucket(&bucket)
        .key(&key)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert!(head.checksum_sha256().is_some(), "{head:?}");
    assert!(head.content_length().unwrap() > PART as i64);
    let tags = fx
        .s3()
        .get_object_tagging()
        .bucket(&bucket)
        .key(&key)
        .send()
        .await
        .unwrap();
    assert!(tags
        .tag_set()
        .iter()
        .any(|t| t.key() == RETENTION_TAG && t.value() == "90"));
    assert!(fx.keys(&bucket).await.contains(&record_key(&name)));
    assert_eq!(fx.open_uploads(&bucket).await, 0);

    // Back from the archive alone: same files, the link a link, the record re-created.
    let aws = Aws::new(fx.sdk.clone());
    let config = fx.config(&[]);
    let restored = restore_from_archive(
        aws.table(&config).as_ref(),
        &WorkspaceFs::new(fx.root()),
        aws.archive(&bucket),
        &name,
        &RetentionPolicy::default(),
        &Supplied::default(),
        now(),
    )
    .await
    .unwrap();
    assert_eq!(snapshot(&restored.place), before);
    assert!(fs::symlink_metadata(restored.place.join("link"))
        .unwrap()
        .file_type()
        .is_symlink());
    let record = fx.get("ws-arch").await.unwrap();
    assert_eq!(record["sizeBytes"], AttributeValue::N("1234".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_that_fails_half_way_leaves_the_efs_copy_and_the_next_run_retries() {
    let fx = Fixture::new().await;
    let bucket = fx.archive_bucket().await;
    let (entry, name) = trashed(&fx, "ws-flaky", "active", PART + 1024 * 1024);
    let before = snapshot(&entry);
    // The first part goes through; every later one (and its retries) fails.
    let proxy = FaultProxy::start(&["UploadPart=5xx:after1"]);
    let faulty = Fixture::with_endpoint(&proxy.endpoint).await;
    let mut sweeper = faulty.sweeper(&[
        ("ARCHIVE_BUCKET", bucket.as_str()),
        ("WORKSPACE_TABLE", fx.table.as_str()),
        ("EFS_ROOT", fx.root().to_str().unwrap()),
        ("EFS_FILE_SYSTEM_ID", fx.file_system_id.as_str()),
        ("ECS_CLUSTER", fx.cluster.as_str()),
    ]);
    sweeper.archive.as_mut().unwrap().part_size = PART;
    let summary = sweeper.run(now(), None).await.unwrap();
    assert!(
        proxy.counts()[0].2 >= 1,
        "a part failed: {:?}",
        proxy.counts()
    );
    assert!(summary.actions.is_empty(), "{summary:?}");
    assert_eq!(summary.not_done.len(), 1);
    assert_eq!(summary.not_done[0].reason, Unfinished::Failed);
    assert_eq!(snapshot(&entry), before, "the EFS copy is untouched");
    assert!(!fx.keys(&bucket).await.contains(&archive_key(&name)));
    assert_eq!(fx.open_uploads(&bucket).await, 0, "the upload was aborted");

    let summary = archiving(&fx, &bucket).run(now(), None).await.unwrap();
    assert_eq!(
        reasons(&summary),
        vec!["trash_grace_elapsed"],
        "{summary:?}"
    );
    assert!(!entry.exists());
    assert!(fx.keys(&bucket).await.contains(&archive_key(&name)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_subscription_is_purged_without_archiving() {
    let fx = Fixture::new().await;
    let bucket = fx.archive_bucket().await;
    let (entry, _) = trashed(&fx, "ws-cancelled", "cancelled", 1024);
    let summary = archiving(&fx, &bucket).run(now(), None).await.unwrap();
    assert_eq!(reasons(&summary), vec!["not_archived"], "{summary:?}");
    assert!(!entry.exists());
    assert!(fx.keys(&bucket).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archived_workspace_whose_record_exists_again_is_not_restored() {
    let fx = Fixture::new().await;
    let bucket = fx.archive_bucket().await;
    let (_, name) = trashed(&fx, "ws-again", "active", 1024);
    archiving(&fx, &bucket).run(now(), None).await.unwrap();
    assert!(fx.keys(&bucket).await.contains(&archive_key(&name)));
    fx.put(&fx.record("acme", "ws-again", None)).await;
    let aws = Aws::new(fx.sdk.clone());
    let config = fx.config(&[]);
    let store: Arc<dyn lifecycle_ports::ArchiveStore> = aws.archive(&bucket);
    let err = restore_from_archive(
        aws.table(&config).as_ref(),
        &WorkspaceFs::new(fx.root()),
        store,
        &name,
        &RetentionPolicy::default(),
        &Supplied::default(),
        now(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            ArchiveRestoreError::Restore(RestoreError::RecordExists(_))
        ),
        "{err}"
    );
    assert!(!fx.workspace_dir("acme", "ws-again").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deep_archive_archive_is_asked_back_from_s3_then_restored() {
    let fx = Fixture::new().await;
    let bucket = fx.archive_bucket().await;
    let (entry, name) = trashed(&fx, "ws-deep", "active", 1024);
    let before = snapshot(&entry.join("data"));
    archiving(&fx, &bucket).run(now(), None).await.unwrap();
    let key = archive_key(&name);
    // What the bucket's lifecycle rule does after ArchiveDeepArchiveAfterDays.
    fx.s3()
        .copy_object()
        .bucket(&bucket)
        .key(&key)
        .copy_source(format!("{bucket}/{key}"))
        .storage_class(aws_sdk_s3::types::StorageClass::DeepArchive)
        .send()
        .await
        .unwrap();
    let aws = Aws::new(fx.sdk.clone());
    let config = fx.config(&[]);
    let restore = || async {
        restore_from_archive(
            aws.table(&config).as_ref(),
            &WorkspaceFs::new(fx.root()),
            aws.archive(&bucket),
            &name,
            &RetentionPolicy::default(),
            &Supplied::default(),
            now(),
        )
        .await
    };
    let err = restore().await.unwrap_err();
    assert!(
        matches!(&err, ArchiveRestoreError::NotReadyYet { started: true, class, .. } if class == "DEEP_ARCHIVE"),
        "{err}"
    );
    assert!(!fx.workspace_dir("acme", "ws-deep").exists());
    // moto finishes a restore at once; S3 takes hours, and the operator runs the command again.
    let restored = restore().await.unwrap();
    assert_eq!(snapshot(&restored.place), before);
}
