package cost

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"go.yaml.in/yaml/v3"
)

// Prices is a price table in US dollars. GB means 2^30 bytes, as AWS bills.
type Prices struct {
	// Name says where the prices come from.
	Name string `json:"name" yaml:"name"`
	// StorageGBMonth is the price of one GB stored for a month.
	StorageGBMonth float64 `json:"storage_gb_month" yaml:"storage_gb_month"`
	// PutPer1000 prices 1,000 PUT, COPY, POST or LIST requests.
	PutPer1000 float64 `json:"put_per_1000" yaml:"put_per_1000"`
	// GetPer1000 prices 1,000 GET or HEAD requests (and every other kind).
	GetPer1000 float64 `json:"get_per_1000" yaml:"get_per_1000"`
	// EgressGB prices one GB transferred out to the internet.
	EgressGB float64 `json:"egress_gb" yaml:"egress_gb"`
}

// DefaultPrices are Amazon S3 Standard list prices in us-east-1 as of
// 2026-12-04 (storage: first 50 TB per month; egress: first 10 TB per
// month). They change: check https://aws.amazon.com/s3/pricing/.
var DefaultPrices = Prices{
	Name:           "S3 Standard us-east-1 list prices as of 2026-12-04",
	StorageGBMonth: 0.023,
	PutPer1000:     0.005,
	GetPer1000:     0.0004,
	EgressGB:       0.09,
}

// LoadPrices reads a price table from a YAML or JSON file (JSON is YAML)
// whose keys are Prices' tags. Keys the file leaves out keep base's
// values; an unknown key is an error, not silently ignored.
func LoadPrices(path string, base Prices) (Prices, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return base, fmt.Errorf("price file: %w", err)
	}
	p := base
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil && !errors.Is(err, io.EOF) {
		return base, fmt.Errorf("price file %s: %w (keys: name, storage_gb_month, put_per_1000, get_per_1000, egress_gb)", path, err)
	}
	if p.Name == base.Name {
		p.Name = path
	}
	return p, p.Validate()
}

// Validate refuses negative prices.
func (p Prices) Validate() error {
	for _, f := range []struct {
		name string
		v    float64
	}{{"storage_gb_month", p.StorageGBMonth}, {"put_per_1000", p.PutPer1000}, {"get_per_1000", p.GetPer1000}, {"egress_gb", p.EgressGB}} {
		if f.v < 0 {
			return fmt.Errorf("price %s is %v: prices must be 0 or more", f.name, f.v)
		}
	}
	return nil
}
