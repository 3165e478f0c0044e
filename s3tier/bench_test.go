package s3tier_test

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/s3tier"
	"github.com/shale-dev/shale/s3tier/storetest"
)

// benchSize is the object size of the raw-store baselines.
const benchSize = 4 << 20

// benchStore returns the named store of the baselines: "dir" (local
// directory) or "versitygw" (a real versitygw, default 16 MiB threshold, so
// 4 MiB objects are single-part PUTs).
func benchStore(b *testing.B, name string) s3tier.Store {
	b.Helper()
	if name == "dir" {
		s, err := s3tier.NewDirStore(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	srv := testenv.S3(b)
	s, err := s3tier.NewS3Store(b.Context(), s3tier.S3Config{
		Bucket: srv.Bucket, Endpoint: srv.Endpoint, Region: srv.Region, PathStyle: true,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey,
	})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkPut measures sequential 4 MiB Puts (the raw upload baseline).
func BenchmarkPut(b *testing.B) {
	data := storetest.Data(1, benchSize)
	for _, name := range []string{"dir", "versitygw"} {
		b.Run(name, func(b *testing.B) {
			s := benchStore(b, name)
			b.SetBytes(benchSize)
			for i := 0; b.Loop(); i++ {
				if err := s.Put(b.Context(), fmt.Sprintf("bench/%02d", i%16), bytes.NewReader(data), benchSize); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkGetRange measures sequential whole-object reads of a 4 MiB object
// through GetRange (the raw read baseline).
func BenchmarkGetRange(b *testing.B) {
	data := storetest.Data(2, benchSize)
	buf := make([]byte, 256<<10)
	for _, name := range []string{"dir", "versitygw"} {
		b.Run(name, func(b *testing.B) {
			s := benchStore(b, name)
			if err := s.Put(b.Context(), "bench/obj", bytes.NewReader(data), benchSize); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(benchSize)
			for b.Loop() {
				rc, err := s.GetRange(b.Context(), "bench/obj", 0, benchSize)
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.CopyBuffer(io.Discard, rc, buf)
				rc.Close()
				if err != nil || n != benchSize {
					b.Fatalf("read %d bytes: %v", n, err)
				}
			}
		})
	}
}
