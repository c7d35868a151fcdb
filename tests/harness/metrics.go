package harness

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metrics is one scrape of a ringer process's /metrics, one sample per series: histograms and summaries come
// as their _bucket, _sum and _count series, as in the text format.
type Metrics model.Vector

// Scrape reads base+"/metrics", failing the test if it cannot be read or decoded.
func Scrape(t testing.TB, base string) Metrics {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeProtoDelim)))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s/metrics: %v", base, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("GET %s/metrics: %d %s", base, res.StatusCode, b)
	}
	dec := expfmt.NewDecoder(res.Body, expfmt.ResponseFormat(res.Header))
	var fams []*dto.MetricFamily
	for {
		mf := &dto.MetricFamily{}
		if err := dec.Decode(mf); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("GET %s/metrics: %v", base, err)
		}
		fams = append(fams, mf)
	}
	samples, err := expfmt.ExtractSamples(&expfmt.DecodeOptions{Timestamp: model.Now()}, fams...)
	if err != nil {
		t.Fatalf("GET %s/metrics: %v", base, err)
	}
	return Metrics(samples)
}

// Get sums the samples of name whose labels include every pair of want ("k", "v", ...); a pair ("k", "")
// asks for samples without the label k.
func (m Metrics) Get(name string, want ...string) float64 {
	var sum float64
	for _, s := range m {
		if matches(s.Metric, name, want) {
			sum += float64(s.Value)
		}
	}
	return sum
}

// Has reports whether a sample of name with the labels want exists.
func (m Metrics) Has(name string, want ...string) bool {
	for _, s := range m {
		if matches(s.Metric, name, want) {
			return true
		}
	}
	return false
}

// Families is every metric name, with histogram and summary suffixes folded into their family.
func (m Metrics) Families() map[string]bool {
	out := map[string]bool{}
	for _, s := range m {
		name := string(s.Metric[model.MetricNameLabel])
		out[name] = true
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if strings.HasSuffix(name, suf) {
				out[strings.TrimSuffix(name, suf)] = true
			}
		}
	}
	return out
}

func matches(m model.Metric, name string, want []string) bool {
	if string(m[model.MetricNameLabel]) != name {
		return false
	}
	for i := 0; i+1 < len(want); i += 2 {
		if string(m[model.LabelName(want[i])]) != want[i+1] {
			return false
		}
	}
	return true
}
