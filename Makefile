# shale — see README.md. Every target is idempotent.
SHELL := /bin/bash
GO ?= go
BIN := bin/shale
PKGS := ./...
# Tests must finish well inside CI's budget on 2 cores.
TEST_TIMEOUT ?= 20m
# Fuzz budgets are execution counts (Nx), not durations: Go 1.26's fuzz
# coordinator can fail a duration-bounded run with a spurious "context
# deadline exceeded" (go.dev/issue/75804).
FUZZTIME ?= 1000000x
# The replay benchmark (cli/replay_bench_test.go): the size of the topic it
# writes and reads back, its rounds (the table gives medians and spreads),
# and, when set, a directory for the CPU and allocation profiles of its
# replay and agent subprocesses (e.g. REPLAY_BENCH_PROFILE=bench-results/replay-profiles).
REPLAY_BENCH_MIB ?= 1024
REPLAY_BENCH_ROUNDS ?= 3
REPLAY_BENCH_PROFILE ?=

.PHONY: all build run test test-deps test-go test-race test-conformance test-librdkafka fuzz fuzz-short bench soak clean lint

all: build

# `shale --version` shows the commit: from Go's VCS stamp when it has one,
# else from this (Go does not stamp builds made in a git worktree).
COMMIT ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)
build:
	$(GO) build -ldflags "-X github.com/shale-dev/shale/cli.Commit=$(COMMIT)" -o $(BIN) .

## run: build and start one agent on embedded defaults (127.0.0.1:9092, etcd + bucket under ./data).
## Ports and directory are variables, other agent flags go in ARGS:
##   make run LISTEN=127.0.0.1:19092 ADMIN_LISTEN=127.0.0.1:19644 ETCD_LISTEN=127.0.0.1:12379 DATA_DIR=data2 ARGS='--log-level debug'
LISTEN ?= 127.0.0.1:9092
ADMIN_LISTEN ?= 127.0.0.1:9644
ETCD_LISTEN ?= 127.0.0.1:2379
DATA_DIR ?= data
ARGS ?=
run: build
	./$(BIN) agent --dev --listen $(LISTEN) --admin-listen $(ADMIN_LISTEN) --dev-etcd-listen $(ETCD_LISTEN) --data-dir $(DATA_DIR) $(ARGS)

## test: install what the tests need, then run every test (they start real etcd and S3 servers)
test: test-deps fuzz-short test-go test-race test-conformance
	@echo "== make test: finished $$(date -u +%T)"

test-deps:
	@echo "== make $@: started $$(date -u +%T)"
	@bash scripts/test-deps.sh

test-go:
	@echo "== make $@: started $$(date -u +%T)"
	$(GO) vet $(PKGS)
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) $$($(GO) list $(PKGS) | grep -v /tests/conformance)

# Other clients' own integration suites against shale (tests/conformance),
# every integration test in its own process, one table per run:
# segmentio/kafka-go's suite against a dev agent in a network namespace of
# its own (it dials localhost:9092), then, at the same time, franz-go's kgo
# suite (against a dev agent, then against two agents on etcd + versitygw
# S3; KGO_TEST_RECORDS=20000, three test processes at a time) and
# librdkafka's own suite (tests/ of its 2.0.2 source, built into the test
# cache by test-deps once; against dev agents, six test processes at a
# time). A pending test that hangs costs its timeout (librdkafka's 0107:
# 160 s, started first). SHALE_KGO_RUN=regexp and
# SHALE_KGO_TOPOLOGY=dev|cluster|kafka-go|librdkafka narrow a rerun.
test-conformance:
	@echo "== make $@: started $$(date -u +%T)"
	set -o pipefail; $(GO) test -count=1 -v -timeout 30m -run 'TestKgoSuite|TestKafkaGoSuite|TestLibrdkafkaSuite|TestKgoDiscovery|TestParseGoTest|TestDisabledDiscovery|TestBrokenSubtestArgs|TestLibrdkafkaDiscovery|TestLibrdkafkaVerdict' ./tests/conformance/ 2>&1 | grep -vE '^=== (RUN|PAUSE|CONT)'

## test-librdkafka: librdkafka's own integration suite alone (tests/ of its 2.0.2 source, built into the test cache once by test-deps) against dev agents, one table (part of make test)
test-librdkafka: test-deps
	set -o pipefail; SHALE_KGO_TOPOLOGY=librdkafka $(GO) test -count=1 -v -timeout 30m -run 'TestLibrdkafkaSuite$$' ./tests/conformance/ 2>&1 | grep -vE '^=== (RUN|PAUSE|CONT)'

