//! Which workspaces ECS tasks are using. A task names its workspace with the tag `workspaceId`
//! or the container override environment variable `WORKSPACE_ID`.

use std::collections::BTreeMap;

use serde::Serialize;

pub const WORKSPACE_TAG: &str = "workspaceId";
pub const WORKSPACE_ENV: &str = "WORKSPACE_ID";

/// What the decisions need to know about a task, independent of the SDK's types.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskSummary {
    pub arn: String,
    pub last_status: String,
    pub tags: Vec<(String, String)>,
    /// `(name, value)` of every container override environment variable.
    pub override_env: Vec<(String, String)>,
}

impl TaskSummary {
    /// Workspaces this task names (usually one; both sources are honoured if they disagree).
    pub fn workspaces(&self) -> impl Iterator<Item = &str> {
        let tagged = self
            .tags
            .iter()
            .filter(|(k, _)| k == WORKSPACE_TAG)
            .map(|(_, v)| v.as_str());
        let env = self
            .override_env
            .iter()
            .filter(|(k, _)| k == WORKSPACE_ENV)
            .map(|(_, v)| v.as_str());
        tagged.chain(env)
    }

    /// Running or about to run. Anything not yet STOPPED counts: a stopping task may still write.
    pub fn is_active(&self) -> bool {
        self.last_status != "STOPPED"
    }
}

/// Workspace id -> the active tasks using it.
pub fn workspaces_in_use(tasks: &[TaskSummary]) -> BTreeMap<String, Vec<String>> {
    let mut in_use: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for task in tasks.iter().filter(|t| t.is_active()) {
        for ws in task.workspaces() {
            let arns = in_use.entry(ws.to_string()).or_default();
            if !arns.contains(&task.arn) {
                arns.push(task.arn.clone());
            }
        }
    }
    in_use
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(arn: &str, status: &str, tag: Option<&str>, env: Option<&str>) -> TaskSummary {
        TaskSummary {
            arn: arn.into(),
            last_status: status.into(),
            tags: tag
                .map(|v| vec![(WORKSPACE_TAG.into(), v.into())])
                .unwrap_or_default(),
            override_env: env
                .map(|v| vec![(WORKSPACE_ENV.into(), v.into())])
                .unwrap_or_default(),
        }
    }

    #[test]
    fn tags_and_env_both_count_and_stopped_tasks_do_not() {
        let tasks = [
            task("t1", "RUNNING", Some("a"), None),
            task("t2", "PENDING", None, Some("b")),
            task("t3", "STOPPED", Some("c"), None),
            task("t4", "RUNNING", Some("a"), Some("a")),
            task("t5", "PROVISIONING", Some("d"), Some("e")),
        ];
        let used = workspaces_in_use(&tasks);
        assert_eq!(used["a"], vec!["t1", "t4"]);
        assert_eq!(used["b"], vec!["t2"]);
        assert!(!used.contains_key("c"));
        assert!(used.contains_key("d") && used.contains_key("e"));
    }
}
