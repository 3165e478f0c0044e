package s3tier

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"golang.org/x/sync/errgroup"
)

// S3 upload defaults and limits.
const (
	DefaultMultipartThreshold int64 = 16 << 20
	DefaultPartSize           int64 = 8 << 20
	DefaultPartConcurrency          = 4
	DefaultMaxAttempts              = 8
	DefaultMaxBackoff               = 20 * time.Second
	DefaultAttemptTimeout           = 10 * time.Second
	// MinPartSize is S3's smallest part (all but the last); smaller PartSize
	// values are raised to it.
	MinPartSize int64 = 5 << 20
	// MaxParts is S3's largest part count; PartSize grows to stay below it.
	MaxParts = 10000
)

// S3Config configures NewS3Store.
type S3Config struct {
	Bucket string
	// Prefix is prepended, with a "/", to every key; surrounding slashes
	// are ignored.
	Prefix string
	// Endpoint is the S3 endpoint URL (e.g. "http://127.0.0.1:9000"); empty
	// means AWS.
	Endpoint string
	// Region defaults to the AWS configuration's region, else "us-east-1".
	Region    string
	PathStyle bool
	// AccessKey and SecretKey are optional static credentials. When set, no
	// AWS environment or shared configuration is read at all; when empty,
	// the standard AWS chain (config.LoadDefaultConfig) supplies credentials.
	AccessKey, SecretKey string
	// Objects of at least MultipartThreshold bytes are uploaded in parts of
	// PartSize bytes, PartConcurrency at a time.
	MultipartThreshold int64
	PartSize           int64
	PartConcurrency    int
	// MaxAttempts bounds the attempts of one request (first try included);
	// MaxBackoff caps the exponential, jittered wait between them.
	MaxAttempts int
	MaxBackoff  time.Duration
	// AttemptTimeout bounds the silences of one attempt (default
	// DefaultAttemptTimeout, 10s; negative: no bound):
	//   - waiting for response headers once the request is sent
	//     (http.Transport.ResponseHeaderTimeout). The SDK's retryer treats
	//     the timeout as a connection error and retries it as a new attempt,
	//     within MaxAttempts. Only the store's own HTTP client gets this
	//     bound, not an HTTPClient given here.
	//   - waiting for the next byte of a GetRange body, counted only while
	//     the caller is in Read: a body silent that long fails with an error
	//     wrapping ErrBodyStalled (and the request is canceled), which
	//     ReadRange retries like any transient body failure.
	// It is not a deadline on a whole request: a slow but steady body, or a
	// long upload, is never cut. Keep it well above the server's usual
	// time to first byte.
	AttemptTimeout time.Duration
	// HTTPClient replaces the SDK's HTTP client (fault injection in tests).
	HTTPClient *http.Client
}

func (c *S3Config) setDefaults() {
	if c.MultipartThreshold <= 0 {
		c.MultipartThreshold = DefaultMultipartThreshold
	}
	if c.PartSize <= 0 {
		c.PartSize = DefaultPartSize
	}
	c.PartSize = max(c.PartSize, MinPartSize)
	if c.PartConcurrency <= 0 {
		c.PartConcurrency = DefaultPartConcurrency
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.AttemptTimeout == 0 {
		c.AttemptTimeout = DefaultAttemptTimeout
	}
	c.Prefix = cleanPrefix(c.Prefix)
}

// ParseS3URL splits "s3://bucket/prefix" into its bucket and prefix (without
// surrounding slashes; empty when absent).
func ParseS3URL(raw string) (bucket, prefix string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", fmt.Errorf("s3tier: parse %q: %w", raw, err)
	}
	switch {
	case u.Scheme != "s3":
		return "", "", fmt.Errorf("s3tier: parse %q: scheme must be s3", raw)
	case u.Host == "":
		return "", "", fmt.Errorf("s3tier: parse %q: no bucket", raw)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Port() != "":
		return "", "", fmt.Errorf("s3tier: parse %q: want s3://bucket/prefix only", raw)
	}
	prefix = cleanPrefix(u.Path)
	if prefix != "" {
		if err := CheckKey(prefix); err != nil {
			return "", "", fmt.Errorf("s3tier: parse %q: prefix: %w", raw, err)
		}
	}
	return u.Host, prefix, nil
}

type s3Store struct {
	cfg    S3Config
	client *s3.Client
}

var _ Store = (*s3Store)(nil)

