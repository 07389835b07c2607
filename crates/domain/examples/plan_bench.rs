//! `make bench` (pruner planner): `plan_bench [IMAGES] [REPOSITORIES] [TASK_DEFINITIONS]`
//! (default 1,000,000 images in 100 repositories, 10,000 task definitions) plans synthetic images
//! shaped like a buildx registry (indexes with two platform images and two attestations, tagged
//! releases, untagged leftovers), with what is in use resolved from the task definitions' image
//! references, and prints the time it took and the peak memory as one JSON line.

use std::collections::BTreeMap;
use std::time::Instant;

use lifecycle_domain::prune::{
    in_use_in, plan_repository, Image, ImageStatus, ImageUse, InUseKind, PrunePolicy, Subject,
    UseIndex, INDEX_MEDIA_TYPES,
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

/// Peak resident memory of this process (VmHWM), in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.replace(['_', ','], "").parse::<usize>());
    let total_images = args.next().and_then(Result::ok).unwrap_or(1_000_000);
    let repo_count = args.next().and_then(Result::ok).unwrap_or(100).max(1);
    let task_defs = args.next().and_then(Result::ok).unwrap_or(10_000);
    let per_repo = total_images / repo_count;
    let now = 1_800_000_000i64;
    let policy = PrunePolicy::from_json(
        r#"{"default": {"keepLastTagged": 10, "untaggedMaxAgeDays": 7, "protectTags": ["latest", "prod-*"], "keepSemverReleases": 5}}"#,
    )
    .unwrap();
    let mut repos = Vec::new();
    for r in 0..repo_count {
        let mut images = Vec::with_capacity(per_repo + 4);
        let mut n = 0;
        while images.len() < per_repo {
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
                status: ImageStatus::Active,
                archived_at: None,
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
                    status: ImageStatus::Active,
                    archived_at: None,
                });
            }
            n += 5;
        }
        repos.push((format!("repo-{r}"), images));
    }
    // Task definitions' images: by tag and by digest, over every repository, some elsewhere.
    let registry = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
    let uses: Vec<ImageUse> = (0..task_defs)
        .map(|k| {
            let r = k % repo_count;
            let n = (k / repo_count) * 50 % per_repo.max(1);
            let image = match k % 3 {
                0 => format!("{registry}/repo-{r}@{}", digest(r, n)),
                1 => format!("{registry}/repo-{r}:v1.{}.{}", n / 500, (n / 50) % 10),
                _ => format!("public.ecr.aws/library/app-{k}:latest"),
            };
            ImageUse {
                image,
                digest: None,
                kind: InUseKind::InUseTaskDefinition,
                by: format!("family-{k}:1"),
            }
        })
        .collect();
    // The inputs alone (images, uses): what a plan's peak is compared with.
    let inputs_peak = peak_rss_mib();
    let cpu0 = cpu_seconds();
    let wall = Instant::now();
    let index = UseIndex::new(&uses);
    let mut deleted = 0;
    let mut total = 0;
    let mut in_use_count = 0;
    for (name, images) in &repos {
        let in_use: BTreeMap<String, InUseKind> = index.in_use_in(name, images);
        in_use_count += in_use.len();
        let plan = plan_repository(name, images, &in_use, &policy.rules_for(name), now);
        deleted += plan.delete_waves.iter().map(Vec::len).sum::<usize>();
        total += plan.decisions.len();
    }
    let wall = wall.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let peak = peak_rss_mib();
    // The in-use resolution alone: the index against the scan of every use for every repository.
    let t = Instant::now();
    let index = UseIndex::new(&uses);
    let indexed: usize = repos.iter().map(|(n, i)| index.in_use_in(n, i).len()).sum();
    let indexed_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let scanned: usize = repos
        .iter()
        .map(|(n, i)| in_use_in(n, i, &uses).len())
        .sum();
    let scanned_s = t.elapsed().as_secs_f64();
    assert_eq!(indexed, scanned);
    println!(
        "{{\"images\": {total}, \"repositories\": {repo_count}, \"task_definitions\": {task_defs}, \"in_use\": {in_use_count}, \"deleted\": {deleted}, \"cpu_s\": {cpu:.3}, \"wall_s\": {wall:.3}, \"peak_rss_mib\": {peak:.1}, \"inputs_peak_rss_mib\": {inputs_peak:.1}, \"in_use_indexed_s\": {indexed_s:.4}, \"in_use_scanned_s\": {scanned_s:.4}}}"
    );
}
