package pack

import (
	"testing"

	"github.com/awakend/awakend/internal/scaleset"
)

func scalePack(b *testing.B) *Pack {
	var files []File
	for n, d := range scaleset.Files() {
		files = append(files, File{Path: n, Data: d})
	}
	p, err := New(files)
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkOpen opens the compressed scale set, as a daemon does with each
// pack it fetches.
func BenchmarkOpen(b *testing.B) {
	p := scalePack(b)
	data := p.Compressed()
	b.SetBytes(int64(p.Size()))
	b.ReportMetric(float64(len(data)), "compressed-bytes")
	for b.Loop() {
		if _, err := Open(data, p.ID); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCompressed compresses the scale set, as a publish does.
func BenchmarkCompressed(b *testing.B) {
	p := scalePack(b)
	b.SetBytes(int64(p.Size()))
	for b.Loop() {
		(&Pack{tar: p.tar}).Compressed()
	}
}
