package s3tier

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
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

// ErrNoBucket is returned by CheckBucket for a bucket that does not exist.
var ErrNoBucket = errors.New("s3tier: no such bucket")

// CheckBucket asks an S3 store's server whether its bucket exists
// (HeadBucket), so that an agent can refuse to start rather than fail
// every upload; ErrNoBucket when it does not. Other stores (a local
// directory, decorators) answer nil: pass the store as NewS3Store returned it.
func CheckBucket(ctx context.Context, st Store) error {
	s, ok := st.(*s3Store)
	if !ok {
		return nil
	}
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.cfg.Bucket)})
	switch {
	case err == nil:
		return nil
	case isS3NotFound(err):
		return fmt.Errorf("%w: %s", ErrNoBucket, s)
	}
	return fmt.Errorf("check bucket %s: %w", s, err)
}

// CreateBucket creates an S3 store's bucket (in its region) if it does not
// exist; a bucket that exists already, owned by these credentials, is not
// an error. Other stores: nil.
func CreateBucket(ctx context.Context, st Store) error {
	s, ok := st.(*s3Store)
	if !ok {
		return nil
	}
	in := &s3.CreateBucketInput{Bucket: aws.String(s.cfg.Bucket)}
	if s.cfg.Region != "" && s.cfg.Region != "us-east-1" {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraint(s.cfg.Region)}
	}
	_, err := s.client.CreateBucket(ctx, in)
	var owned *types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		return fmt.Errorf("create bucket %s: %w", s, err)
	}
	return nil
}
