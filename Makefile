# The two set-up commands are `make demo` and `make test`; the rest are building blocks.
SHELL := /bin/bash
STACK := tests/stack/stack.sh
STACK_ENV := $(or $(IMPRESSIONS_STACK_DIR),/tmp/impressions-stack)/stack.env
CARGO ?= cargo

.PHONY: images fuzz fuzz-cmin chaos bench-worker bench-operator bench-archiver bench-autoscaler bench-rebalance bench-predictive test-archive-scaling demo test test-unit test-integration stack-up stack-down stack-status crds lint fmt prerequisites

## demo: bring up the local stack, install the CRDs and the examples, show `kubectl get ipl`
## (worker pods run as containers from the images)
demo: prerequisites stack-up images
	$(CARGO) build --bins
	tests/stack/demo.sh

## test: every test — unit tests, then integration tests against the local stack (with the
## images, which tests/tests/images.rs and node_containers.rs run)
test: prerequisites lint test-unit stack-up images test-integration

## test-unit: tests that need no stack (pure functions, generated YAML, property tests, the
## chart's files against the code): every package but the stack tests (impressions-stack-tests)
test-unit:
	$(CARGO) test --workspace --exclude impressions-stack-tests

## test-integration: tests against the real API server, controller-manager, Kafka and Prometheus
## (tests/tests/); they run the workspace's binaries (operator, worker, loadgen, node_agent)
test-integration:
	$(CARGO) build --bins
	$(CARGO) test -p impressions-stack-tests --no-fail-fast -- --test-threads=4

## images: the operator's, the worker's and the archiver's images (images/Containerfile) built here without a
## registry: release binaries and a runtime base of Debian packages from the host, the final
## stages by podman; tagged ghcr.io/impressions/{operator,worker,archiver}:<version>, saved as OCI
## archives in out/, sizes in out/images.json (docs/images.md)
images:
	CARGO="$(CARGO)" images/build.sh

## bench-worker: criterion bench of the per-event path (with the naive baseline) and the
## end-to-end bench against a passthrough on the local Kafka, at-least-once and exactly-once
## (docs/benchmarks.md)
bench-worker: stack-up
	$(CARGO) bench -p impressions-worker --bench pipeline
	$(CARGO) build --release --bin worker --bin bench_e2e
	target/release/bench_e2e 500000 1 AtLeastOnce,ExactlyOnce
	target/release/bench_e2e 500000 2 AtLeastOnce,ExactlyOnce

## bench-archiver: the archiver on the local Kafka: records/s per core, Parquet bytes per record
## against the Avro topic, commit latency, files per hour at the defaults (docs/benchmarks.md)
bench-archiver: stack-up
	$(CARGO) build --release --bin worker --bin archiver --bin bench_archiver
	mkdir -p docs/results
	target/release/bench_archiver 200000 --out docs/results/bench-archiver.json

## test-archive-scaling: the archivers in the closed loop on the local stack (~2 min): a step of
## traffic scales them up and back down; figures in docs/results/archive-scaling.json
## (docs/benchmarks.md)
test-archive-scaling: stack-up
	$(CARGO) build --bins
	mkdir -p docs/results
	ARCHIVE_SCALING_OUT=$(CURDIR)/docs/results/archive-scaling.json \
	  $(CARGO) test -p impressions-stack-tests --test archive_scaling -- --ignored --nocapture

## bench-operator: 1,000 pipelines with real topics: evaluation interval p50/p99, API requests
## per minute by verb, writes, RSS, threads; idle and under traffic, then with Prometheus hung and
## 10 bootstraps black-holed (docs/benchmarks.md; results in docs/results/)
bench-operator: stack-up
	$(CARGO) build --release --bin operator --bin bench_operator
	mkdir -p docs/results
	target/release/bench_operator 1000 --out docs/results/bench-operator.json
	target/release/bench_operator 1000 --hang-prometheus --blackhole 10 --out docs/results/bench-operator-faults.json

