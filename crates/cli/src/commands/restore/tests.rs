//! Re-creating a restored workspace's access point against the in-memory ports: recorded only
//! on the record the restore wrote, decided again when the record changes meanwhile.

use lifecycle_domain::access_point::{AccessPointRules, AccessPointSpec};
use lifecycle_domain::layout::TrashName;
use lifecycle_domain::record::{attr, Attributes, Value};
use lifecycle_domain::{TenantId, WorkspaceId};
use lifecycle_ports::fakes::{MemoryAccessPoints, MemoryTable};
use lifecycle_ports::WorkspaceTable;

use super::{choose, recreate_access_point};

const NOW: i64 = 1_800_000_000;

fn entry(deleted_at: i64, tenant: &str, ws: &str) -> TrashName {
    TrashName::new(
        deleted_at,
        TenantId::parse(tenant).unwrap(),
        WorkspaceId::parse(ws).unwrap(),
        format!("{:016x}", deleted_at),
    )
}

fn record(tenant: &str, ws: &str) -> Attributes {
    [
        (attr::WORKSPACE_ID, Value::S(ws.into())),
        (attr::TENANT_ID, Value::S(tenant.into())),
        (attr::TIER, Value::S("pro".into())),
        (attr::SUBSCRIPTION_STATUS, Value::S("active".into())),
        (attr::LAST_ACTIVITY_AT, Value::N(NOW.to_string())),
        (attr::EXPIRES_AT, Value::N((NOW + 86_400).to_string())),
    ]
    .into_iter()
    .collect()
}

fn spec(entry: &TrashName) -> AccessPointSpec {
    let rules = AccessPointRules {
        root_prefix: "/workspaces".into(),
        ..AccessPointRules::default()
    };
    AccessPointSpec::for_workspace("fs-1", &rules, &entry.tenant, &entry.workspace, NOW)
}

async fn stored(table: &MemoryTable, ws: &str) -> Attributes {
    let id = WorkspaceId::parse(ws).unwrap();
    table.get(&id).await.unwrap().expect("a record")
}

#[tokio::test]
async fn the_new_access_point_is_made_as_specified_and_recorded() {
    let (table, points) = (MemoryTable::default(), MemoryAccessPoints::default());
    table
        .items
        .lock()
        .unwrap()
        .insert("ws-1".into(), record("acme", "ws-1"));
    let e = entry(NOW - 60, "acme", "ws-1");
    let id = recreate_access_point(&table, &points, &spec(&e), &e)
        .await
        .unwrap();
    let made = points.points.lock().unwrap()[&id].clone();
    assert_eq!(made.root_path.as_deref(), Some("/workspaces/acme/ws-1"));
    assert_eq!(made.tags["workspaceId"], "ws-1");
    assert_eq!(made.created_at(), Some(NOW));
    assert_eq!(
        stored(&table, "ws-1").await.text(attr::ACCESS_POINT_ID),
        Some(id.as_str())
    );
}

#[tokio::test]
async fn a_heartbeat_meanwhile_is_kept_and_the_access_point_still_recorded() {
    let (table, points) = (MemoryTable::default(), MemoryAccessPoints::default());
    table
        .items
        .lock()
        .unwrap()
        .insert("ws-1".into(), record("acme", "ws-1"));
    let mut touched = record("acme", "ws-1");
    touched.insert(attr::LAST_ACTIVITY_AT, Value::N((NOW + 5).to_string()));
    table.change_before_next_write(touched);
    let e = entry(NOW - 60, "acme", "ws-1");
    let id = recreate_access_point(&table, &points, &spec(&e), &e)
        .await
        .unwrap();
    let now_stored = stored(&table, "ws-1").await;
    assert_eq!(now_stored.text(attr::ACCESS_POINT_ID), Some(id.as_str()));
    assert_eq!(
        now_stored.get(attr::LAST_ACTIVITY_AT),
        Some(&Value::N((NOW + 5).to_string()))
    );
    assert_eq!(
        points.points.lock().unwrap().len(),
        1,
        "one access point made"
    );
}

