//! The ports a restore re-creates an access point through, against the moto server: the EFS
//! adapter makes what the spec says, and the table records it only on the record as read.

use aws_sdk_dynamodb::types::AttributeValue;
use lifecycle_domain::access_point::{identify, AccessPointSpec};
use lifecycle_domain::record::{attr, Observed};
use lifecycle_domain::{TenantId, WorkspaceId};
use lifecycle_runtime::Aws;
use lifecycle_testkit::*;

#[tokio::test]
async fn an_access_point_is_created_as_specified_and_recognised_as_the_workspaces() {
    let fx = Fixture::new().await;
    let config = fx.config(&[]);
    let points = Aws::new(fx.sdk.clone()).access_points();
    let (tenant, ws) = (
        TenantId::parse("acme").unwrap(),
        WorkspaceId::parse("ws-1").unwrap(),
    );
    let spec = AccessPointSpec::for_workspace(
        &fx.file_system_id,
        &config.access_points,
        &tenant,
        &ws,
        1_800_000_000,
    );
    let id = points.create(&spec).await.unwrap();
    let made = points.describe(&id).await.unwrap().expect("it exists");
    assert_eq!(made.file_system_id, fx.file_system_id);
    assert_eq!(made.root_path.as_deref(), Some("/workspaces/acme/ws-1"));
    assert_eq!(made.tags, spec.tags);
    assert_eq!(made.created_at(), Some(1_800_000_000));
    let owner = identify(&made, &config.access_points).expect("a workspace access point");
    assert_eq!((owner.tenant, owner.workspace), (Some(tenant), ws));
}

#[tokio::test]
async fn an_access_point_is_recorded_only_on_the_record_as_read() {
    let fx = Fixture::new().await;
    let table = Aws::new(fx.sdk.clone()).table(&fx.config(&[]));
    let ws = WorkspaceId::parse("ws-1").unwrap();
    let record = fx.record("acme", "ws-1", None);
    fx.put(&record).await;
    let read = table.get(&ws).await.unwrap().unwrap();
    let observed = Observed::known(&read);

    // The record changed after it was read (a heartbeat): refused, nothing written.
    let mut touched = record.clone();
    touched.insert("lastActivityAt".into(), AttributeValue::N("1".into()));
    fx.put(&touched).await;
    assert!(!table
        .set_access_point(&ws, &observed, "fsap-1")
        .await
        .unwrap());
    assert!(!fx.get("ws-1").await.unwrap().contains_key("accessPointId"));

    // As read: written.
    let read = table.get(&ws).await.unwrap().unwrap();
    let observed = Observed::known(&read);
    assert!(table
        .set_access_point(&ws, &observed, "fsap-1")
        .await
        .unwrap());
    let stored = table.get(&ws).await.unwrap().unwrap();
    assert_eq!(stored.text(attr::ACCESS_POINT_ID), Some("fsap-1"));
    // Every other attribute is as it was.
    let mut expected = read.clone();
    expected.insert(
        attr::ACCESS_POINT_ID,
        lifecycle_domain::record::Value::S("fsap-1".into()),
    );
    assert_eq!(stored, expected);

    // A record that is gone gets nothing, and is not created by the write.
    fx.ddb
        .delete_item()
        .table_name(&fx.table)
        .key("workspaceId", AttributeValue::S("ws-1".into()))
        .send()
        .await
        .unwrap();
    assert!(!table
        .set_access_point(&ws, &observed, "fsap-2")
        .await
        .unwrap());
    assert!(fx.get("ws-1").await.is_none());
}
