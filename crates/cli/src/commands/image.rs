//! `lifecycle image restore <ref>`: an archived ECR image back to standard storage. Like
//! `touch` and workspace `restore` it only makes things available again, so it asks nothing and
//! needs no in-use guard; it never deletes or archives.

use anyhow::{bail, Context as _, Result};
use lifecycle_domain::prune::{manifest_facts, ImageDetail, ImageRef, ImageStatus, StorageClass};
use lifecycle_domain::reasons::Action;
use lifecycle_ports::Registry;
use serde::Serialize;

use crate::context::Context;
use crate::render::Output;

/// What was asked of one image, and what the registry said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageRestore {
    pub repository: String,
    pub digest: String,
    pub tags: Vec<String>,
    /// `restore_image` when a restore was asked for; `skip` when there was nothing to do.
    pub action: Action,
    pub before: ImageStatus,
    pub after: ImageStatus,
}

/// The restore of one reference: the image, then (an index) its archived children.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Restored {
    pub images: Vec<ImageRestore>,
    /// Why the children of an index were not looked at (its manifest cannot be read while it is
    /// archived: run the command again once it is ACTIVE).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub children_unknown: Option<String>,
}

/// `repository@digest` or `repository:tag` → (repository, digest or tag).
pub fn parse_reference(text: &str) -> Result<(String, Selector)> {
    let parsed = ImageRef::parse(text).with_context(|| format!("{text:?}"))?;
    let selector = match (parsed.digest, parsed.tag) {
        (Some(digest), _) => Selector::Digest(digest.to_ascii_lowercase()),
        (None, Some(tag)) => Selector::Tag(tag),
        (None, None) => {
            bail!("{text:?} names no image: say repository@sha256:<hex> or repository:tag")
        }
    };
    Ok((parsed.path, selector))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    Digest(String),
    Tag(String),
}

pub async fn restore(ctx: &Context, reference: &str, output: Output) -> Result<()> {
    let restored = restore_reference(ctx.registry().as_ref(), reference).await?;
    output.show(&restored, render)
}

/// Finds the image (every storage status is listed) and asks for its restore when it is
/// archived, then for its archived children when it is an index whose manifest can be read.
pub async fn restore_reference(registry: &dyn Registry, reference: &str) -> Result<Restored> {
    let (repository, selector) = parse_reference(reference)?;
    let images = registry.images(&repository).await?;
    let image = images
        .iter()
        .find(|i| match &selector {
            Selector::Digest(d) => i.digest == *d,
            Selector::Tag(t) => i.tags.contains(t),
        })
        .with_context(|| format!("no image {reference} in {repository}"))?;
    let mut out = Restored::default();
    out.images
        .push(restore_one(registry, &repository, image).await?);
    if lifecycle_domain::prune::INDEX_MEDIA_TYPES.contains(&image.media_type.as_str()) {
        let read = registry
            .manifests(&repository, std::slice::from_ref(&image.digest))
            .await?;
        let children = match read.into_iter().next().map(|(_, m)| m) {
            Some(Ok(text)) => manifest_facts(&text)
                .map(|f| f.children.unwrap_or_default())
                .map_err(|e| format!("the index manifest cannot be parsed: {e}")),
            Some(Err(e)) => Err(format!("the index manifest cannot be read ({e})")),
            None => Err("the index manifest was not returned".to_string()),
        };
        match children {
            Ok(children) => {
                for child in images.iter().filter(|i| children.contains(&i.digest)) {
                    out.images
                        .push(restore_one(registry, &repository, child).await?);
                }
            }
            Err(why) => {
                out.children_unknown = Some(format!(
                    "{why}: run this again once {} is ACTIVE to restore its children",
                    image.digest
                ))
            }
        }
    }
    Ok(out)
}