#[tokio::test]
async fn a_record_that_got_another_access_point_keeps_it_and_ours_is_deleted() {
    let (table, points) = (MemoryTable::default(), MemoryAccessPoints::default());
    table
        .items
        .lock()
        .unwrap()
        .insert("ws-1".into(), record("acme", "ws-1"));
    let mut taken = record("acme", "ws-1");
    taken.insert(attr::ACCESS_POINT_ID, Value::S("fsap-other".into()));
    table.change_before_next_write(taken);
    let e = entry(NOW - 60, "acme", "ws-1");
    let err = recreate_access_point(&table, &points, &spec(&e), &e)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("deleted again") && err.contains("names an access point"),
        "{err}"
    );
    assert!(points.points.lock().unwrap().is_empty(), "ours is gone");
    assert_eq!(
        stored(&table, "ws-1").await.text(attr::ACCESS_POINT_ID),
        Some("fsap-other")
    );
}

#[tokio::test]
async fn no_access_point_is_made_for_a_record_that_is_gone_or_another_tenants() {
    let (table, points) = (MemoryTable::default(), MemoryAccessPoints::default());
    let e = entry(NOW - 60, "acme", "ws-1");
    let err = recreate_access_point(&table, &points, &spec(&e), &e)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("record is gone"), "{err}");
    table
        .items
        .lock()
        .unwrap()
        .insert("ws-1".into(), record("globex", "ws-1"));
    let err = recreate_access_point(&table, &points, &spec(&e), &e)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no longer tenant acme's"), "{err}");
    assert!(points.points.lock().unwrap().is_empty());
    assert!(stored(&table, "ws-1")
        .await
        .get(attr::ACCESS_POINT_ID)
        .is_none());
}

/// Red team 6 N5: an entry still in the trash past its grace (kept: changed while archived) is
/// restored from the trash, never from an older archive of it.
#[test]
fn the_newest_entry_still_in_the_trash_or_the_one_named() {
    let ws = WorkspaceId::parse("ws-1").unwrap();
    let (newest, older, expired) = (
        entry(NOW - 3_600, "acme", "ws-1"),
        entry(NOW - 86_400, "acme", "ws-1"),
        entry(NOW - 8 * 86_400, "acme", "ws-1"),
    );
    let entries = [newest.clone(), older.clone(), expired.clone()];
    assert_eq!(choose(&entries, None, &ws, 7, NOW).unwrap(), &newest);
    let named = older.to_string();
    assert_eq!(choose(&entries, Some(&named), &ws, 7, NOW).unwrap(), &older);
    assert_eq!(
        choose(&entries, Some(&expired.to_string()), &ws, 7, NOW).unwrap(),
        &expired,
        "past its grace, still there: restored from the trash"
    );
    assert_eq!(choose(&entries[2..], None, &ws, 7, NOW).unwrap(), &expired);
    let err = choose(&[], None, &ws, 7, NOW).unwrap_err();
    assert!(err.to_string().contains("no trash entry of ws-1"), "{err}");
    let err = choose(&entries, Some("1+acme+ws-9"), &ws, 7, NOW).unwrap_err();
    assert!(
        err.to_string().contains("is not a trash entry of ws-1"),
        "{err}"
    );
}

#[test]
fn two_entries_deleted_in_the_same_second_need_a_choice() {
    let ws = WorkspaceId::parse("ws-1").unwrap();
    let mut twin = entry(NOW - 60, "acme", "ws-1");
    twin.nonce = Some("00000000000000ff".into());
    let entries = [entry(NOW - 60, "acme", "ws-1"), twin.clone()];
    let err = choose(&entries, None, &ws, 7, NOW).unwrap_err().to_string();
    assert!(
        err.contains("2 trash entries") && err.contains("--entry"),
        "{err}"
    );
    assert_eq!(
        choose(&entries, Some(&twin.to_string()), &ws, 7, NOW).unwrap(),
        &twin
    );
}
