//! The fuzz corpus, replayed on the stable toolchain: every input `make fuzz` kept (and every
//! crash it found, once fixed) runs through the same check as its fuzz target
//! (`lifecycle_domain::fuzz_checks`), so CI catches a regression without nightly or libFuzzer.

use std::path::PathBuf;

use lifecycle_domain::fuzz_checks::TARGETS;

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_input_passes_its_check() {
    for (target, check) in TARGETS {
        let files = corpus(target);
        assert!(!files.is_empty(), "fuzz/corpus/{target} has no seeds");
        for file in &files {
            let data = std::fs::read(file).expect("a readable corpus file");
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(
                outcome.is_ok(),
                "{target}: {} fails its check (replay: cargo +nightly fuzz run {target} {})",
                file.display(),
                file.display()
            );
        }
        println!("{target}: {} inputs", files.len());
    }
}
