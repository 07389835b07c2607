//! In-memory fakes of the ports, with the same semantics as the AWS adapters (conditional puts,
//! not-found as success), for unit tests of handlers without the emulator.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use serde_dynamo::{AttributeValue, Item};

use crate::ids::WorkspaceId;
use crate::ports::{AccessPointInfo, AccessPoints, ServiceError, Tasks, WorkspaceTable};
use crate::record::attr;
use crate::tasks::TaskSummary;

#[derive(Debug, Default)]
pub struct MemoryTable {
    pub items: Mutex<BTreeMap<String, Item>>,
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
}
