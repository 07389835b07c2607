//! Fetch and decide: what is in use, every selected repository's images (and the manifests the
//! image graph needs), then the pure planner with the caps. Reads only.

use std::collections::{BTreeMap, BTreeSet};

use lifecycle_domain::prune::{manifest_facts, plan_repository, replan_repository, UseIndex};
use lifecycle_domain::prune::{Image, ImageUse, ManifestFacts, PrunePlan, RepoPlan, Subject};
use lifecycle_ports::ServiceError;

use crate::{PruneError, Pruner};

impl Pruner {
    /// Reads what is in use and every selected repository, and plans each: the returned
    /// [`PrunePlan`] is what [`Pruner::execute`] may delete and no more (each repository within
    /// its caps; over them, its deletes are kept as `skipped_cap` and `cap_exceeded` says why).
    /// Reads only; a failed or partial read is an error, never "not in use".
    pub async fn plan(&self, now: i64) -> Result<PrunePlan, PruneError> {
        let (uses, names) = self.uses_and_repositories().await?;
        // Parsed once for every repository (linear in repositories + uses).
        let uses = UseIndex::new(&uses);
        let mut repositories = Vec::with_capacity(names.len());
        for name in names {
            repositories.push(self.plan_repository(&name, &uses, now, None).await?);
        }
        Ok(PrunePlan { repositories })
    }

    /// What is in use, and the selected repositories in name order: what a run (or its
    /// coordinator) reads before planning any repository.
    pub(crate) async fn uses_and_repositories(
        &self,
    ) -> Result<(Vec<ImageUse>, Vec<String>), ServiceError> {
        let uses = self
            .deployments
            .images_in_use(self.settings.keep_revisions)
            .await?;
        let mut names: Vec<String> = self
            .registry
            .repositories()
            .await?
            .into_iter()
            .filter(|n| self.settings.selects(n))
            .collect();
        names.sort();
        Ok((uses, names))
    }

    /// Reads a repository and plans it within its caps (with `first`: the re-check of that plan,
    /// which deletes only what `first` deletes). Manifests the plan needs (indexes, possible
    /// referrers it would delete) are read until none is missing; each image is read at most
    /// once, so this ends.
    pub(crate) async fn plan_repository(
        &self,
        repository: &str,
        uses: &UseIndex<'_>,
        now: i64,
        first: Option<&RepoPlan>,
    ) -> Result<RepoPlan, ServiceError> {
        let mut images = self.images(repository).await?;
        let rules = self.settings.policy.rules_for(repository);
        loop {
            let in_use = uses.in_use_in(repository, &images);
            let plan = match first {
                None => plan_repository(repository, &images, &in_use, &rules, now),
                Some(first) => replan_repository(first, &images, &in_use, &rules, now),
            };
            if plan.unread_subjects.is_empty() {
                return Ok(plan.capped(&self.settings.caps()));
            }
            self.read_manifests(repository, &mut images, &plan.unread_subjects)
                .await?;
        }
    }

    /// A repository's images, with the manifest of every index (and of every image whose
    /// type the registry did not report) read.
    async fn images(&self, repository: &str) -> Result<Vec<Image>, ServiceError> {
        let details = self.registry.images(repository).await?;
        let mut images: Vec<Image> = details
            .into_iter()
            .map(|d| Image {
                digest: d.digest,
                tags: d.tags,
                pushed_at: d.pushed_at,
                size: d.size,
                media_type: d.media_type,
                manifests: None,
                subject: d.subject.map_or(Subject::Unknown, Subject::Of),
                status: d.status,
                archived_at: d.archived_at,
            })
            .collect();
        // Manifests read before (by the plan this re-checks) are known without a call.
        let known = self.manifests.lock().unwrap().clone();
        for image in images.iter_mut() {
            if let Some(facts) = known.get(&image.digest) {
                image.learn(Ok(facts));
            }
        }
        let needed: Vec<String> = images
            .iter()
            .filter(|i| i.needs_manifest())
            .map(|i| i.digest.clone())
            .collect();
        self.read_manifests(repository, &mut images, &needed)
            .await?;
        Ok(images)
    }

    /// Reads manifests (those not read before) and records what they say in `images`.
    async fn read_manifests(
        &self,
        repository: &str,
        images: &mut [Image],
        digests: &[String],
    ) -> Result<(), ServiceError> {
        let mut read: BTreeMap<String, Result<ManifestFacts, String>> = BTreeMap::new();
        let unseen: Vec<String> = {
            let known = self.manifests.lock().unwrap();
            for d in digests {
                if let Some(facts) = known.get(d) {
                    read.insert(d.clone(), Ok(facts.clone()));
                }
            }
            digests
                .iter()
                .filter(|d| !known.contains_key(*d))
                .cloned()
                .collect()
        };
        if !unseen.is_empty() {
            for (digest, text) in self.registry.manifests(repository, &unseen).await? {
                let facts = text.and_then(|t| manifest_facts(&t));
                if let Ok(f) = &facts {
                    self.manifests
                        .lock()
                        .unwrap()
                        .insert(digest.clone(), f.clone());
                }
                read.insert(digest, facts);
            }
        }
        let wanted: BTreeSet<&str> = digests.iter().map(String::as_str).collect();
        for image in images
            .iter_mut()
            .filter(|i| wanted.contains(i.digest.as_str()))
        {
            match read.get(&image.digest) {
                Some(Ok(facts)) => image.learn(Ok(facts)),
                Some(Err(e)) => image.learn(Err(e)),
                None => image.learn(Err("manifest not returned")),
            }
        }
        Ok(())
    }
}
