//! ECR: repositories, and pushes of manifests with the digest real ECR gives them (the sha256 of
//! their bytes), so that indexes name their children as they would in a real registry.

use serde_json::{json, Value};
use sha2::Digest;

use crate::moto::unique;
use crate::Fixture;

const IMAGE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const IMAGE_INDEX: &str = "application/vnd.oci.image.index.v1+json";

fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", sha2::Sha256::digest(bytes))
}

/// The ECR image reference of `repo` as ECS task definitions write it.
pub fn ecr_ref(repo: &str, tag_or_digest: &str) -> String {
    let sep = if tag_or_digest.starts_with("sha256:") {
        "@"
    } else {
        ":"
    };
    format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/{repo}{sep}{tag_or_digest}")
}

impl Fixture {
    /// A new, empty repository with a unique name.
    pub async fn repository(&self) -> String {
        let name = unique("repo");
        aws_sdk_ecr::Client::new(&self.direct)
            .create_repository()
            .repository_name(&name)
            .send()
            .await
            .expect("create repository");
        name
    }

    /// Pushes one manifest; returns its digest.
    pub async fn push(
        &self,
        repo: &str,
        manifest: &Value,
        media_type: &str,
        tag: Option<&str>,
    ) -> String {
        let body = serde_json::to_string(manifest).unwrap();
        let digest = format!("sha256:{}", sha256_hex(body.as_bytes()));
        let mut put = aws_sdk_ecr::Client::new(&self.direct)
            .put_image()
            .repository_name(repo)
            .image_manifest(&body)
            .image_manifest_media_type(media_type)
            .image_digest(&digest);
        if let Some(tag) = tag {
            put = put.image_tag(tag);
        }
        put.send().await.expect("put image");
        digest
    }

    /// A single-platform image manifest (distinct per `seed`).
    pub async fn push_image(&self, repo: &str, seed: &str, tag: Option<&str>) -> String {
        let blob = &sha256_hex(seed.as_bytes())[..40];
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": IMAGE_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 1469, "digest": format!("sha256:{blob:0>64}")},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "size": 3_200_000, "digest": format!("sha256:{blob:1>64}")}],
        });
        self.push(repo, &manifest, IMAGE_MANIFEST, tag).await
    }

    /// What `docker buildx build --platform linux/amd64,linux/arm64 --push` leaves: an index, two
    /// platform manifests and two attestation manifests. Returns (index, [children]).
    pub async fn push_buildx(
        &self,
        repo: &str,
        seed: &str,
        tag: Option<&str>,
    ) -> (String, Vec<String>) {
        let amd = self.push_image(repo, &format!("{seed}-amd64"), None).await;
        let arm = self.push_image(repo, &format!("{seed}-arm64"), None).await;
        let att_amd = self
            .push_image(repo, &format!("{seed}-att-amd64"), None)
            .await;
        let att_arm = self
            .push_image(repo, &format!("{seed}-att-arm64"), None)
            .await;
        let platform = |d: &str, arch: &str| json!({"mediaType": IMAGE_MANIFEST, "digest": d, "size": 1234, "platform": {"architecture": arch, "os": "linux"}});
        let attestation = |d: &str, of: &str| {
            json!({"mediaType": IMAGE_MANIFEST, "digest": d, "size": 840,
            "platform": {"architecture": "unknown", "os": "unknown"},
            "annotations": {"vnd.docker.reference.digest": of, "vnd.docker.reference.type": "attestation-manifest"}})
        };
        let index = json!({
            "schemaVersion": 2,
            "mediaType": IMAGE_INDEX,
            "manifests": [platform(&amd, "amd64"), platform(&arm, "arm64"), attestation(&att_amd, &amd), attestation(&att_arm, &arm)],
        });
        let idx = self.push(repo, &index, IMAGE_INDEX, tag).await;
        (idx, vec![amd, arm, att_amd, att_arm])
    }
}
