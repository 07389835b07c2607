# Workspace lifecycle governance: build, test, lint, demo, benchmark.
# Everything runs against the local moto server; nothing here reaches a real AWS endpoint.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
MOTO_PORT ?= 5055
MOTO := http://127.0.0.1:$(MOTO_PORT)
FUNCTION ?= ttl-expiry
EVENT ?= events/ttl-expiry/ttl-remove-batch.json

# Loopback endpoint, dummy credentials, no instance metadata: the SDK never leaves this machine.
export AWS_ENDPOINT_URL := $(MOTO)
export MOTO_ENDPOINT := $(MOTO)
export AWS_REGION := us-east-1
export AWS_DEFAULT_REGION := us-east-1
export AWS_ACCESS_KEY_ID := testing
export AWS_SECRET_ACCESS_KEY := testing
export AWS_EC2_METADATA_DISABLED := true
export RUST_BACKTRACE := 1
export SAM_CLI_TELEMETRY := 0

# cargo-nextest when it is installed (CI installs it), else cargo's own test runner.
NEXTEST := $(shell cargo nextest --version >/dev/null 2>&1 && echo yes)
ifeq ($(NEXTEST),yes)
TEST_RUN := cargo nextest run --workspace --no-fail-fast
UNIT_RUN := cargo nextest run --workspace --lib --bins
else
TEST_RUN := cargo test --workspace --no-fail-fast
UNIT_RUN := cargo test --workspace --lib --bins
endif

CHECKOV_VENV := .venv-checkov

.PHONY: help venv tools checkov-tools test unit e2e soak lint fmt clippy template-lint build build-arm64 release demo invoke bench bench-run bench-compare clean fuzz fuzz-replay bench-flat scale

help:
	@echo "make test     unit + integration tests on moto, then an end-to-end run through the Runtime API"
	@echo "make demo     seed a fleet on moto, expire some the way DynamoDB TTL does, run ttl-expiry"
	@echo "make soak     the functions under injected AWS faults on a fleet (under 15 min); make test runs a short one"
	@echo "make lint     cargo fmt --check, clippy, sam validate --lint, cfn-lint, checkov, scripts/check_template.py"
	@echo "make build    sam build (cargo lambda, arm64)"
	@echo "make build-arm64  every function cross-built for arm64 by cargo lambda (CI; profile ci-arm64)"
	@echo "make invoke   FUNCTION=ttl-expiry EVENT=events/... through cargo lambda watch/invoke"
	@echo "make bench    one table: deleter vs rmz/rm -rf (FUSE latency model, disk), archive vs tar|zstd, cold starts, planner, batch throughput, pruner calls"
	@echo "make bench-compare  make bench again; flags any ratio that fell by more than 20% against bench/results.json"
	@echo "make scale    the weekly sweep at fleet size: one invocation vs the fan-out with 1, 4, 16 workers (long; SCALE_ARGS=--quick)"
	@echo "make fuzz     every cargo-fuzz target for FUZZ_SECONDS (nightly); make fuzz-replay: the corpus on stable"

$(VENV)/.test-stamp: requirements-test.txt
	test -x $(VENV)/bin/pip || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements-test.txt
	touch $@

$(VENV)/.tools-stamp: requirements-tools.txt $(VENV)/.test-stamp
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements-tools.txt
	touch $@

# checkov pins a boto3 that aws-sam-cli's conflicts with: it gets a venv of its own.
$(CHECKOV_VENV)/.stamp: requirements-checkov.txt
	test -x $(CHECKOV_VENV)/bin/pip || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q --disable-pip-version-check -r requirements-checkov.txt
	touch $@

venv: $(VENV)/.test-stamp
tools: $(VENV)/.tools-stamp
checkov-tools: $(CHECKOV_VENV)/.stamp

# The test command (README, .ci/run): unit tests, integration tests on moto, end-to-end run, and
# the short soak (the binaries under injected faults, scripts/soak.py).
test: venv
	scripts/moto.sh start >/dev/null
	trap 'scripts/moto.sh stop' EXIT; \
	  $(TEST_RUN) && \
	  cargo build --bins && \
	  $(VENV)/bin/python scripts/e2e.py --bin-dir target/debug && \
	  $(VENV)/bin/python scripts/soak.py --bin-dir target/debug --size short --report .work/soak-short.json

