//! Images and manifests as the planner sees them: what a listing says, and what a manifest
//! says about the image graph.

use serde::Serialize;

pub const INDEX_MEDIA_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// One image (manifest) of a repository, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub digest: String,
    pub tags: Vec<String>,
    pub pushed_at: i64,
    pub size: u64,
    /// The manifest's media type; empty when the registry did not say (then the manifest itself
    /// must be read before anything can be decided about what it references).
    pub media_type: String,
    /// For an index: the manifests it references, or why it could not be read.
    pub manifests: Option<Result<Vec<String>, String>>,
    /// For a referrer (signature, attestation, SBOM): the image it is about.
    pub subject: Subject,
    /// Its storage class as listed: active, archived, or on its way back.
    pub status: ImageStatus,
    /// When it was last archived (`lastArchivedAt`), if the registry says.
    pub archived_at: Option<i64>,
}

/// An image's storage status as the registry lists it (ECR `imageStatus`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageStatus {
    /// Standard storage: pullable. What a listing that says nothing means (the only status there
    /// was before the archive class).
    #[default]
    Active,
    /// In the archive storage class: cannot be pulled until restored.
    Archived,
    /// Being restored from the archive.
    Activating,
    /// A status this code does not know: never archived, restored or deleted.
    Unknown,
}

crate::serde_codes!(ImageStatus, StorageClass);

impl ImageStatus {
    pub fn is_active(&self) -> bool {
        *self == ImageStatus::Active
    }
}

/// Where an image is moved (ECR `targetStorageClass`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StorageClass {
    /// Back to standard storage (a restore).
    Standard,
    /// To the archive storage class.
    Archive,
}

/// What is known about an image's OCI `subject` (the image a referrer is about).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// Not reported by the registry and the manifest not read yet: the image may be a referrer,
    /// so the planner never deletes it (it asks for the manifest instead).
    Unknown,
    /// Known not to be a referrer.
    None,
    /// A referrer of this digest.
    Of(String),
    /// The manifest could not be read.
    Unreadable(String),
}

impl Image {
    pub fn is_index(&self) -> bool {
        INDEX_MEDIA_TYPES.contains(&self.media_type.as_str())
    }

    /// Whether the manifest must be read before planning: an index (its children), or an image
    /// whose media type the registry did not report (it may be an index).
    pub fn needs_manifest(&self) -> bool {
        self.manifests.is_none() && (self.is_index() || self.media_type.is_empty())
    }

    /// Records what the manifest says (or why it could not be read). Manifests are addressed by
    /// their digest, so what they say never changes.
    pub fn learn(&mut self, manifest: Result<&ManifestFacts, &str>) {
        match manifest {
            Ok(facts) => {
                if self.media_type.is_empty() {
                    self.media_type = facts.media_type.clone().unwrap_or_default();
                }
                if self.is_index() || facts.children.is_some() {
                    self.manifests = Some(Ok(facts.children.clone().unwrap_or_default()));
                }
                self.subject = match &facts.subject {
                    Some(d) => Subject::Of(d.clone()),
                    None => Subject::None,
                };
            }
            Err(e) => {
                // An index (or what may be one) that cannot be read hides its children.
                if self.is_index() || self.media_type.is_empty() {
                    self.manifests = Some(Err(e.to_string()));
                }
                if !matches!(self.subject, Subject::Of(_)) {
                    self.subject = Subject::Unreadable(e.to_string());
                }
            }
        }
    }
}

/// What a manifest says about the image graph.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManifestFacts {
    pub media_type: Option<String>,
    /// For an index: every manifest it references (platform images and attestations alike).
    pub children: Option<Vec<String>>,
    /// The `subject` of a referrer.
    pub subject: Option<String>,
}

/// Reads a manifest document (image manifest or index, OCI or Docker).
pub fn manifest_facts(manifest_json: &str) -> Result<ManifestFacts, String> {
    let v: serde_json::Value = serde_json::from_str(manifest_json).map_err(|e| e.to_string())?;
    let digest_of = |m: &serde_json::Value, what: &str| {
        m.get("digest")
            .and_then(|d| d.as_str())
            .map(str::to_string)
            .ok_or_else(|| format!("{what} without digest"))
    };
    let children = match v.get("manifests") {
        None => None,
        Some(list) => Some(
            list.as_array()
                .ok_or("\"manifests\" is not a list")?
                .iter()
                .map(|m| digest_of(m, "manifest"))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let subject = match v.get("subject") {
        None | Some(serde_json::Value::Null) => None,
        Some(s) => Some(digest_of(s, "subject")?),
    };
    Ok(ManifestFacts {
        media_type: v
            .get("mediaType")
            .and_then(|m| m.as_str())
            .map(str::to_string),
        children,
        subject,
    })
}

pub fn is_digest(s: &str) -> bool {
    s.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// An image as the registry lists it (manifests are read separately).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageDetail {
    pub digest: String,
    pub tags: Vec<String>,
    pub pushed_at: i64,
    pub size: u64,
    /// The manifest's media type; empty when the registry does not say.
    pub media_type: String,
    /// For a referrer (signature, attestation): the digest it is about, when the registry says.
    pub subject: Option<String>,
    /// `imageStatus` (absent: active).
    pub status: ImageStatus,
    /// `lastArchivedAt`, epoch seconds.
    pub archived_at: Option<i64>,
}
