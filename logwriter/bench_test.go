package logwriter

import (
	"io"
	"log/slog"
	"os"
	"testing"
	"time"
)

// BenchmarkPushLine logs the worker's per-push line through slog's JSON handler, straight to the file
// (interval 0, as before this package) and through a buffered Writer, on /dev/null (the cost of the system
// call alone) and on a pipe drained by another goroutine (stderr under a container runtime or supervisor).
func BenchmarkPushLine(b *testing.B) {
	outputs := []struct {
		name string
		open func(b *testing.B) *os.File
	}{
		{"devnull", func(b *testing.B) *os.File {
			f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { f.Close() })
			return f
		}},
		{"pipe", func(b *testing.B) *os.File {
			r, w, err := os.Pipe()
			if err != nil {
				b.Fatal(err)
			}
			drained := make(chan struct{})
			go func() {
				_, _ = io.Copy(io.Discard, r)
				close(drained)
			}()
			b.Cleanup(func() {
				w.Close()
				<-drained
				r.Close()
			})
			return w
		}},
	}
	for _, o := range outputs {
		for _, mode := range []struct {
			name     string
			interval time.Duration
		}{{"unbuffered", 0}, {"buffered", DefaultInterval}} {
			b.Run(o.name+"/"+mode.name, func(b *testing.B) {
				w := New(o.open(b), mode.interval)
				b.Cleanup(func() { w.Close() })
				log := slog.New(NewHandler(slog.NewJSONHandler(w, nil), w))
				b.ReportAllocs()
				for b.Loop() {
					log.Info("push sent",
						"cid", "default:standup-42", "ring_id", "01JH6Q4V7R8X2M3N4P5Q6R7S8T", "member", "bob",
						"device", "bob-android", "type", "call.ring", "provider", "firebase",
						"provider_name", "firebase", "token", "a1b2c3d4", "verdict", "sent",
						"ms", 12.5)
				}
			})
		}
	}
}