// NewS3Store returns a Store over an S3 bucket (AWS or any S3-compatible
// server). It does not contact the server.
func NewS3Store(ctx context.Context, cfg S3Config) (Store, error) {
	cfg.setDefaults()
	if cfg.Bucket == "" {
		return nil, errors.New("s3tier: s3 store: no bucket")
	}
	if cfg.Prefix != "" {
		if err := CheckKey(cfg.Prefix); err != nil {
			return nil, fmt.Errorf("s3tier: s3 store prefix: %w", err)
		}
	}
	retryer := func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = cfg.MaxAttempts
			o.MaxBackoff = cfg.MaxBackoff
			// Attempts are bounded by MaxAttempts; a shared retry quota
			// would turn a brownout into immediate failures instead.
			o.RateLimiter = ratelimit.None
		})
	}
	var awsCfg aws.Config
	if cfg.AccessKey != "" {
		awsCfg = aws.Config{
			Credentials: credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, ""),
			Region:      cfg.Region,
			Retryer:     retryer,
		}
	} else {
		opts := []func(*config.LoadOptions) error{config.WithRetryer(retryer)}
		if cfg.Region != "" {
			opts = append(opts, config.WithRegion(cfg.Region))
		}
		var err error
		awsCfg, err = config.LoadDefaultConfig(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("s3tier: s3 store: load AWS config: %w", err)
		}
	}
	if awsCfg.Region == "" {
		awsCfg.Region = "us-east-1"
	}
	cfg.Region = awsCfg.Region
	switch {
	case cfg.HTTPClient != nil:
		awsCfg.HTTPClient = cfg.HTTPClient
	case cfg.AttemptTimeout > 0:
		// The SDK's own buildable client (with its dial and TLS settings),
		// plus the response-header bound; net/http's timeout error is a
		// connection error to the SDK's retryer, so the attempt is retried.
		b, ok := awsCfg.HTTPClient.(*awshttp.BuildableClient)
		if !ok && awsCfg.HTTPClient == nil {
			b, ok = awshttp.NewBuildableClient(), true
		}
		if ok {
			awsCfg.HTTPClient = b.WithTransportOptions(func(tr *http.Transport) {
				tr.ResponseHeaderTimeout = cfg.AttemptTimeout
			})
		}
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
		// Only send or check checksums when an operation requires them:
		// S3-compatible servers (versitygw, older MinIO) differ in their
		// support of the newer CRC trailers, and the payload is already
		// covered by the SigV4 signature over plain HTTP.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	return &s3Store{cfg: cfg, client: client}, nil
}

func (s *s3Store) String() string {
	u := "s3://" + s.cfg.Bucket
	if s.cfg.Prefix != "" {
		u += "/" + s.cfg.Prefix
	}
	if s.cfg.Endpoint != "" {
		u += " (" + redactURL(s.cfg.Endpoint) + ")"
	}
	return u
}

// redactURL drops any userinfo from an endpoint URL.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	u.User = nil
	return u.String()
}

func (s *s3Store) key(key string) string { return joinKey(s.cfg.Prefix, key) }

// mapErr turns the SDK's not-found errors into a wrapped ErrNotFound, keeping
// the original for errors.As.
func mapErr(op, key string, err error) error {
	if isS3NotFound(err) {
		return fmt.Errorf("%s %s: %w: %w", op, key, ErrNotFound, err)
	}
	return fmt.Errorf("%s %s: %w", op, key, err)
}

func isS3NotFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return true
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "NoSuchKey", "NotFound":
			return true
		case "NoSuchBucket":
			// A missing bucket is a configuration error, not a missing
			// object: callers must not conclude the data is gone.
			return false
		}
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound && (api == nil || api.ErrorCode() != "NoSuchBucket")
}

