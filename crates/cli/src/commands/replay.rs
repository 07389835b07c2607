//! `lifecycle replay`: hand ttl-expiry's failed batches (what its S3 on-failure destination
//! kept after Lambda's retries gave up) to ttl-expiry again, built as its `main` builds it.
//!
//! Safe to repeat: each record is decided afresh from what the table, ECS and the file system
//! say now, exactly as on a redelivery.

use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};
use lifecycle_runtime::{Function, Invocation};
use serde::Serialize;
use ttl_expiry::replay::FailedBatch;
use ttl_expiry::TtlExpiry;

use crate::confirm::{Confirm, Terminal, Yes};
use crate::context::{Access, Context};
use crate::render::{self, Output};

/// The largest failed batch read: a stream batch is at most 6 MB (Lambda's payload limit), and
/// the object carries it as JSON text beside a little metadata.
const MAX_BATCH_BYTES: u64 = 16 * 1024 * 1024;

/// The most batches one replay reads and hands on (each is read and checked before any is
/// handled, so this bounds memory too): more is done in parts, by `--prefix` or `--key`.
const MAX_BATCHES: usize = 100;

/// Where the failed batches come from.
pub struct Sources {
    pub bucket: Option<String>,
    pub prefix: String,
    pub keys: Vec<String>,
    pub files: Vec<PathBuf>,
    pub all: bool,
}

/// One batch: where it came from, what Lambda said of it, and (once replayed) what failed again.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Replayed {
    pub source: String,
    pub records: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_sequence: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_sequence: Option<String>,
    /// Sequence numbers that failed again (reported for retry, as ttl-expiry reports them).
    pub failed_again: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplaySummary {
    pub dry_run: bool,
    pub batches: Vec<Replayed>,
}

/// An object of the bucket, listed.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Listed {
    pub key: String,
    pub size: i64,
    pub last_modified: Option<i64>,
}

pub async fn run(
    ctx: &Context,
    sources: Sources,
    yes: bool,
    dry_run: bool,
    output: Output,
) -> Result<()> {
    let batches = gather(ctx, &sources, output).await?;
    if batches.is_empty() {
        return Ok(());
    }
    let records: usize = batches.iter().map(|(_, b)| b.records).sum();
    output.note(&render::replay_batches(
        &batches
            .iter()
            .map(|(source, b)| describe(source, b))
            .collect::<Vec<_>>(),
    ));
    let mut confirm: Box<dyn Confirm> = if yes || dry_run {
        Box::new(Yes)
    } else {
        Box::new(Terminal)
    };
    let question = format!(
        "hand these {records} records of {} batches to ttl-expiry again",
        batches.len()
    );
    if !confirm.confirm(&question)? {
        bail!("not confirmed; nothing was replayed");
    }
    let overrides: &[(&str, &str)] = if dry_run { &[("DRY_RUN", "true")] } else { &[] };
    let function: TtlExpiry = ctx.function(Access::Delete, overrides)?;
    // What each record led to, and why: the function's own audit lines, on stderr.
    lifecycle_runtime::observe::init_audit_to_stderr();
    let mut summary = ReplaySummary {
        dry_run: function.config.dry_run,
        batches: Vec::new(),
    };
    for (source, batch) in &batches {
        let response = Function::handle(&function, batch.event.clone(), Invocation::at(ctx.now))
            .await
            .with_context(|| source.clone())?;
        let mut replayed = describe(source, batch);
        replayed.failed_again = response
            .batch_item_failures
            .into_iter()
            .filter_map(|f| f.item_identifier)
            .collect();
        summary.batches.push(replayed);
    }
    output.show(&summary, render::replayed)?;
    let failed: usize = summary.batches.iter().map(|b| b.failed_again.len()).sum();
    if failed > 0 {
        bail!("{failed} records failed again (their audit lines say why); replay them once the cause is fixed");
    }
    Ok(())
}

fn describe(source: &str, batch: &FailedBatch) -> Replayed {
    Replayed {
        source: source.to_string(),
        records: batch.records,
        condition: batch.condition.clone(),
        timestamp: batch.timestamp.clone(),
        first_sequence: batch.first_sequence.clone(),
        last_sequence: batch.last_sequence.clone(),
        failed_again: Vec::new(),
    }
}

/// The batches named (files, keys, or every object under the prefix), each parsed; with only a
/// bucket, the objects are listed and nothing is returned. One that cannot be read stops the
/// command before anything is replayed.
async fn gather(
    ctx: &Context,
    sources: &Sources,
    output: Output,
) -> Result<Vec<(String, FailedBatch)>> {
    let mut raw: Vec<(String, Vec<u8>)> = Vec::new();
    for file in &sources.files {
        let size = std::fs::metadata(file)
            .with_context(|| format!("{}", file.display()))?
            .len();
        if size > MAX_BATCH_BYTES {
            bail!(
                "{}: {size} bytes, more than the {MAX_BATCH_BYTES} a failed batch can be",
                file.display()
            );
        }
        let bytes = std::fs::read(file).with_context(|| format!("{}", file.display()))?;
        raw.push((file.display().to_string(), bytes));
    }
    if !sources.keys.is_empty() || sources.all || sources.files.is_empty() {
        let Some(bucket) = &sources.bucket else {
            bail!("name the failed-batch bucket (--bucket or FAILED_BATCH_BUCKET: the stack's output TtlExpiryFailedBatchBucketName) or a --file");
        };
        let store = ctx.failed_batches(bucket);
        let mut keys = sources.keys.clone();
        if sources.all || keys.is_empty() {
            let listed = store.list(&sources.prefix).await?;
            if !sources.all && sources.keys.is_empty() {
                let listed: Vec<Listed> = listed
                    .into_iter()
                    .map(|o| Listed {
                        key: o.key,
                        size: o.size,
                        last_modified: o.last_modified,
                    })
                    .collect();
                output.show(&listed, |l| render::failed_batch_objects(bucket, l))?;
                return Ok(Vec::new());
            }
            keys.extend(listed.into_iter().map(|o| o.key));
        }
        if keys.len() + raw.len() > MAX_BATCHES {
            bail!(
                "{} failed batches named; replay at most {MAX_BATCHES} at a time (narrow with --prefix or --key)",
                keys.len() + raw.len()
            );
        }
        for key in keys {
            let bytes = store
                .get(&key, MAX_BATCH_BYTES)
                .await?
                .with_context(|| format!("s3://{bucket}/{key}: no such object"))?;
            raw.push((format!("s3://{bucket}/{key}"), bytes));
        }
    }
    raw.into_iter()
        .map(|(source, bytes)| {
            let batch = FailedBatch::parse(&bytes).with_context(|| source.clone())?;
            Ok((source, batch))
        })
        .collect()
}
