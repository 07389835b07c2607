//! `make bench` (pruner planner): plans 100,000 synthetic images in 10 repositories, shaped like a
//! buildx registry (indexes with two platform images and two attestations, tagged releases,
//! untagged leftovers), and prints the CPU time it took.

use std::collections::BTreeMap;
use std::time::Instant;

use lifecycle_domain::prune::{
    plan_repository, Image, InUseKind, PrunePolicy, Subject, INDEX_MEDIA_TYPES,
};

fn digest(repo: usize, n: usize) -> String {
    format!("sha256:{repo:08x}{n:056x}")
}

fn cpu_seconds() -> f64 {
    // User + system time of this process, from /proc (no extra crate for one number).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = fields.get(11).and_then(|u| u.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn main() {
    let now = 1_800_000_000i64;
    let policy = PrunePolicy::from_json(
        r#"{"default": {"keepLastTagged": 10, "untaggedMaxAgeDays": 7, "protectTags": ["latest", "prod-*"], "keepSemverReleases": 5}}"#,
    )
    .unwrap();
    let mut repos = Vec::new();
    for r in 0..10 {
        let mut images = Vec::with_capacity(10_000);
        let mut n = 0;
        while images.len() < 10_000 {
            let age = ((n * 7919) % 400) as i64;
            let children: Vec<String> = (1..=4).map(|k| digest(r, n + k)).collect();
            let tags = match n % 50 {
                0 => vec![format!("v1.{}.{}", n / 500, (n / 50) % 10)],
                5 => vec![format!("build-{n}")],
                _ => vec![],
            };
            images.push(Image {
                digest: digest(r, n),
                tags,
                pushed_at: now - age * 86_400,
                size: 1_000,
                media_type: INDEX_MEDIA_TYPES[0].into(),
                manifests: Some(Ok(children.clone())),
                subject: Subject::None,
            });
            for c in children {
                images.push(Image {
                    digest: c,
                    tags: vec![],
                    pushed_at: now - age * 86_400,
                    size: 30_000_000,
                    media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                    manifests: None,
                    subject: Subject::None,
                });
            }
            n += 5;
        }
        let in_use: BTreeMap<String, InUseKind> = (0..20)
            .map(|k| (digest(r, k * 500), InUseKind::InUseTask))
            .collect();
        repos.push((format!("repo-{r}"), images, in_use));
    }
    let cpu0 = cpu_seconds();
    let wall = Instant::now();
    let mut deleted = 0;
    let mut total = 0;
    for (name, images, in_use) in &repos {
        let plan = plan_repository(name, images, in_use, &policy.rules_for(name), now);
        deleted += plan.delete_waves.iter().map(Vec::len).sum::<usize>();
        total += plan.decisions.len();
    }
    let wall = wall.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    println!("planned {total} images in 10 repositories ({deleted} to delete): {cpu:.2} s CPU, {wall:.2} s wall (aim: under 1 s)");
}