func isInvalidRange(err error) bool {
	var api smithy.APIError
	if errors.As(err, &api) && api.ErrorCode() == "InvalidRange" {
		return true
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusRequestedRangeNotSatisfiable
}

func (s *s3Store) Put(ctx context.Context, key string, body io.ReadSeeker, size int64) error {
	if err := CheckKey(key); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	// Both upload paths need the exact length up front (Content-Length, part
	// count), and a mismatch would otherwise surface as a signature error.
	n, err := remaining(body)
	if err != nil {
		return fmt.Errorf("put %s: find body size: %w", key, err)
	}
	if size >= 0 && n != size {
		return fmt.Errorf("put %s: body has %d bytes, size says %d", key, n, size)
	}
	size = n
	if size >= s.cfg.MultipartThreshold {
		if err := s.putMultipart(ctx, key, body, size); err != nil {
			return fmt.Errorf("put %s: %w", key, err)
		}
		return nil
	}
	_, err = s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(s.cfg.Bucket),
		Key:           aws.String(s.key(key)),
		Body:          body,
		ContentLength: aws.Int64(size),
	})
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// putMultipart uploads body in parts, PartConcurrency at a time, and aborts
// the upload on any failure (also on cancellation) so no parts are left.
func (s *s3Store) putMultipart(ctx context.Context, key string, body io.Reader, size int64) (err error) {
	partSize := max(s.cfg.PartSize, (size+MaxParts-1)/MaxParts)
	bkey := s.key(key)
	created, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: aws.String(s.cfg.Bucket),
		Key:    aws.String(bkey),
	})
	if err != nil {
		return fmt.Errorf("create multipart upload: %w", err)
	}
	uploadID := created.UploadId
	defer func() {
		if err != nil {
			if aerr := s.abort(ctx, bkey, uploadID); aerr != nil {
				err = fmt.Errorf("%w (abort multipart upload: %w)", err, aerr)
			}
		}
	}()

	nparts := int((size + partSize - 1) / partSize)
	if nparts == 0 {
		nparts = 1 // an empty object still needs one (empty) part
	}
	parts := make([]types.CompletedPart, nparts)
	// A failed part stops new parts but lets those in flight finish: a part
	// still being written server-side when the abort arrives could outlive it.
	var g errgroup.Group
	g.SetLimit(s.cfg.PartConcurrency)
	var failed atomic.Bool
	var readErr error
	for i := range nparts {
		if failed.Load() {
			break
		}
		n := min(partSize, size-int64(i)*partSize)
		buf := make([]byte, n)
		if _, err := io.ReadFull(ctxReader{ctx: ctx, r: body}, buf); err != nil {
			readErr = fmt.Errorf("read part %d: %w", i+1, noEOF(err))
			break
		}
		num := int32(i + 1)
		g.Go(func() error {
			out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
				Bucket:        aws.String(s.cfg.Bucket),
				Key:           aws.String(bkey),
				UploadId:      uploadID,
				PartNumber:    aws.Int32(num),
				Body:          bytes.NewReader(buf),
				ContentLength: aws.Int64(int64(len(buf))),
			})
			if err != nil {
				failed.Store(true)
				return fmt.Errorf("upload part %d: %w", num, err)
			}
			parts[num-1] = types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num)}
			return nil
		})
	}
	if werr := g.Wait(); werr != nil {
		return werr // the first part failure (it explains a later read error)
	}
	if readErr != nil {
		return readErr
	}
	if err := checkEOF(body); err != nil {
		return err
	}
	_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(s.cfg.Bucket),
		Key:             aws.String(bkey),
		UploadId:        uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return fmt.Errorf("complete multipart upload: %w", err)
	}
	return nil
}

// abort aborts a multipart upload, even when ctx is done, and makes sure it
// is gone: as S3 documents, a part upload in flight during the abort can
// survive it, so abort is repeated until ListParts reports NoSuchUpload
// (bounded; the bucket's lifecycle rule or GC is the last resort).
func (s *s3Store) abort(ctx context.Context, key string, uploadID *string) error {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	var err error
	for attempt := range 6 {
		if attempt > 0 {
			select {
			case <-time.After(time.Duration(25<<attempt) * time.Millisecond):
			case <-actx.Done():
				return actx.Err()
			}
		}
		_, err = s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket: aws.String(s.cfg.Bucket), Key: aws.String(key), UploadId: uploadID,
		})
		if err != nil && !isNoSuchUpload(err) {
			continue
		}
		_, err = s.client.ListParts(actx, &s3.ListPartsInput{
			Bucket: aws.String(s.cfg.Bucket), Key: aws.String(key), UploadId: uploadID,
		})
		if isNoSuchUpload(err) {
			return nil
		}
		if err == nil {
			err = errors.New("upload still listed after abort")
		}
	}
	return err
}

func isNoSuchUpload(err error) bool {
	var nsu *types.NoSuchUpload
	var api smithy.APIError
	return errors.As(err, &nsu) || (errors.As(err, &api) && api.ErrorCode() == "NoSuchUpload")
}

