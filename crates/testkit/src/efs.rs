//! The file system: workspace directories under the fixture's root, access points on its file
//! system, and snapshots of a tree for before/after comparisons.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::Fixture;

impl Fixture {
    pub fn workspace_dir(&self, tenant: &str, ws: &str) -> PathBuf {
        self.root().join(tenant).join(ws)
    }

    /// A workspace directory with some files in it.
    pub fn make_workspace(&self, tenant: &str, ws: &str) -> PathBuf {
        let dir = self.workspace_dir(tenant, ws);
        std::fs::create_dir_all(dir.join("src/nested")).unwrap();
        std::fs::write(dir.join("README.md"), format!("workspace {ws}")).unwrap();
        std::fs::write(dir.join("src/nested/data.bin"), vec![7u8; 4096]).unwrap();
        dir
    }

    /// The access point the control plane makes for `ws`: rooted at its directory, tagged with
    /// its id, and no `createdAt` (as before access points carried one).
    pub async fn create_access_point(&self, tenant: &str, ws: &str) -> String {
        let root = format!("/workspaces/{tenant}/{ws}");
        access_point_with(self, &root, &[("workspaceId", ws)]).await
    }

    /// An access point for `ws` whose `createdAt` tag says it was made `age_secs` ago.
    pub async fn create_aged_access_point(&self, tenant: &str, ws: &str, age_secs: i64) -> String {
        let created = (lifecycle_domain::time::now_epoch() - age_secs).to_string();
        let root = format!("/workspaces/{tenant}/{ws}");
        access_point_with(self, &root, &[("workspaceId", ws), ("createdAt", &created)]).await
    }

    pub async fn access_point_exists(&self, id: &str) -> bool {
        match self
            .efs
            .describe_access_points()
            .access_point_id(id)
            .send()
            .await
        {
            Ok(out) => !out.access_points().is_empty(),
            Err(e) => {
                let text = format!("{e:?}");
                assert!(text.contains("AccessPointNotFound"), "{text}");
                false
            }
        }
    }
}

/// An access point on the fixture's file system with exactly this root and these tags.
pub async fn access_point_with(fx: &Fixture, root: &str, tags: &[(&str, &str)]) -> String {
    let mut call = fx
        .efs
        .create_access_point()
        .file_system_id(&fx.file_system_id)
        .root_directory(
            aws_sdk_efs::types::RootDirectory::builder()
                .path(root)
                .build(),
        );
    for (k, v) in tags {
        call = call.tags(
            aws_sdk_efs::types::Tag::builder()
                .key(*k)
                .value(*v)
                .build()
                .unwrap(),
        );
    }
    call.send()
        .await
        .expect("create access point")
        .access_point_id
        .unwrap()
}

/// Every file under `dir` (relative path -> contents; a directory is `<dir>`, a link `-> target`),
/// for before/after comparisons.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let ft = e.file_type().unwrap();
            let rel = p.strip_prefix(dir).unwrap().to_path_buf();
            if ft.is_dir() {
                out.insert(rel, b"<dir>".to_vec());
                stack.push(p);
            } else if ft.is_symlink() {
                out.insert(
                    rel,
                    format!("-> {}", std::fs::read_link(&p).unwrap().display()).into_bytes(),
                );
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}