# The race detector over every package with concurrency: storage engine,
# index, replay pipeline, auth, the protocol server, the CLI's in-process
# agents, the object store and the lifecycle jobs; then the multi-process
# tests with the agents themselves built with -race (the harness fails a
# test whose agent reports a race; tests that bound an agent's RSS allow
# the race detector's memory cost, cluster.MemFactor). Left out under
# -race only, for time: TestRecoverFromMinIO and
# TestRecoverAfterKillUnderLoad (the race run covers recover's paths with
# TestRecoverFromBucket). tests/interop is not here: its one pass, in
# test-go, builds its agents with -race (cluster.MainWithRaceAgents), except
# TestLargeRecordAcrossAgents's, whose memory bound is the real one
# (SHALE_AGENT_RACE=0 go test ./tests/interop/ runs it without). Also
# left out for time: icetable (its one lock is the Iceberg job's; `go test
# -race ./icetable/` passed in 28 s on 2026-12-05).
RACE_PKGS := ./engine/ ./metastore/ ./replay/ ./segment/ ./span/ ./auth/ ./metrics/ ./agent/ ./s3tier/ ./lifecycle/ ./cli/
test-race:
	@echo "== make $@: started $$(date -u +%T)"
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(RACE_PKGS)
	SHALE_AGENT_RACE=1 $(GO) test -count=1 -timeout $(TEST_TIMEOUT) -skip 'TestRecoverFromMinIO|TestRecoverAfterKillUnderLoad' ./tests/cluster/ ./tests/reliability/

# Every fuzz target runs briefly in `make test` and longer in `make fuzz`.
fuzz-short:
	@echo "== make $@: started $$(date -u +%T)"
	@FUZZTIME=5000x bash scripts/fuzz.sh

fuzz:
	@FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh

## soak: the long reliability campaign (SHALE_SOAK_KILLS agent kills, default 200), then prints its counts;
## then the exactly-once chain across SHALE_EOS_KILLS transaction-coordinator kills (default 10; make test runs it with 1 in TestTxnCoordinatorKills)
SHALE_SOAK_KILLS ?= 200
SHALE_EOS_KILLS ?= 10
soak: test-deps
	set -o pipefail; SHALE_SOAK_KILLS=$(SHALE_SOAK_KILLS) $(GO) test -count=1 -v -timeout 90m -run 'TestCrashCampaign' ./tests/reliability/ 2>&1 | tee /tmp/shale-soak.log | grep -E '^(crash campaign|---|ok|FAIL|PASS)|: kill [0-9]+/|audit'
	set -o pipefail; SHALE_EOS_KILLS=$(SHALE_EOS_KILLS) $(GO) test -count=1 -v -timeout 30m -run 'TestExactlyOnceChain' ./tests/interop/ 2>&1 | tee /tmp/shale-soak-eos.log | grep -E '^(---|ok|FAIL|PASS)|txn_eos_test'

## bench: shale vs kfake and vs the raw S3 server, one run, one table (+ bench-results/*.json, *.svg); shale recover of a 1 GiB, 64-partition cluster on MinIO: time, GETs/HEADs/LISTs, bytes read (bench-results/recover.txt); key compaction (bench-results/keycompaction.txt); Iceberg materialization of a 1 GiB topic vs replay --format parquet, produce-to-row lag, RSS (bench-results/iceberg.txt); two 100 MiB records through agent A and B, their peak RSS (bench-results/large-record.txt)
bench: test-deps
	$(GO) test -run '^$$' -bench . -benchtime 20x -timeout 30m ./s3tier/ ./engine/
	SHALE_REPLAY_BENCH_MIB=$(REPLAY_BENCH_MIB) SHALE_REPLAY_BENCH_ROUNDS=$(REPLAY_BENCH_ROUNDS) SHALE_REPLAY_BENCH_PROFILE=$(REPLAY_BENCH_PROFILE) \
	  SHALE_REPLAY_BENCH_OUT=bench-results/replay.txt $(GO) test -run '^$$' -bench Replay -benchtime 1x -timeout 30m ./cli/
	set -o pipefail; mkdir -p bench-results && SHALE_RECOVER_BENCH_MIB=$${SHALE_RECOVER_BENCH_MIB:-1024} $(GO) test -run '^$$' -bench Recover -benchtime 3x -timeout 30m ./cli/ | tee bench-results/recover.txt
	set -o pipefail; mkdir -p bench-results && $(GO) test -run '^$$' -bench KeyCompaction -benchtime 1x -timeout 30m ./lifecycle/ | tee bench-results/keycompaction.txt
	set -o pipefail; mkdir -p bench-results && SHALE_ICE_BENCH_MIB=$${SHALE_ICE_BENCH_MIB:-1024} $(GO) test -run '^$$' -bench IcebergMaterialize -benchtime 1x -timeout 30m ./icetable/ | tee bench-results/iceberg.txt
	set -o pipefail; mkdir -p bench-results && SHALE_LARGE_RECORD_MIB=100 $(GO) test -count=1 -v -run 'TestLargeRecordAcrossAgents$$' -timeout 10m ./tests/interop/ | grep -E 'peak RSS|^(---|ok|FAIL)' | tee bench-results/large-record.txt
	$(GO) run ./bench -out bench-results

clean:
	rm -rf bin data