// remaining returns the bytes left in body from its current position,
// leaving the position unchanged.
func remaining(body io.Seeker) (int64, error) {
	cur, err := body.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, err
	}
	end, err := body.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, err
	}
	if _, err := body.Seek(cur, io.SeekStart); err != nil {
		return 0, err
	}
	return end - cur, nil
}

// noEOF reports a body that ended before size bytes as such.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("body shorter than size: %w", io.ErrUnexpectedEOF)
	}
	return err
}

// checkEOF fails when body has bytes beyond the declared size.
func checkEOF(body io.Reader) error {
	var one [1]byte
	n, err := io.ReadFull(body, one[:])
	if n > 0 {
		return errors.New("body longer than size")
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read body: %w", err)
	}
	return nil
}

func (s *s3Store) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if err := CheckKey(key); err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	if off < 0 {
		return nil, fmt.Errorf("get: %w: %s: offset %d", ErrInvalidRange, key, off)
	}
	if length == 0 {
		// S3 cannot express an empty range; check the object and offset.
		info, err := s.Head(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("get: %w", err)
		}
		if _, err := checkRange(key, info.Size, off, 0); err != nil {
			return nil, fmt.Errorf("get: %w", err)
		}
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	in := &s3.GetObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(s.key(key))}
	switch {
	case length > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", off, off+length-1))
	case off > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", off))
	}
	// The request's own context outlives GetObject: the body streams under
	// it, and the idle-read timer cancels it when the body stalls.
	rctx, cancel := context.WithCancelCause(ctx)
	out, err := s.client.GetObject(rctx, in)
	if err != nil {
		cancel(nil)
		if isInvalidRange(err) {
			if length < 0 {
				// Reading from exactly the end is an empty read, not an error.
				if info, herr := s.Head(ctx, key); herr == nil && info.Size == off {
					return io.NopCloser(bytes.NewReader(nil)), nil
				}
			}
			return nil, fmt.Errorf("get: %w: %s: offset %d length %d: %w", ErrInvalidRange, key, off, length, err)
		}
		return nil, mapErr(OpGet, key, err)
	}
	want := length
	if length < 0 {
		// The object's size is in Content-Range for ranged responses.
		total, ok := totalFromContentRange(aws.ToString(out.ContentRange))
		if in.Range == nil {
			total, ok = aws.ToInt64(out.ContentLength), out.ContentLength != nil
		}
		if !ok {
			_ = out.Body.Close()
			cancel(nil)
			return nil, fmt.Errorf("get %s: response has no usable size (Content-Range %q)", key, aws.ToString(out.ContentRange))
		}
		want = total - off
	}
	if out.ContentLength != nil && *out.ContentLength != want {
		_ = out.Body.Close()
		cancel(nil)
		return nil, fmt.Errorf("get: %w: %s: offset %d length %d: server returned %d bytes", ErrInvalidRange, key, off, length, *out.ContentLength)
	}
	body := io.ReadCloser(&requestBody{rc: out.Body, cancel: cancel})
	if s.cfg.AttemptTimeout > 0 {
		body = newIdleReader(out.Body, s.cfg.AttemptTimeout, cancel, key)
	}
	return &exactReader{rc: body, left: want, key: key}, nil
}

// ErrBodyStalled is wrapped by the error of a GetRange body read that got no
// byte for S3Config.AttemptTimeout. It is a transient fault of one attempt
// (ReadRange retries it); the error also reports Timeout() == true.
var ErrBodyStalled = errors.New("s3tier: response body stalled")

// stalledError is the error of a stalled body read.
type stalledError struct {
	key string
	d   time.Duration
}

func (e *stalledError) Error() string {
	return fmt.Sprintf("get %s: no body byte for %v (attempt timeout): %v", e.key, e.d, ErrBodyStalled)
}
func (e *stalledError) Unwrap() error { return ErrBodyStalled }
func (e *stalledError) Timeout() bool { return true }

// requestBody releases the request's context when the body is closed.
type requestBody struct {
	rc     io.ReadCloser
	cancel context.CancelCauseFunc
}

func (b *requestBody) Read(p []byte) (int, error) { return b.rc.Read(p) }
func (b *requestBody) Close() error {
	err := b.rc.Close()
	b.cancel(nil)
	return err
}

// idleReader fails a body read that waits longer than timeout for a byte,
// by canceling the request's context (which makes the blocked read return)
// and reporting a stalledError. Only time spent inside Read counts, so a
// slow consumer is never mistaken for a stalled server. One timer serves
// the whole body: a read pushes the deadline out, and the timer, when it
// fires early, re-arms itself for what is left.
type idleReader struct {
	rc      io.ReadCloser
	timeout time.Duration
	cancel  context.CancelCauseFunc
	key     string

	mu       sync.Mutex
	timer    *time.Timer
	armed    bool // timer pending
	reading  bool
	deadline time.Time
	stalled  bool
	closed   bool
}

