//! In-memory fakes of the ports, with the same semantics as the AWS adapters (conditional puts,
//! not-found as success), for unit tests of handlers without the emulator.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use serde_dynamo::{AttributeValue, Item};

use crate::ids::WorkspaceId;
use crate::ports::{
    AccessPointInfo, AccessPoints, ExpiryNotice, Notices, ServiceError, Tasks, WorkspaceTable,
};
use crate::record::{attr, Observed};
use crate::tasks::TaskSummary;

/// The table in memory. Its conditional writes evaluate the same conditions as the DynamoDB
/// adapter's expressions, so a write the adapter would refuse is refused here too.
#[derive(Debug, Default)]
pub struct MemoryTable {
    pub items: Mutex<BTreeMap<String, Item>>,
    /// Test hook: items that replace their record right before the next conditional write to
    /// it, as a control-plane write between a function's read and its write would.
    pub changes_before_write: Mutex<HashMap<String, Item>>,
}

impl MemoryTable {
    /// Replaces the record with `item` right before the next conditional write to it.
    pub fn change_before_next_write(&self, item: Item) {
        if let Some(AttributeValue::S(id)) = item.get(attr::WORKSPACE_ID).cloned() {
            self.changes_before_write.lock().unwrap().insert(id, item);
        }
    }

    /// Runs `write` on the record (after any pending change to it) if it exists.
    fn write<T>(
        &self,
        id: &WorkspaceId,
        absent: T,
        write: impl FnOnce(&mut HashMap<String, AttributeValue>) -> T,
    ) -> T {
        let change = self
            .changes_before_write
            .lock()
            .unwrap()
            .remove(id.as_str());
        let mut items = self.items.lock().unwrap();
        if let Some(item) = change {
            items.insert(id.to_string(), item);
        }
        let Some(item) = items.get_mut(id.as_str()) else {
            return absent;
        };
        let mut map: HashMap<String, AttributeValue> = item.clone().into_inner();
        let result = write(&mut map);
        *item = Item::from(map);
        result
    }
}

fn held(item: &HashMap<String, AttributeValue>) -> bool {
    matches!(item.get(attr::HOLD), Some(AttributeValue::Bool(true)))
}

fn observed_in(observed: &Observed, item: &HashMap<String, AttributeValue>) -> bool {
    observed.matches(&Item::from(item.clone()))
}

#[async_trait]
impl WorkspaceTable for MemoryTable {
    async fn get(&self, id: &WorkspaceId) -> Result<Option<Item>, ServiceError> {
        Ok(self.items.lock().unwrap().get(id.as_str()).cloned())
    }

    async fn put_if_absent(&self, item: Item) -> Result<bool, ServiceError> {
        let Some(AttributeValue::S(id)) = item.get(attr::WORKSPACE_ID).cloned() else {
            return Err(ServiceError::new(
                "PutItem",
                "item has no string workspaceId",
                false,
            ));
        };
        let mut items = self.items.lock().unwrap();
        if items.contains_key(&id) {
            return Ok(false);
        }
        items.insert(id, item);
        Ok(true)
    }

    async fn get_many(&self, ids: &[WorkspaceId]) -> Result<Vec<Item>, ServiceError> {
        let items = self.items.lock().unwrap();
        Ok(ids
            .iter()
            .filter_map(|id| items.get(id.as_str()).cloned())
            .collect())
    }

    async fn extend(
        &self,
        id: &WorkspaceId,
        observed: &Observed,
        last: i64,
        expires: i64,
    ) -> Result<bool, ServiceError> {
        Ok(self.write(id, false, |item| {
            let at_most = |name: &str, value: i64| match item.get(name) {
                None => true,
                Some(AttributeValue::N(n)) => n.parse::<f64>().is_ok_and(|n| n <= value as f64),
                // DynamoDB's `<=` between a number and another type is false.
                Some(_) => false,
            };
            if held(item)
                || !at_most(attr::LAST_ACTIVITY_AT, last)
                || !at_most(attr::EXPIRES_AT, expires)
                || !observed_in(observed, item)
            {
                return false;
            }
            item.insert(
                attr::LAST_ACTIVITY_AT.into(),
                AttributeValue::N(last.to_string()),
            );
            item.insert(
                attr::EXPIRES_AT.into(),
                AttributeValue::N(expires.to_string()),
            );
            true
        }))
    }

    async fn set_expiry(
        &self,
        id: &WorkspaceId,
        observed: &Observed,
        expires: Option<i64>,
    ) -> Result<bool, ServiceError> {
        Ok(self.write(id, false, |item| {
            if !observed_in(observed, item) {
                return false;
            }
            match expires {
                Some(at) => item.insert(attr::EXPIRES_AT.into(), AttributeValue::N(at.to_string())),
                None => item.remove(attr::EXPIRES_AT),
            };
            true
        }))
    }

