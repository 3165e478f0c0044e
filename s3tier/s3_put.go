package s3tier

// Uploads: one PutObject below S3Config.MultipartThreshold, else a
// multipart upload that is aborted (and the abort verified) on failure.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/cenkalti/backoff/v5"
	"golang.org/x/sync/errgroup"
)

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
// A body that reads at offsets (io.ReaderAt: a file, an object built in
// memory) is read part by part in place; any other is copied a part at a
// time.
func (s *s3Store) putMultipart(ctx context.Context, key string, body io.ReadSeeker, size int64) (err error) {
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
	ra, inPlace := body.(io.ReaderAt)
	var start int64 // body's position: parts are read from there
	if inPlace {
		if start, err = body.Seek(0, io.SeekCurrent); err != nil {
			return fmt.Errorf("find body position: %w", err)
		}
	}
	for i := range nparts {
		if failed.Load() {
			break
		}
		n := min(partSize, size-int64(i)*partSize)
		var part io.ReadSeeker
		if inPlace {
			part = io.NewSectionReader(ra, start+int64(i)*partSize, n)
		} else {
			buf := make([]byte, n)
			if _, err := io.ReadFull(ctxReader{ctx: ctx, r: body}, buf); err != nil {
				readErr = fmt.Errorf("read part %d: %w", i+1, noEOF(err))
				break
			}
			part = bytes.NewReader(buf)
		}
		num := int32(i + 1)
		g.Go(func() error {
			out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
				Bucket:        aws.String(s.cfg.Bucket),
				Key:           aws.String(bkey),
				UploadId:      uploadID,
				PartNumber:    aws.Int32(num),
				Body:          part,
				ContentLength: aws.Int64(n),
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
	if inPlace {
		// As if read: the size was measured from the position, so there
		// is nothing beyond it.
		if _, err := body.Seek(start+size, io.SeekStart); err != nil {
			return fmt.Errorf("seek past the body: %w", err)
		}
	} else if err := checkEOF(body); err != nil {
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
	_, err := backoff.Retry(actx, func() (struct{}, error) {
		_, err := s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket: aws.String(s.cfg.Bucket), Key: aws.String(key), UploadId: uploadID,
		})
		if err != nil && !isNoSuchUpload(err) {
			return struct{}{}, err
		}
		_, err = s.client.ListParts(actx, &s3.ListPartsInput{
			Bucket: aws.String(s.cfg.Bucket), Key: aws.String(key), UploadId: uploadID,
		})
		if isNoSuchUpload(err) {
			return struct{}{}, nil
		}
		if err == nil {
			err = errors.New("upload still listed after abort")
		}
		return struct{}{}, err
	}, abortRetry()...)
	return err
}

// abortRetry is abort's policy: 6 attempts, 50 ms apart then doubling.
// s3tier imports nothing of shale's, so it names its policy with the
// backoff library directly rather than through internal/retry.
func abortRetry() []backoff.RetryOption {
	return []backoff.RetryOption{backoff.WithMaxTries(6), backoff.WithMaxElapsedTime(0),
		backoff.WithBackOff(&backoff.ExponentialBackOff{InitialInterval: 50 * time.Millisecond, Multiplier: 2, MaxInterval: time.Second})}
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