func newIdleReader(rc io.ReadCloser, timeout time.Duration, cancel context.CancelCauseFunc, key string) *idleReader {
	r := &idleReader{rc: rc, timeout: timeout, cancel: cancel, key: key}
	r.timer = time.AfterFunc(time.Hour, r.fire)
	r.timer.Stop()
	return r
}

func (r *idleReader) fire() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.armed = false
	if !r.reading || r.closed {
		return
	}
	if left := time.Until(r.deadline); left > 0 {
		r.timer.Reset(left)
		r.armed = true
		return
	}
	r.stalled = true
	r.cancel(&stalledError{key: r.key, d: r.timeout})
}

func (r *idleReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	if r.stalled {
		r.mu.Unlock()
		return 0, &stalledError{key: r.key, d: r.timeout}
	}
	r.reading = true
	r.deadline = time.Now().Add(r.timeout)
	if !r.armed {
		r.timer.Reset(r.timeout)
		r.armed = true
	}
	r.mu.Unlock()

	n, err := r.rc.Read(p)

	r.mu.Lock()
	r.reading = false
	stalled := r.stalled
	r.mu.Unlock()
	if stalled && err != nil && !errors.Is(err, io.EOF) {
		err = &stalledError{key: r.key, d: r.timeout}
	}
	return n, err
}

func (r *idleReader) Close() error {
	r.mu.Lock()
	r.closed = true
	r.timer.Stop()
	r.mu.Unlock()
	err := r.rc.Close()
	r.cancel(nil)
	return err
}

// totalFromContentRange parses the size from "bytes a-b/size".
func totalFromContentRange(cr string) (int64, bool) {
	i := strings.LastIndexByte(cr, '/')
	if i < 0 {
		return 0, false
	}
	var n int64
	if _, err := fmt.Sscanf(cr[i+1:], "%d", &n); err != nil {
		return 0, false
	}
	return n, true
}

// exactReader fails with io.ErrUnexpectedEOF when the body ends early, so a
// truncated response is never mistaken for a short object.
type exactReader struct {
	rc   io.ReadCloser
	left int64
	key  string
}

func (r *exactReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.rc.Read(p)
	r.left -= int64(n)
	if errors.Is(err, io.EOF) {
		if r.left > 0 {
			return n, fmt.Errorf("get %s: body ended %d bytes early: %w", r.key, r.left, io.ErrUnexpectedEOF)
		}
		err = nil
	}
	if err == nil && r.left == 0 {
		err = io.EOF
	}
	return n, err
}

func (r *exactReader) Close() error { return r.rc.Close() }

func (s *s3Store) Head(ctx context.Context, key string) (ObjectInfo, error) {
	if err := CheckKey(key); err != nil {
		return ObjectInfo{}, fmt.Errorf("head: %w", err)
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: aws.String(s.cfg.Bucket),
		Key:    aws.String(s.key(key)),
	})
	if err != nil {
		return ObjectInfo{}, mapErr(OpHead, key, err)
	}
	return ObjectInfo{Key: key, Size: aws.ToInt64(out.ContentLength), LastModified: aws.ToTime(out.LastModified)}, nil
}

func (s *s3Store) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	strip := ""
	if s.cfg.Prefix != "" {
		strip = s.cfg.Prefix + "/"
	}
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.cfg.Bucket),
		Prefix: aws.String(strip + prefix),
	})
	var out []ObjectInfo
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list %q in %s: %w", prefix, s, err)
		}
		for _, o := range page.Contents {
			k, ok := strings.CutPrefix(aws.ToString(o.Key), strip)
			if !ok || CheckKey(k) != nil {
				continue // not an object this store could have written
			}
			out = append(out, ObjectInfo{Key: k, Size: aws.ToInt64(o.Size), LastModified: aws.ToTime(o.LastModified)})
		}
	}
	// S3 lists in byte order already; some compatible servers do not.
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (s *s3Store) Delete(ctx context.Context, key string) error {
	if err := CheckKey(key); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{
		Bucket: aws.String(s.cfg.Bucket),
		Key:    aws.String(s.key(key)),
	})
	if err != nil && !isS3NotFound(err) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}
