// Package s3tier is shale's object store: the durable home of every record
// byte. It defines the Store interface (store.go) and its implementations:
//
//   - NewS3Store: any S3-compatible bucket (AWS, MinIO, versitygw) through
//     aws-sdk-go-v2, for production. ParseS3URL reads "s3://bucket/prefix".
//   - NewDirStore: a local directory, for the embedded default
//     (`shale agent --dev`) and tests. It is as durable as the disk: Put
//     writes a temporary file, fsyncs it, renames it into place and fsyncs
//     the directory.
//
// and decorators that add cross-cutting behaviour without touching an
// implementation: WithPrefix (a key namespace), Counting (call and byte
// counters for tests, metrics and benchmarks), Observed (per-request
// metrics) and Faulty (fault injection).
//
// s3tier is a leaf: it imports nothing of shale's, and knows nothing of
// what its objects hold. Reading index entries' byte ranges as verified
// batches is package span's; the jobs that rewrite and delete objects are
// package lifecycle's.
//
// # Contracts
//
// Every Store, decorated or not, passes the acceptance suite in
// s3tier/storetest, which checks the contracts written on Store:
//
//   - Put is atomic (no reader ever sees part of an object, also when Put
//     fails or its ctx is canceled midway) and idempotent; once it returns
//     nil the object is durable and visible to every Get, Head and List from
//     any process (strong read-after-write, as S3 has provided since 2020).
//   - GetRange returns exactly the bytes asked for, or an error: a range
//     outside the object is ErrInvalidRange, and a body that ends early reads
//     as io.ErrUnexpectedEOF, never as a short object.
//   - List is recursive, filtered by plain string prefix, sorted by key bytes.
//   - Delete is idempotent.
//   - Keys follow one rule set (CheckKey), identical for every store.
//   - Every method honours ctx.
//
// # S3 specifics
//
// Objects below S3Config.MultipartThreshold (16 MiB) go up in one PutObject;
// larger ones in PartSize parts (8 MiB, at least 5 MiB, at most 10,000
// parts), PartConcurrency at a time. A body that reads at offsets
// (io.ReaderAt: a file, an object built in memory) is read part by part
// where it is, so a part can be retried without a copy; any other body is
// copied a part at a time into memory buffers. A failed or canceled multipart upload is aborted, and the abort is
// verified with ListParts and repeated (bounded) because a part in flight can
// outlive a single abort; a bucket lifecycle rule for incomplete uploads
// remains good practice for crashes. Each request is retried by the SDK's
// standard retryer (throttling such as 503 SlowDown, 5xx, connection
// errors) with exponential, jittered backoff, up to S3Config.MaxAttempts
// attempts and without the SDK's shared retry quota. Checksums are only
// computed when an operation requires them, which keeps plain-HTTP
// S3-compatible servers working.
//
// The multipart loop is shale's own (s3_put.go) rather than the SDK's
// upload manager: feature/s3/manager is not in the module graph, its
// successor feature/s3/transfermanager (an indirect dependency here) is
// pre-1.0, and neither verifies that an aborted upload is gone, which
// Put's contract (no part left behind, also on cancellation) relies on.
// The abort's own repeats (6 attempts, 50 ms doubling) use
// github.com/cenkalti/backoff/v5 directly, s3tier importing nothing of
// shale's (internal/retry included).
//
// # Timeouts and read retries
//
// S3Config.AttemptTimeout (default 10s) bounds the silences of one attempt,
// so a server that accepts a request and never answers costs about that
// long, not the caller's whole deadline (30 s for an agent's fetch):
//
//   - Response headers must arrive within it once the request is sent
//     (http.Transport.ResponseHeaderTimeout on the store's own HTTP client;
//     not applied to an S3Config.HTTPClient). The SDK's standard retryer
//     sees net/http's timeout as a connection error and retries it as a new
//     attempt, up to MaxAttempts.
//   - A GetRange body must deliver its next byte within it, counted while
//     the caller is in Read. A stalled body fails with an error wrapping
//     ErrBodyStalled (Timeout() is true) and its request is canceled.
//
// Neither is a deadline on a whole request: slow but steady transfers and
// long uploads go on. A server that stops reading a request body is bounded
// only by the caller's context (the engine's upload timeout).
//
// A body that fails after the store accepted the answer cannot be retried
// by the SDK; span.ReadRange and span.ReadRangeInto resume it.
//
// # Errors
//
//   - ErrNotFound (test with IsNotFound): the object does not exist. S3's
//     NoSuchKey, NotFound and bare 404 map to it; NoSuchBucket does not (a
//     missing bucket is a configuration error, not missing data).
//   - ErrInvalidRange: GetRange outside the object, or a server answering a
//     range with another length than asked.
//   - ErrBodyStalled: a GetRange body silent for S3Config.AttemptTimeout.
//   - ErrInvalidKey: a key or List prefix outside the key rules.
//   - Anything else is an I/O or service error, wrapped with the operation
//     and key ("put topic/obj: ..."), with the SDK error kept for errors.As.
//
// # Limits
//
// A store cannot hold both "a" and "a/b" (directories and POSIX-backed
// gateways cannot represent it); shale's key schema never needs it. The
// directory store leaves ReservedPrefix temporary files behind after a crash
// mid-Put; they are never listed or read, and are safe to delete once no
// Put is running.
package s3tier
