//! Which workspaces ECS tasks are using. A task names its workspace with the tag `workspaceId`
//! or the container override environment variable `WORKSPACE_ID`, or mounts it through an EFS
//! volume of its task definition (an access point, or a root directory inside the workspace).
//! [`InUse`] is the one in-use check every destructive path asks.

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
    /// `(name, value)` of every container environment variable: the task definition's, then the
    /// run-time overrides.
    pub override_env: Vec<(String, String)>,
    /// The EFS volumes of its task definition (a task cannot override volumes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub efs_mounts: Vec<EfsMount>,
}

/// An EFS volume a task mounts: through an access point, or at a directory of the file system.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EfsMount {
    pub file_system_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_point_id: Option<String>,
    /// The directory mounted (relative to the access point's root when one is used).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_directory: Option<String>,
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

/// What a workspace is known by, for the in-use check: its id, its directory (tenant), and the
/// access points that serve it (the record's, and any the caller found tagged or rooted for it).
#[derive(Debug, Clone, Copy)]
pub struct WorkspaceRef<'a> {
    pub workspace: &'a str,
    pub tenant: Option<&'a str>,
    pub access_points: &'a [String],
}

/// The active tasks of a cluster, indexed for "who uses this workspace?". Built once per batch or
/// run from a complete listing (the adapter fails rather than return a partial one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InUse {
    by_workspace: BTreeMap<String, Vec<String>>,
    by_access_point: BTreeMap<String, Vec<String>>,
    /// `(file system, directory without trailing slash)` mounted without an access point.
    by_directory: Vec<(String, String, String)>,
    /// `false` when no cluster is configured (the guard was explicitly switched off).
    pub guarded: bool,
}

impl InUse {
    /// No in-use guard: nothing is known to be in use (`ECS_CLUSTER=none`).
    pub fn unguarded() -> Self {
        Self::default()
    }

    pub fn from_tasks(tasks: &[TaskSummary]) -> Self {
        let mut index = Self {
            guarded: true,
            ..Self::default()
        };
        for task in tasks.iter().filter(|t| t.is_active()) {
            for ws in task.workspaces() {
                push_unique(
                    index.by_workspace.entry(ws.to_string()).or_default(),
                    &task.arn,
                );
            }
            for mount in &task.efs_mounts {
                match &mount.access_point_id {
                    Some(ap) => push_unique(
                        index.by_access_point.entry(ap.clone()).or_default(),
                        &task.arn,
                    ),
                    None => index.by_directory.push((
                        mount.file_system_id.clone(),
                        normalize_dir(mount.root_directory.as_deref().unwrap_or("/")),
                        task.arn.clone(),
                    )),
                }
            }
        }
        index
    }

    /// The tasks using a workspace: by tag or environment, through one of its access points, or
    /// by mounting its directory (or a directory inside it) on `file_system_id`. A task that
    /// mounts a parent directory (the file system's root, a tenant) is not counted: it names no
    /// workspace, and counting it would keep every workspace alive while it runs.
    pub fn users(&self, ws: WorkspaceRef<'_>, file_system_id: Option<&str>) -> Vec<String> {
        let mut users = self
            .by_workspace
            .get(ws.workspace)
            .cloned()
            .unwrap_or_default();
        for ap in ws.access_points {
            for arn in self.by_access_point.get(ap).into_iter().flatten() {
                push_unique(&mut users, arn);
            }
        }
        if let Some(tenant) = ws.tenant {
            for (fs, mounted, arn) in &self.by_directory {
                // An empty file system is a host bind mount: which file system it is, is unknown.
                let same_fs = fs.is_empty() || file_system_id.is_none_or(|id| id == fs);
                if same_fs && names_workspace(mounted, tenant, ws.workspace) {
                    push_unique(&mut users, arn);
                }
            }
        }
        users
    }

    /// The access points tasks mount, to be described and folded in with
    /// [`InUse::resolve_access_points`].
    pub fn mounted_access_points(&self) -> Vec<String> {
        self.by_access_point.keys().cloned().collect()
    }

    /// Folds in what the mounted access points are: a task that mounts an access point mounts
    /// its root directory, and uses the workspace its `workspaceId` tag names. So a task is seen
    /// through any access point of the workspace, not only the one its record names.
    pub fn resolve_access_points(&mut self, described: &[crate::access_point::AccessPointInfo]) {
        for ap in described {
            let Some(arns) = self.by_access_point.get(&ap.id).cloned() else {
                continue;
            };
            for arn in &arns {
                if let Some(ws) = ap.tags.get(WORKSPACE_TAG) {
                    push_unique(self.by_workspace.entry(ws.clone()).or_default(), arn);
                }
                if let Some(root) = &ap.root_path {
                    self.by_directory.push((
                        ap.file_system_id.clone(),
                        normalize_dir(root),
                        arn.clone(),
                    ));
                }
            }
        }
    }

    /// Every workspace id named by a task's tag or environment (heartbeat's scan).
    pub fn named_workspaces(&self) -> impl Iterator<Item = &str> {
        self.by_workspace.keys().map(String::as_str)
    }
}