# The full soak (README, "Reliability"): prints the report and writes it to .work/soak-report.json.
soak: venv
	cargo build --bins
	scripts/moto.sh start >/dev/null
	trap 'scripts/moto.sh stop' EXIT; \
	  $(VENV)/bin/python scripts/soak.py --bin-dir target/debug --size full --report .work/soak-report.json

unit:
	$(UNIT_RUN)

e2e: venv release
	scripts/moto.sh start >/dev/null
	trap 'scripts/moto.sh stop' EXIT; $(VENV)/bin/python scripts/e2e.py --bin-dir target/release

release:
	cargo build --release --bins

fmt:
	cargo fmt --all --check

clippy:
	cargo clippy --workspace --all-targets -- -D warnings

lint: fmt clippy template-lint

# The deploy artefacts: SAM's and cfn-lint's rules, checkov (every skip is written next to its
# resource with the reason), and the alarms and dashboard the README promises (check_template.py).
template-lint: tools checkov-tools
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH sam validate --lint --template template.yaml
	$(VENV)/bin/cfn-lint template.yaml
	$(CHECKOV_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation -f template.yaml
	$(VENV)/bin/python scripts/check_template.py template.yaml

build: tools
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH sam build --template template.yaml

# What `sam build` compiles (every function, arm64, cargo-lambda with zig as the linker), with the
# ci-arm64 profile (release, unoptimised: Cargo.toml), so a broken cross-build cannot land and CI
# stays short.
build-arm64: tools
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH cargo lambda build --profile ci-arm64 --arm64 \
	  --bin ttl-expiry --bin heartbeat --bin efs-sweeper --bin ecr-pruner --bin storage-audit

# The demo profile is the release profile unoptimised (Cargo.toml): the same code, built in half the time.
demo: venv
	cargo build --profile demo --bins
	scripts/moto.sh start >/dev/null
	trap 'scripts/moto.sh stop' EXIT; $(VENV)/bin/python scripts/demo.py --bin-dir target/demo

# Runs one function with cargo lambda watch (real Lambda Runtime API) against moto; cargo lambda invoke sends EVENT.
invoke: tools
	scripts/moto.sh start >/dev/null
	trap 'scripts/moto.sh stop' EXIT; \
	  PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/python scripts/invoke_local.py --function $(FUNCTION) --event $(EVENT)

# make bench: one table (figure, ours, baseline measured in the same run, ratio, bound) written to
# bench/results.json; make bench-compare runs it again and flags any ratio that fell by more than
# 20% against the committed results. rmz (the baseline deleter) is installed at a pinned version
# into .work/tools; the FUSE latency model needs fusermount3 (Debian: fuse3) and root.
RMZ_VERSION := 3.2.1
RMZ := .work/tools/bin/rmz
BENCH_ROWS := .work/bench-rows.jsonl

$(RMZ):
	cargo install rmz --version $(RMZ_VERSION) --locked --root .work/tools

bench-run: venv release $(RMZ)
	cargo build --release -p efs-latency
	cargo build --release --example purge -p tree-deleter --example plan_bench -p lifecycle-domain
	cargo build --release --example archive_bench -p lifecycle-fs
	rm -f $(BENCH_ROWS)
	$(VENV)/bin/python scripts/bench_planner.py --binary target/release/examples/plan_bench --rows $(BENCH_ROWS)
	$(VENV)/bin/python scripts/bench_deleter.py --purge target/release/examples/purge --rmz $(RMZ) \
	  --efs-latency target/release/efs-latency --rows $(BENCH_ROWS)
	$(VENV)/bin/python scripts/bench_archive.py --bench target/release/examples/archive_bench \
	  --efs-latency target/release/efs-latency --rows $(BENCH_ROWS)
	scripts/moto.sh start >/dev/null
	trap 'scripts/moto.sh stop' EXIT; \
	  $(VENV)/bin/python scripts/bench_coldstart.py --bin-dir target/release --rows $(BENCH_ROWS) && \
	  $(VENV)/bin/python scripts/coldstart_breakdown.py --bin-dir target/release && \
	  $(VENV)/bin/python scripts/bench_throughput.py --bin-dir target/release --rows $(BENCH_ROWS) && \
	  $(VENV)/bin/python scripts/bench_pruner.py --binary target/release/ecr-pruner --rows $(BENCH_ROWS)

bench: bench-run
	$(VENV)/bin/python scripts/bench_table.py --rows $(BENCH_ROWS) --out bench/results.json

bench-compare: bench-run
	$(VENV)/bin/python scripts/bench_table.py --rows $(BENCH_ROWS) --out .work/bench-latest.json \
	  --compare bench/results.json

# make scale (issue 14; README, "Scale"): the weekly sweep at fleet size on moto and the FUSE latency
# model (scripts/scale.py): 1,000 tenants x 100 workspaces with real directories, 10% expired into
# the trash with 200 files each; one invocation against the fan-out (coordinator, SQS, N warm
# workers) with 1, 4 and 16 workers. Writes bench/scale.json. Long, so not part of make test:
# SCALE_ARGS=--quick is a smoke run (.work/scale-quick.json); --seed-only times the seeding alone.
# Its own moto port (5061 unless MOTO_PORT is given), so it never shares the tests' moto.
SCALE_ARGS ?=
SCALE_MOTO_PORT := $(if $(filter command line environment,$(origin MOTO_PORT)),$(MOTO_PORT),5061)
SCALE_MOTO := http://127.0.0.1:$(SCALE_MOTO_PORT)
scale: venv
	cargo build --release --bin efs-sweeper --bin ttl-expiry
	cargo build --release -p efs-latency
	MOTO_PORT=$(SCALE_MOTO_PORT) scripts/moto.sh start >/dev/null
	trap 'MOTO_PORT=$(SCALE_MOTO_PORT) scripts/moto.sh stop' EXIT; \
	  AWS_ENDPOINT_URL=$(SCALE_MOTO) MOTO_ENDPOINT=$(SCALE_MOTO) $(VENV)/bin/python scripts/scale.py \
	    --bin-dir target/release --efs-latency target/release/efs-latency $(SCALE_ARGS) && \
	  AWS_ENDPOINT_URL=$(SCALE_MOTO) MOTO_ENDPOINT=$(SCALE_MOTO) $(VENV)/bin/python scripts/bench_ttl_tuning.py \
	    --bin-dir target/release && \
	  $(VENV)/bin/python scripts/scale_table.py $(if $(findstring --quick,$(SCALE_ARGS)),--scale .work/scale-quick.json,)

# Hostile input (README, "Reliability"): each cargo-fuzz target for FUZZ_SECONDS on nightly, growing
# its corpus in fuzz/corpus/<target>/ (commit what it adds; `cargo fuzz cmin` when it grows large).
# A crash stops the run with the input in fuzz/artifacts/<target>/. The corpus replay on stable is
# part of the tests (crates/domain/tests/fuzz_corpus.rs): `make fuzz-replay`.
FUZZ_SECONDS ?= 120
FUZZ_TARGETS := stream_record ids_layout trash_name prune_graph policy heartbeat_event
fuzz:
	mkdir -p .work/fuzz
	cd fuzz && cargo +nightly fuzz build -O
	set -e; for t in $(FUZZ_TARGETS); do \
	  echo "== $$t ($(FUZZ_SECONDS) s)"; \
	  (cd fuzz && cargo +nightly fuzz run -O $$t corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1) \
	    > .work/fuzz/$$t.log 2>&1 || { tail -40 .work/fuzz/$$t.log; exit 1; }; \
	  grep -E "^Done|stat::number_of_executed_units" .work/fuzz/$$t.log | tail -2; \
	  echo "corpus: $$(ls fuzz/corpus/$$t | wc -l) files, $$(du -sk fuzz/corpus/$$t | cut -f1) KiB"; \
	done

fuzz-replay:
	cargo test -p lifecycle-domain --test fuzz_corpus -- --nocapture

# A flat directory of a million entries removed by the parallel deleter under a Lambda deadline
# (README, "Reliability"): measured here, never as a timed test.
bench-flat:
	cargo build --release --example flat_dir -p tree-deleter
	target/release/examples/flat_dir --entries 1000000

clean:
	cargo clean
	rm -rf .work .aws-sam
