package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/ringer-dev/ringer/calls"
	"github.com/ringer-dev/ringer/devices"
	"github.com/ringer-dev/ringer/gate"
	"github.com/ringer-dev/ringer/providers"
	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/templates"
	"github.com/ringer-dev/ringer/tests/testredis"
	"github.com/ringer-dev/ringer/worker"
)

// The handlers' own work per task with providers that answer at once: decode, the ring gate, the device
// list, rendering and payload data, the ledger read and the ledger writes, on a private redis-server. What is
// left of a push's cost beside the provider's round trip and Asynq's dequeue and completion.

// sentAtOnce is a provider that accepts every push without a network.
type sentAtOnce struct{}

func (sentAtOnce) Send(context.Context, providers.Push) providers.Result {
	return providers.Result{Verdict: providers.Sent}
}

type bench struct {
	w   *worker.Worker
	rdb *redis.Client
	q   *queue.Client
}

func newBench(b *testing.B) *bench {
	b.Helper()
	rdb := testredis.Start(b).Client(b)
	tmpl, err := templates.Load("")
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	q := queue.NewClient(rdb)
	w, err := worker.New(worker.Config{
		Redis: rdb, Devices: devices.New(rdb), Templates: tmpl, FCM: sentAtOnce{}, APNs: sentAtOnce{},
		Calls: calls.New(rdb, q, log), Queue: q, Logger: log,
	})
	if err != nil {
		b.Fatal(err)
	}
	return &bench{w: w, rdb: rdb, q: q}
}

// register gives user n devices: FCM tokens, then regular APNs tokens, and one VoIP token when voip.
func (bb *bench) register(b *testing.B, user string, n int, voip bool) {
	b.Helper()
	reg := devices.New(bb.rdb)
	ctx := context.Background()
	for j := range n {
		d := devices.Device{UserID: user, PushProvider: devices.Firebase, ID: fmt.Sprintf("fcm-%s-%d", user, j)}
		if j%2 == 1 {
			d.PushProvider, d.ID = devices.APN, fmt.Sprintf("%064x", j)
		}
		if _, err := reg.Register(ctx, d); err != nil {
			b.Fatal(err)
		}
	}
	if voip {
		if _, err := reg.Register(ctx, devices.Device{UserID: user, PushProvider: devices.APN, VoIPToken: true, ID: fmt.Sprintf("%064x", 1000+n)}); err != nil {
			b.Fatal(err)
		}
	}
}

var call = queue.CallInfo{CID: "bench:c", Type: "bench", ID: "c", DisplayName: "Standup", CreatedByID: "alice", CreatedByName: "Alice"}

func task(b *testing.B, typ string, v any) *asynq.Task {
	raw, err := json.Marshal(v)
	if err != nil {
		b.Fatal(err)
	}
	return asynq.NewTask(typ, raw)
}

// notifyPayload is a notification task for one member, written so that it decodes whether the task names
// its member alone ("member") or as a batch of one ("members").
func notifyPayload(notifyID, member string) map[string]any {
	return map[string]any{"call": call, "notify_id": notifyID, "event": queue.EventNotification,
		"member": member, "members": []string{member}, "batch": 0}
}

// BenchmarkHandleNotify is one notification task: the member's devices listed, the alert rendered per
// device, the ledger read, one push per device, each recorded in the ledger.
func BenchmarkHandleNotify(b *testing.B) {
	for _, n := range []int{1, 4, 16} {
		b.Run("devices="+strconv.Itoa(n), func(b *testing.B) {
			bb := newBench(b)
			bb.register(b, "bob", n, false)
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				t := task(b, queue.TypeNotify, notifyPayload("n"+strconv.Itoa(i), "bob"))
				if err := bb.w.HandleNotify(ctx, t); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkHandleNotifyRecorded is a retry of a notification that reached every device: the ledger read
// finds them all and nothing is sent or written. Its difference from BenchmarkHandleNotify is the cost of
// sending (nothing here) and of the ledger writes.
func BenchmarkHandleNotifyRecorded(b *testing.B) {
	for _, n := range []int{1, 16} {
		b.Run("devices="+strconv.Itoa(n), func(b *testing.B) {
			bb := newBench(b)
			bb.register(b, "bob", n, false)
			ctx := context.Background()
			t := task(b, queue.TypeNotify, notifyPayload("once", "bob"))
			if err := bb.w.HandleNotify(ctx, t); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := bb.w.HandleNotify(ctx, t); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkHandleRing is one ring task of a member with a VoIP token and FCM tokens: the gate script, the
// device list, one ring push per ringing device, the ledger. The gate of each ring is opened (queue.Client.Ring)
// before the timer runs.
func BenchmarkHandleRing(b *testing.B) {
	for _, n := range []int{1, 4} {
		b.Run("devices="+strconv.Itoa(n+1), func(b *testing.B) {
			bb := newBench(b)
			bb.register(b, "bob", n, true)
			ctx := context.Background()
			const batch = 1000
			b.ReportAllocs()
			b.StopTimer()
			for done := 0; done < b.N; {
				k := min(batch, b.N-done)
				ends := time.Now().Add(time.Minute)
				tasks := make([]*asynq.Task, k)
				for j := range tasks {
					c := call
					c.CID, c.ID = fmt.Sprintf("bench:r%d", done+j), fmt.Sprintf("r%d", done+j)
					ringID := "ring" + strconv.Itoa(done+j)
					if err := bb.q.Ring(ctx, c, ringID, []queue.RingMember{{UserID: "bob", EndsAt: ends}}); err != nil {
						b.Fatal(err)
					}
					tasks[j] = task(b, queue.TypeRing, queue.RingTask{Call: c, RingID: ringID, Member: "bob", EndsAt: ends.UnixMilli(), EnqueuedAt: time.Now().UnixMilli()})
				}
				b.StartTimer()
				for _, t := range tasks {
					if err := bb.w.HandleRing(ctx, t); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				done += k
			}
		})
	}
}

// BenchmarkLedgerWrite is the ledger's part of one push as the worker writes it: SADD of the token and
// EXPIRE of the set, in one pipeline (one round trip per device).
func BenchmarkLedgerWrite(b *testing.B) {
	rdb := testredis.Start(b).Client(b)
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		key := gate.LedgerKey("bench:c", "notify:n:"+strconv.Itoa(i%1000))
		pipe := rdb.Pipeline()
		pipe.SAdd(ctx, key, "fcm-token-"+strconv.Itoa(i))
		pipe.Expire(ctx, key, 48*time.Hour)
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