fn push_unique(list: &mut Vec<String>, arn: &str) {
    if !list.iter().any(|a| a == arn) {
        list.push(arn.to_string());
    }
}

/// Whether a mounted directory is a workspace's directory or inside it, wherever the layout puts
/// workspaces (`/acme/ws`, `/workspaces/acme/ws/src`): the pair `<tenant>/<workspace>` appears in
/// it. A parent (the file system's root, a tenant) names no workspace.
fn names_workspace(mounted: &str, tenant: &str, workspace: &str) -> bool {
    let parts: Vec<&str> = mounted.split('/').filter(|p| !p.is_empty()).collect();
    parts
        .windows(2)
        .any(|w| w[0] == tenant && w[1] == workspace)
}

/// `/acme//ws/` and `acme/ws` both mean `/acme/ws`.
fn normalize_dir(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    format!("/{}", parts.join("/"))
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
            efs_mounts: vec![],
        }
    }

    fn mounting(arn: &str, status: &str, ap: Option<&str>, dir: Option<&str>) -> TaskSummary {
        TaskSummary {
            efs_mounts: vec![EfsMount {
                file_system_id: "fs-1".into(),
                access_point_id: ap.map(Into::into),
                root_directory: dir.map(Into::into),
            }],
            ..task(arn, status, None, None)
        }
    }

    #[test]
    fn mounts_count_through_access_points_and_directories_inside_the_workspace() {
        let in_use = InUse::from_tasks(&[
            mounting("t1", "RUNNING", Some("fsap-1"), None),
            mounting("t2", "RUNNING", None, Some("/acme/ws-dir/")),
            mounting("t3", "RUNNING", None, Some("acme//ws-sub/src")),
            mounting("t4", "RUNNING", None, Some("/")),
            mounting("t5", "STOPPED", Some("fsap-2"), None),
            mounting("t6", "RUNNING", None, Some("/acme/ws-dirx")),
            mounting("t7", "RUNNING", None, Some("/workspaces/acme/ws-prefixed")),
            mounting("t8", "RUNNING", Some("fsap-other"), None),
        ]);
        let aps = ["fsap-1".to_string()];
        let users = |ws, aps: &[String]| {
            in_use.users(
                WorkspaceRef {
                    workspace: ws,
                    tenant: Some("acme"),
                    access_points: aps,
                },
                Some("fs-1"),
            )
        };
        assert_eq!(users("ws-ap", &aps), vec!["t1"]);
        assert_eq!(users("ws-dir", &[]), vec!["t2"]);
        assert_eq!(users("ws-sub", &[]), vec!["t3"]);
        assert_eq!(users("ws-prefixed", &[]), vec!["t7"]);
        // A host bind mount (EC2 launch type): its file system is unknown, so any counts.
        let host = InUse::from_tasks(&[TaskSummary {
            efs_mounts: vec![EfsMount {
                file_system_id: String::new(),
                access_point_id: None,
                root_directory: Some("/mnt/efs/acme/ws-h".into()),
            }],
            ..task("t9", "RUNNING", None, None)
        }]);
        let ws_h = WorkspaceRef {
            workspace: "ws-h",
            tenant: Some("acme"),
            access_points: &[],
        };
        assert_eq!(host.users(ws_h, Some("fs-1")), vec!["t9"]);
        assert!(users("ws-other", &["fsap-2".to_string()]).is_empty());
        assert!(in_use
            .users(
                WorkspaceRef {
                    workspace: "ws-dir",
                    tenant: Some("acme"),
                    access_points: &[],
                },
                Some("fs-2"),
            )
            .is_empty());
    }

    #[test]
    fn any_access_point_of_the_workspace_counts_once_described() {
        let mut in_use = InUse::from_tasks(&[
            mounting("t-tagged", "RUNNING", Some("fsap-a"), None),
            mounting("t-rooted", "RUNNING", Some("fsap-b"), None),
        ]);
        assert_eq!(in_use.mounted_access_points(), vec!["fsap-a", "fsap-b"]);
        let ap = |id: &str, root: &str, tag: Option<&str>| crate::access_point::AccessPointInfo {
            id: id.into(),
            file_system_id: "fs-1".into(),
            root_path: Some(root.into()),
            tags: tag
                .map(|t| [(WORKSPACE_TAG.to_string(), t.to_string())].into())
                .unwrap_or_default(),
        };
        in_use.resolve_access_points(&[
            ap("fsap-a", "/x", Some("ws-1")),
            ap("fsap-b", "/workspaces/acme/ws-2", None),
        ]);
        let users = |ws| {
            in_use.users(
                WorkspaceRef {
                    workspace: ws,
                    tenant: Some("acme"),
                    access_points: &[],
                },
                Some("fs-1"),
            )
        };
        assert_eq!(users("ws-1"), vec!["t-tagged"]);
        assert_eq!(users("ws-2"), vec!["t-rooted"]);
        assert!(users("ws-3").is_empty());
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