    async fn scan(&self, expiring: Option<(i64, i64)>) -> Result<Vec<Item>, ServiceError> {
        let items = self.items.lock().unwrap();
        Ok(items
            .values()
            .filter(|item| match expiring {
                None => true,
                Some((from, to)) => {
                    number(item, attr::EXPIRES_AT).is_some_and(|e| e > from && e <= to)
                }
            })
            .cloned()
            .collect())
    }

    async fn claim_notice(
        &self,
        id: &WorkspaceId,
        observed: &Observed,
        expires: i64,
    ) -> Result<bool, ServiceError> {
        Ok(self.write(id, false, |item| {
            let is = |name: &str, value: i64| {
                matches!(item.get(name), Some(AttributeValue::N(n)) if n.parse::<f64>().is_ok_and(|n| n == value as f64))
            };
            if held(item)
                || !is(attr::EXPIRES_AT, expires)
                || is(attr::NOTICE_SENT_FOR, expires)
                || !observed_in(observed, item)
            {
                return false;
            }
            item.insert(
                attr::NOTICE_SENT_FOR.into(),
                AttributeValue::N(expires.to_string()),
            );
            true
        }))
    }

    async fn release_notice(&self, id: &WorkspaceId, expires: i64) -> Result<(), ServiceError> {
        let mut items = self.items.lock().unwrap();
        if let Some(item) = items.get_mut(id.as_str()) {
            if number(item, attr::NOTICE_SENT_FOR) == Some(expires) {
                item.remove(attr::NOTICE_SENT_FOR);
            }
        }
        Ok(())
    }
}

fn number(item: &Item, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse().ok(),
        _ => None,
    }
}

#[derive(Debug, Default)]
pub struct MemoryAccessPoints {
    pub points: Mutex<HashMap<String, AccessPointInfo>>,
}

#[async_trait]
impl AccessPoints for MemoryAccessPoints {
    async fn describe(&self, id: &str) -> Result<Option<AccessPointInfo>, ServiceError> {
        Ok(self.points.lock().unwrap().get(id).cloned())
    }

    async fn delete(&self, id: &str) -> Result<bool, ServiceError> {
        Ok(self.points.lock().unwrap().remove(id).is_some())
    }

    async fn list(&self, file_system_id: &str) -> Result<Vec<AccessPointInfo>, ServiceError> {
        let mut out: Vec<_> = self
            .points
            .lock()
            .unwrap()
            .values()
            .filter(|ap| ap.file_system_id == file_system_id)
            .cloned()
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn tag(&self, id: &str, key: &str, value: &str) -> Result<bool, ServiceError> {
        Ok(match self.points.lock().unwrap().get_mut(id) {
            Some(ap) => {
                ap.tags.insert(key.to_string(), value.to_string());
                true
            }
            None => false,
        })
    }

    async fn untag(&self, id: &str, key: &str) -> Result<bool, ServiceError> {
        Ok(match self.points.lock().unwrap().get_mut(id) {
            Some(ap) => {
                ap.tags.remove(key);
                true
            }
            None => false,
        })
    }
}

#[derive(Debug, Default)]
pub struct MemoryTasks {
    pub tasks: Mutex<Vec<TaskSummary>>,
}

#[async_trait]
impl Tasks for MemoryTasks {
    async fn active_tasks(&self) -> Result<Vec<TaskSummary>, ServiceError> {
        Ok(self.tasks.lock().unwrap().clone())
    }

    async fn describe(
        &self,
        _cluster: &str,
        arn: &str,
    ) -> Result<Option<TaskSummary>, ServiceError> {
        Ok(self
            .tasks
            .lock()
            .unwrap()
            .iter()
            .find(|t| t.arn == arn)
            .cloned())
    }
}

/// Notices kept in memory, in the order they were published.
#[derive(Debug, Default)]
pub struct MemoryNotices {
    pub sent: Mutex<Vec<ExpiryNotice>>,
    /// Workspaces whose notices the bus refuses (per entry, as PutEvents reports it).
    pub refuse: Mutex<std::collections::HashSet<String>>,
}

#[async_trait]
impl Notices for MemoryNotices {
    async fn publish(&self, notices: &[ExpiryNotice]) -> Vec<Result<(), String>> {
        let refuse = self.refuse.lock().unwrap();
        let mut sent = self.sent.lock().unwrap();
        notices
            .iter()
            .map(|n| {
                if refuse.contains(&n.workspace_id) {
                    return Err("InternalFailure: refused".to_string());
                }
                sent.push(n.clone());
                Ok(())
            })
            .collect()
    }
}