async fn restore_one(
    registry: &dyn Registry,
    repository: &str,
    image: &ImageDetail,
) -> Result<ImageRestore> {
    let mut done = ImageRestore {
        repository: repository.to_string(),
        digest: image.digest.clone(),
        tags: image.tags.clone(),
        action: Action::Skip,
        before: image.status,
        after: image.status,
    };
    match image.status {
        ImageStatus::Archived => {
            done.after = registry
                .set_storage_class(repository, &image.digest, StorageClass::Standard)
                .await?;
            done.action = Action::RestoreImage;
        }
        ImageStatus::Active | ImageStatus::Activating => {}
        ImageStatus::Unknown => {
            bail!(
                "{repository}@{} has a storage status this tool does not know; nothing done",
                image.digest
            )
        }
    }
    Ok(done)
}

fn render(r: &Restored) -> String {
    let mut lines: Vec<String> = r
        .images
        .iter()
        .map(|i| {
            let what = if i.action == Action::RestoreImage {
                format!("restoring ({} -> {})", i.before.as_str(), i.after.as_str())
            } else {
                format!("nothing to do ({})", i.before.as_str())
            };
            format!("{}@{} {what}", i.repository, i.digest)
        })
        .collect();
    if let Some(why) = &r.children_unknown {
        lines.push(format!("children: {why}"));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifecycle_ports::fakes::MemoryRegistry;

    const INDEX: &str = "application/vnd.oci.image.index.v1+json";
    const IMAGE: &str = "application/vnd.oci.image.manifest.v1+json";

    fn d(n: u32) -> String {
        format!("sha256:{n:064x}")
    }

    fn put(
        reg: &MemoryRegistry,
        n: u32,
        tags: &[&str],
        media_type: &str,
        manifest: serde_json::Value,
    ) {
        reg.put(
            "app",
            ImageDetail {
                digest: d(n),
                tags: tags.iter().map(|t| t.to_string()).collect(),
                pushed_at: 0,
                size: 1,
                media_type: media_type.into(),
                subject: None,
                status: ImageStatus::Archived,
                archived_at: Some(0),
            },
            &manifest.to_string(),
        );
    }

    #[test]
    fn references_name_a_digest_or_a_tag() {
        assert_eq!(
            parse_reference(&format!("app@{}", d(1))).unwrap(),
            ("app".into(), Selector::Digest(d(1)))
        );
        assert_eq!(
            parse_reference("123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app:v1").unwrap(),
            ("team/app".into(), Selector::Tag("v1".into()))
        );
        assert!(parse_reference("app").is_err());
        assert!(parse_reference("app@sha256:zz").is_err());
    }

    #[tokio::test]
    async fn an_archived_index_comes_back_with_its_archived_children_and_nothing_else() {
        let reg = MemoryRegistry::default();
        put(
            &reg,
            1,
            &["v1"],
            INDEX,
            serde_json::json!({"mediaType": INDEX, "manifests": [{"digest": d(11)}]}),
        );
        put(
            &reg,
            11,
            &[],
            IMAGE,
            serde_json::json!({"mediaType": IMAGE}),
        );
        put(
            &reg,
            2,
            &["v2"],
            IMAGE,
            serde_json::json!({"mediaType": IMAGE}),
        );
        let r = restore_reference(&reg, "app:v1").await.unwrap();
        let restored: Vec<&str> = r.images.iter().map(|i| i.digest.as_str()).collect();
        assert_eq!(restored, vec![d(1), d(11)]);
        assert!(r
            .images
            .iter()
            .all(|i| i.action == Action::RestoreImage && i.after == ImageStatus::Activating));
        assert_eq!(reg.status("app", &d(2)).unwrap().0, ImageStatus::Archived);
        assert!(reg.delete_calls.lock().unwrap().is_empty());
        // Asked again: nothing more to do.
        let again = restore_reference(&reg, &format!("app@{}", d(11)))
            .await
            .unwrap();
        assert_eq!(again.images[0].action, Action::Skip);
        // An index whose manifest is refused while archived: said, not guessed.
        *reg.archived_manifests_unreadable.lock().unwrap() = true;
        put(
            &reg,
            3,
            &["v3"],
            INDEX,
            serde_json::json!({"mediaType": INDEX, "manifests": []}),
        );
        let r = restore_reference(&reg, "app:v3").await.unwrap();
        assert!(r.children_unknown.unwrap().contains("run this again"));
        assert!(restore_reference(&reg, "app:none").await.is_err());
    }
}
