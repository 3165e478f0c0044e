// Package testenv is shale's shared test harness: real servers, started per
// test on 127.0.0.1 random ports and stopped by t.Cleanup, so tests exercise
// the same code paths as production instead of fakes.
//
//   - S3 starts a real versitygw S3 gateway (posix backend in t.TempDir())
//     with a fresh bucket; S3Server.Minio gives an independent minio-go
//     client to inspect what shale wrote. StartS3Process does the same outside
//     tests (benchmarks, multi-process tests). The versitygw binary comes
//     from $SHALE_VERSITYGW, else from `go tool -n versitygw` (go.mod's tool
//     directive), looked up once per process.
//   - MinIO starts a real MinIO server the same way (the second S3
//     implementation). Its binary is built by scripts/test-deps.sh into a
//     cache directory (MinIOPath; AGPL, run as a process, never imported).
//   - Etcd starts an embedded etcd at a stock etcd server's limits (128
//     operations per transaction, 1.5 MiB per request), as
//     `shale agent --dev`'s embedded etcd runs too, and returns a client:
//     every in-process test's commits meet production's limits, and one
//     that would not fit fails its test.
//   - StartEtcdProcess runs etcd as a separate process at those same
//     limits (the test binary re-executed in etcd mode; its TestMain calls
//     RunEtcdIfAsked first), which a test can SIGKILL and restart with
//     every key kept. The multi-process tests (tests/cluster's Start) run
//     on it. The limits are etcd's own defaults (embed.DefaultMaxTxnOps,
//     embed.DefaultMaxRequestBytes), which TestEtcdDefaultLimits asserts.
//
// Invariants: every server listens on 127.0.0.1 only, gets its own data
// directory, and is gone when the test's cleanups have run. A server's output
// is logged only when the test failed. Startup failures fail the test with
// t.Fatalf; they are never skipped silently. A missing server binary
// (RequireServer) skips the test locally but fails it under CI=true, so CI
// never counts a test that did not run as passed.
package testenv