## bench-rebalance: the consumption pause of one scaling action (one worker joining, one
## leaving, several leaving and joining together) under steady traffic, per consumer group
## protocol (Consumer, KIP-848, and Classic); the run is merged into
## docs/results/bench-rebalance.json under BENCH_LABEL (docs/benchmarks.md, ~15 min). A debug
## build: the pause is the group protocol's timing, the traffic far below the workers' capacity.
BENCH_LABEL ?= stack
bench-rebalance: stack-up
	$(CARGO) build --bin worker --bin bench_rebalance
	mkdir -p docs/results
	target/debug/bench_rebalance --label $(BENCH_LABEL) --out docs/results/bench-rebalance.json

## bench-autoscaler: the scaling simulator on every built-in scenario under every policy, the
## baselines over their grids; results in docs/results/bench-autoscaler.json, plots in out/
## (docs/benchmarks.md)
bench-autoscaler:
	$(CARGO) build --release --bin operator
	mkdir -p docs/results out
	target/release/operator simulate --bench docs/results/bench-autoscaler.json --plots out

## bench-predictive: predictive scaling in the closed loop on the local stack (~25 min): two
## pipelines fed the same compressed diurnal trace (three 7-minute days) at once, one with
## predictive.mode Scale and one Off; replica-seconds and seconds over the lag SLO of the day
## compared in docs/results/bench-predictive.json, the timeline next to it as CSV
## (docs/benchmarks.md). A debug build, as the closed-loop test.
bench-predictive: stack-up
	$(CARGO) build --bins
	mkdir -p docs/results
	target/debug/bench_predictive --out docs/results/bench-predictive.json

## chaos: the chaos suite on a stack of its own (it kills and restarts stack components), once
## at-least-once and once exactly-once, the worker pods containers from the images; results in
## target/chaos/ and docs/reliability.md (~40 min)
CHAOS_STACK := /tmp/impressions-chaos-stack
chaos: prerequisites images
	$(CARGO) build --bins
	IMPRESSIONS_STACK_DIR=$(CHAOS_STACK) $(STACK) up
	IMPRESSIONS_STACK_DIR=$(CHAOS_STACK) target/debug/chaos AtLeastOnce; a=$$?; \
	IMPRESSIONS_STACK_DIR=$(CHAOS_STACK) target/debug/chaos ExactlyOnce; e=$$?; \
	IMPRESSIONS_STACK_DIR=$(CHAOS_STACK) $(STACK) down; test $$a -eq 0 -a $$e -eq 0

## fuzz: the cargo-fuzz targets (fuzz/), FUZZ_SECONDS each, one after the other, one process,
## nice'd; new inputs go to fuzz/.work/, crashes to fuzz/artifacts/ (docs/reliability.md)
FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?= raw_event raw_event_structured worker_config worker_config_structured
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz
	cd fuzz && for t in $(FUZZ_TARGETS); do \
	  mkdir -p .work/$$t; \
	  seeds=; [ -d corpus/$$t ] && seeds=corpus/$$t; \
	  dict=; [ -f dict/$$t.dict ] && dict=-dict=dict/$$t.dict; \
	  nice -n 19 $(CARGO) +nightly fuzz run $$t .work/$$t $$seeds -- \
	    -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 $$dict || exit 1; \
	done

## fuzz-cmin: minimizes the committed seed corpora (fuzz/corpus/) in place
fuzz-cmin:
	cd fuzz && for t in $$(ls corpus); do nice -n 19 $(CARGO) +nightly fuzz cmin $$t corpus/$$t || exit 1; done

## stack-up / stack-down: start or stop the local stack (provisions on first use)
stack-up:
	$(STACK) up

stack-down:
	$(STACK) down

stack-status:
	$(STACK) status

## crds: regenerate crds/yaml from the Rust types
crds:
	$(CARGO) run -q -p impressions-crds --bin crdgen -- --out crds/yaml

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	python3 .ci/module_cycles.py $(wildcard archiver/src crds/src operator/src kubectl-impressions/src worker/src worker/core/src tests/support/src tests/node-agent/src)

fmt:
	$(CARGO) fmt --all

## prerequisites: checks the machine has the toolchains the stack is built with
prerequisites:
	@tests/stack/prerequisites.sh
