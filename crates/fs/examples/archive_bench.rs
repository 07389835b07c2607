//! Archive throughput and peak memory: `archive_bench <dir> [--part BYTES] [--workers N]
//! [--round-trip-us US]` walks `<dir>` as the sweeper archives a trash entry (tar + zstd,
//! multipart parts with their SHA-256) into a bucket that keeps only the parts' digests, and
//! prints files/s, MB/s, the archive's composite SHA-256 and the process's peak RSS as JSON.
//! `--workers` and `--round-trip-us` set the walk's look-ahead (default: the sweeper's;
//! `--round-trip-us 0` starts every worker at once). scripts/bench_archive.py compares it with
//! `tar -cf - -C <dir> . | zstd -3`.

use std::sync::Mutex;
use std::time::Instant;

use async_trait::async_trait;
use lifecycle_fs::archive::{sha256, upload_tree_with, Lookahead, PART_SIZE};
use lifecycle_ports::{
    ArchiveStore, ArchivedObject, Failure, ObjectSpec, ServiceError, StoredObject, UploadedPart,
};

/// Keeps each part's digest and size, never its bytes.
#[derive(Default)]
struct Discard {
    parts: Mutex<Vec<([u8; 32], u64)>>,
}

#[async_trait]
impl ArchiveStore for Discard {
    async fn start_upload(&self, _: &ObjectSpec) -> Result<String, ServiceError> {
        Ok("bench".into())
    }
    async fn upload_part(
        &self,
        _: &str,
        _: &str,
        number: i32,
        body: Vec<u8>,
        digest: [u8; 32],
    ) -> Result<UploadedPart, ServiceError> {
        self.parts.lock().unwrap().push((digest, body.len() as u64));
        Ok(UploadedPart {
            number,
            etag: number.to_string(),
            sha256: digest,
        })
    }
    async fn complete_upload(
        &self,
        _: &str,
        _: &str,
        _: &[UploadedPart],
    ) -> Result<(), ServiceError> {
        Ok(())
    }
    async fn abort_upload(&self, _: &str, _: &str) -> Result<(), ServiceError> {
        Ok(())
    }
    async fn put(&self, _: &ObjectSpec, _: Vec<u8>) -> Result<(), ServiceError> {
        Ok(())
    }
    async fn head(&self, key: &str) -> Result<Option<ArchivedObject>, ServiceError> {
        let parts = self.parts.lock().unwrap();
        let digests: Vec<u8> = parts.iter().flat_map(|(d, _)| d.to_vec()).collect();
        Ok(Some(ArchivedObject {
            key: key.into(),
            size: parts.iter().map(|(_, n)| n).sum(),
            sha256: Some(sha256(&digests)),
            last_modified: None,
            storage_class: None,
            restore: None,
            metadata: Default::default(),
        }))
    }
    async fn get_range(&self, _: &str, _: u64, _: u64) -> Result<Vec<u8>, ServiceError> {
        Err(ServiceError::new("bench", "not kept", Failure::Permanent))
    }
    async fn get(&self, _: &str, _: u64) -> Result<Option<Vec<u8>>, ServiceError> {
        Ok(None)
    }
    async fn list(&self, _: &str) -> Result<Vec<StoredObject>, ServiceError> {
        Ok(Vec::new())
    }
    async fn request_restore(&self, _: &str, _: i32) -> Result<bool, ServiceError> {
        Ok(false)
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let usage = "usage: archive_bench <dir> [--part BYTES] [--workers N] [--round-trip-us US]";
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect(usage);
    let mut part = PART_SIZE;
    let mut lookahead = Lookahead::default();
    while let Some(flag) = args.next() {
        let value: usize = args.next().and_then(|v| v.parse().ok()).expect(usage);
        match flag.as_str() {
            "--part" => part = value,
            "--workers" => lookahead.workers = value,
            "--round-trip-us" => {
                lookahead.round_trip = std::time::Duration::from_micros(value as u64)
            }
            _ => panic!("{usage}"),
        }
    }
    let top = rustix::fs::open(
        dir.as_str(),
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
        rustix::fs::Mode::empty(),
    )
    .expect("open the directory");
    let store = std::sync::Arc::new(Discard::default());
    let spec = ObjectSpec {
        key: "bench".into(),
        ..ObjectSpec::default()
    };
    let started = Instant::now();
    let archived = upload_tree_with(store, &spec, top, part, None, lookahead)
        .await
        .expect("archive");
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "files": archived.stats.files,
            "directories": archived.stats.directories,
            "bytes": archived.stats.bytes,
            "archiveBytes": archived.size,
            "parts": archived.parts,
            "sha256": archived.sha256.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "workers": lookahead.workers,
            "seconds": seconds,
            "filesPerSecond": archived.stats.files as f64 / seconds,
            "megabytesPerSecond": archived.stats.bytes as f64 / 1e6 / seconds,
            "peakRssMiB": peak_rss_kib() as f64 / 1024.0,
        })
    );
}
