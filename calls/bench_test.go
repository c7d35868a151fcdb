package calls_test

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringer-dev/ringer/calls"
	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/tests/testredis"
	"github.com/ringer-dev/ringer/wire"
)

// The transitions as the API runs them: the call's Lua script, the read back, and the effects it owes
// (ring and stop tasks, the timeout task, events), on a private redis-server. One op is one request's worth
// of Redis work; the Redis round trips, not Go, are most of it.
//
// The transitions also report what each op takes from Redis in the timed part: redis-cmds/op, the commands
// Redis ran (INFO commandstats, those inside scripts included), which no machine's speed moves, and
// redis-µs/op, the CPU time redis-server spent (INFO cpu, user and system), which moves less than a request's
// rate. So a change to a script or to the commands a transition sends is measured by the work it takes from
// Redis. The ops run one after another, so each round trip's system calls are in the CPU time.

// benchStore is a store on a private redis-server, and the meter of that server's work. It keeps each
// member's events for replay, as ringer does by default (RINGER_EVENTS_REPLAY).
func benchStore(b *testing.B) (*calls.Store, *redisMeter) {
	b.Helper()
	rdb := testredis.Start(b).Client(b)
	s := calls.New(rdb, queue.NewClient(rdb), slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.SetEventReplay(calls.DefaultEventReplay)
	return s, &redisMeter{rdb: rdb}
}

// redisMeter sums the Redis work of the timed parts of a benchmark: start and stop it with the timer.
type redisMeter struct {
	rdb       *redis.Client
	cpu, cpu0 time.Duration
	cmds, n0  int64
}

func (m *redisMeter) start(b *testing.B) {
	m.cpu0, m.n0 = redisWork(b, m.rdb)
}

func (m *redisMeter) stop(b *testing.B) {
	cpu, n := redisWork(b, m.rdb)
	// Less the INFO commands of the meter's own reading.
	m.cpu, m.cmds = m.cpu+cpu-m.cpu0, m.cmds+n-m.n0-1
}

// report reports the Redis work per op of the timed parts.
func (m *redisMeter) report(b *testing.B) {
	if b.N > 0 {
		b.ReportMetric(float64(m.cmds)/float64(b.N), "redis-cmds/op")
		b.ReportMetric(m.cpu.Seconds()*1e6/float64(b.N), "redis-µs/op")
	}
}

// redisWork is the CPU time redis-server has used, user and system (INFO cpu), and the commands it has run
// (INFO commandstats), each INFO included.
func redisWork(b *testing.B, rdb *redis.Client) (time.Duration, int64) {
	b.Helper()
	info, err := rdb.Info(context.Background(), "cpu", "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	var cpu float64
	var cmds int64
	for _, line := range strings.Split(info, "\r\n") {
		name, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch {
		case name == "used_cpu_user" || name == "used_cpu_sys":
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatalf("INFO cpu %s: %v", name, err)
			}
			cpu += f
		case strings.HasPrefix(name, "cmdstat_"):
			// calls=N,usec=...
			calls, _, _ := strings.Cut(strings.TrimPrefix(v, "calls="), ",")
			n, err := strconv.ParseInt(calls, 10, 64)
			if err != nil {
				b.Fatalf("INFO commandstats %s: %v", name, err)
			}
			cmds += n
		}
	}
	return time.Duration(cpu * float64(time.Second)), cmds
}

func twoMembers(i int) calls.CreateRequest {
	return calls.CreateRequest{Ring: true, Members: []calls.MemberInput{
		{UserID: "caller" + strconv.Itoa(i%100)}, {UserID: "callee" + strconv.Itoa(i%100)},
	}}
}

// BenchmarkGetOrCreateWithRing creates a call of a caller and one callee and rings the callee.
func BenchmarkGetOrCreateWithRing(b *testing.B) {
	s, meter := benchStore(b)
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	meter.start(b)
	for b.Loop() {
		req := twoMembers(i)
		a := calls.Actor{UserID: req.Members[0].UserID}
		if _, _, err := s.GetOrCreate(ctx, a, "bench", "c"+strconv.Itoa(i), req); err != nil {
			b.Fatal(err)
		}
		i++
	}
	meter.stop(b)
	meter.report(b)
}

// BenchmarkGetExisting is get-or-create of a call that exists: the script answers "exists" and nothing rings.
func BenchmarkGetExisting(b *testing.B) {
	s, _ := benchStore(b)
	ctx := context.Background()
	req := twoMembers(0)
	a := calls.Actor{UserID: req.Members[0].UserID}
	if _, _, err := s.GetOrCreate(ctx, a, "bench", "existing", req); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := s.GetOrCreate(ctx, a, "bench", "existing", req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAccept is the callee accepting: the accept script, the caller joining, a stop task for the
// callee's other devices (and the delete of its pending ring task), events.
func BenchmarkAccept(b *testing.B) {
	benchTransition(b, func(s *calls.Store, a calls.Actor, id string) error {
		_, err := s.Accept(context.Background(), a, "bench", id)
		return err
	})
}

// BenchmarkReject is the only callee declining: the reject script ends the call.
func BenchmarkReject(b *testing.B) {
	benchTransition(b, func(s *calls.Store, a calls.Actor, id string) error {
		_, err := s.Reject(context.Background(), a, "bench", id, wire.ReasonDecline)
		return err
	})
}

// benchTransition runs do once per ringing call; the calls are made before the timer starts.
func benchTransition(b *testing.B, do func(s *calls.Store, a calls.Actor, id string) error) {
	s, meter := benchStore(b)
	const batch = 2000
	b.ReportAllocs()
	b.StopTimer()
	for done := 0; done < b.N; {
		n := min(batch, b.N-done)
		// Each batch rings fresh calls: ids go on from where the last batch stopped.
		callees := ringingFrom(b, s, done, n)
		b.StartTimer()
		meter.start(b)
		for j, a := range callees {
			if err := do(s, a, "c"+strconv.Itoa(done+j)); err != nil {
				b.Fatal(err)
			}
		}
		meter.stop(b)
		b.StopTimer()
		done += n
	}
	meter.report(b)
}

func ringingFrom(b *testing.B, s *calls.Store, from, n int) []calls.Actor {
	b.Helper()
	ctx := context.Background()
	callees := make([]calls.Actor, n)
	for j := range n {
		i := from + j
		req := twoMembers(i)
		if _, _, err := s.GetOrCreate(ctx, calls.Actor{UserID: req.Members[0].UserID}, "bench", "c"+strconv.Itoa(i), req); err != nil {
			b.Fatal(err)
		}
		callees[j] = calls.Actor{UserID: req.Members[1].UserID}
	}
	return callees
}

// BenchmarkNotify1000 is get-or-create with notify of a 1,000-member call: the create script, 999
// notification tasks enqueued (queue.Client fans out 32 at a time), and the call's two events to members none
// of whom has an event stream open.
func BenchmarkNotify1000(b *testing.B) {
	s, meter := benchStore(b)
	ctx := context.Background()
	members := make([]calls.MemberInput, 1000)
	for i := range members {
		members[i] = calls.MemberInput{UserID: "m" + strconv.Itoa(i)}
	}
	b.ReportAllocs()
	i := 0
	meter.start(b)
	for b.Loop() {
		req := calls.CreateRequest{Notify: true, Members: members}
		if _, _, err := s.GetOrCreate(ctx, calls.Actor{UserID: "m0"}, "bench", "n"+strconv.Itoa(i), req); err != nil {
			b.Fatal(err)
		}
		i++
	}
	meter.stop(b)
	meter.report(b)
}

// BenchmarkCreateBigCall creates a call of 20,000 members and reports, besides the time, the longest single
// Redis command it took (SLOWLOG): how long every ring on the same Redis waits behind a big call's create.
func BenchmarkCreateBigCall(b *testing.B) {
	rdb := testredis.Start(b).Client(b)
	s := calls.New(rdb, queue.NewClient(rdb), slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx := context.Background()
	req := calls.CreateRequest{Notify: false}
	for i := range 20000 {
		req.Members = append(req.Members, calls.MemberInput{UserID: "m" + strconv.Itoa(i)})
	}
	a := calls.Actor{UserID: "m0"}
	if err := rdb.ConfigSet(ctx, "slowlog-log-slower-than", "500").Err(); err != nil {
		b.Fatal(err)
	}
	rdb.ConfigSet(ctx, "slowlog-max-len", "100000")
	rdb.SlowLogReset(ctx)
	i := 0
	for b.Loop() {
		if _, _, err := s.GetOrCreate(ctx, a, "bench", "big"+strconv.Itoa(i), req); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.StopTimer()
	logs, err := rdb.SlowLogGet(ctx, -1).Result()
	if err != nil {
		b.Fatal(err)
	}
	var longest time.Duration
	for _, l := range logs {
		longest = max(longest, l.Duration)
	}
	b.ReportMetric(float64(longest.Microseconds())/1000, "longest-cmd-ms")
}

// roundTrips counts the commands and pipelines a client sends: each is one round trip to Redis.
type roundTrips struct{ n atomic.Int64 }

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		r.n.Add(1)
		return next(ctx, cmd)
	}
}
func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		r.n.Add(1)
		return next(ctx, cmds)
	}
}

// BenchmarkRing is POST .../ring by the caller of a call of two that is not ringing: the checks of who may
// ring whom, the ring script, and the ring and timeout tasks it owes. It reports the Redis round trips the
// store makes per ring (the queue's enqueues included).
func BenchmarkRing(b *testing.B) {
	rdb := testredis.Start(b).Client(b)
	rt := &roundTrips{}
	rdb.AddHook(rt)
	s := calls.New(rdb, queue.NewClient(rdb), slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx := context.Background()
	b.ReportAllocs()
	b.StopTimer()
	var trips int64
	const batch = 2000
	for done := 0; done < b.N; {
		n := min(batch, b.N-done)
		callers := make([]calls.Actor, n)
		for j := range n {
			req := twoMembers(done + j)
			req.Ring = false
			callers[j] = calls.Actor{UserID: req.Members[0].UserID}
			if _, _, err := s.GetOrCreate(ctx, callers[j], "bench", "r"+strconv.Itoa(done+j), req); err != nil {
				b.Fatal(err)
			}
		}
		before := rt.n.Load()
		b.StartTimer()
		for j, a := range callers {
			if _, err := s.Ring(ctx, a, "bench", "r"+strconv.Itoa(done+j), nil); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		trips += rt.n.Load() - before
		done += n
	}
	b.ReportMetric(float64(trips)/float64(b.N), "roundtrips/op")
}
