package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/ringer-dev/ringer/queue"
)

// runAPI drives the API alone (no worker: ring tasks queue up in Redis) with cfg.apiClients concurrent
// clients, each on its own keep-alive connection, for cfg.apiDuration per phase:
//
//   - get-or-create with ring: a new call of a caller and one callee per request;
//   - accept: the callee accepts the calls the first phase made, one request per call;
//   - devices register: a new FCM token per request.
func runAPI(cfg *config, st *state) (*table, error) {
	t := &table{
		title:  fmt.Sprintf("API: %d concurrent clients, %s per phase", cfg.apiClients, cfg.apiDuration),
		header: byMasterHeader(cfg, "request", "requests", "errors", "requests/s", "p50", "p95", "p99", "max", "CPU api/redis/bench/others", "Redis per request"),
	}
	err := guard("api", func(tb *tb) {
		e := newEnv(tb, cfg, 0)
		// No worker drains the ring queue here, so the overload admission would refuse every ring once the
		// first had waited its budget: this scenario measures what the API itself costs.
		apiP := e.startRinger("api", "RINGER_RING_QUEUE_BUDGET=0")
		base := "http://" + apiP.addr
		const users = 1000
		mint := func(prefix string) []string {
			toks := make([]string, users)
			for i := range toks {
				toks[i] = e.token(fmt.Sprintf("%s%03d", prefix, i))
			}
			return toks
		}
		callers, callees, owners := mint("ac"), mint("cb"), mint("du")
		client := &http.Client{Transport: &http.Transport{
			MaxConnsPerHost: cfg.apiClients, MaxIdleConnsPerHost: cfg.apiClients, IdleConnTimeout: time.Minute,
		}, Timeout: 30 * time.Second}
		defer client.CloseIdleConnections()

		var created []int // calls the first phase made
		var mu sync.Mutex
		var yardstick float64 // requests/s of the yardstick phase
		phase := func(name, base string, limit int, req func(i int) (method, path, token string, body []byte), ok func(i, status int)) float64 {
			cs0, mcpu0 := e.commandStats(), e.masterCPU()
			ac0, rc0, bc0, mc0 := cpuTime(apiP.pid()), e.redisCPU(), cpuTime(os.Getpid()), machineBusy()
			lat, errs, n, wall := load(client, base, cfg.apiClients, cfg.apiDuration, limit, req, ok)
			ac1, rc1, bc1, mc1 := cpuTime(apiP.pid()), e.redisCPU(), cpuTime(os.Getpid()), machineBusy()
			others := max(mc1-mc0-(ac1-ac0)-(rc1-rc0)-(bc1-bc0), 0)
			cs1, byMaster := e.commandStats(), e.byMasterCell(mcpu0)
			rate := float64(len(lat)) / wall.Seconds()
			rateCell := fmt.Sprintf("**%s**", perSec(n, wall))
			if yardstick > 0 {
				rateCell += fmt.Sprintf(" (%.2f ×)", rate/yardstick)
			}
			t.add(append(append(append([]string{name, strconv.Itoa(n), strconv.Itoa(errs), rateCell}, lat.cells()...),
				fmt.Sprintf("%s / %s / %s / %s", pct(ac1-ac0, wall), pct(rc1-rc0, wall), pct(bc1-bc0, wall), pct(others, wall)),
				redisCost(rc1-rc0, cs0, cs1, max(n, 1), 3)), byMaster...)...)
			return rate
		}
		yardstick = phase("yardstick: bare HTTP, one Asynq enqueue a request", startYardstick(tb, e, cfg.shards), cfg.apiMax,
			func(i int) (string, string, string, []byte) {
				return "POST", "/enqueue/" + strconv.Itoa(i), "", []byte(`{}`)
			}, nil)
		phase("get-or-create with ring", base, cfg.apiMax, func(i int) (string, string, string, []byte) {
			body := fmt.Appendf(nil, `{"ring":true,"data":{"members":[{"user_id":"ac%03d"},{"user_id":"cb%03d"}],`+
				`"settings_override":{"ring":{"auto_cancel_timeout_ms":180000,"incoming_call_timeout_ms":180000}}}}`, i%users, i%users)
			return "POST", "/v1/call/bench/api-" + strconv.Itoa(i), callers[i%users], body
		}, func(i, status int) {
			if status == http.StatusCreated {
				mu.Lock()
				created = append(created, i)
				mu.Unlock()
			}
		})
		phase("accept", base, len(created), func(j int) (string, string, string, []byte) {
			i := created[j]
			return "POST", "/v1/call/bench/api-" + strconv.Itoa(i) + "/accept", callees[i%users], nil
		}, nil)
		phase("devices register", base, cfg.apiMax, func(i int) (string, string, string, []byte) {
			return "POST", "/v1/devices", owners[i%users], fmt.Appendf(nil, `{"id":"fcm-api-%d","push_provider":"firebase"}`, i)
		}, nil)
	})
	t.note("The API process alone on Redis (the worker is not running; ring tasks queue up). Clients run in the bench process on the same 2 cores and take CPU from the API: the bench column says how much.")
	t.note("The yardstick is the least a durable ring API does: an HTTP server in the bench process that answers each POST once one Asynq task (a ring task's options: its queue, or on a cluster its shard of it, a task id, retries, retention) is enqueued on the same Redis, driven by the same clients. Each phase's requests/s is given beside it as a multiple of the yardstick's in the same run.")
	t.note("accept accepts the calls the ring phase created, so its request count is bounded by theirs.")
	t.note("Redis per request: the Redis servers' CPU time per request, then the commands that took most of Redis's time (INFO commandstats). A script's time there includes the commands it runs, which also count on their own lines, so the lines are not summed.")
	byMasterNote(cfg, t, "the phase")
	return t, err
}

// load sends requests 0..limit-1 from clients goroutines until d passes, and returns the latencies of the
// 2xx answers, the count of others, how many requests were sent, and the wall time.
func load(client *http.Client, base string, clients int, d time.Duration, limit int,
	req func(i int) (method, path, token string, body []byte), ok func(i, status int)) (latencies, int, int, time.Duration) {
	var (
		next   atomic.Int64
		errs   atomic.Int64
		mu     sync.Mutex
		all    latencies
		wg     sync.WaitGroup
		start  = time.Now()
		cutoff = start.Add(d)
	)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine latencies
			defer func() {
				mu.Lock()
				all = append(all, mine...)
				mu.Unlock()
			}()
			for time.Now().Before(cutoff) {
				i := int(next.Add(1) - 1)
				if i >= limit {
					return
				}
				method, path, token, body := req(i)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				r, _ := http.NewRequestWithContext(ctx, method, base+path, bytes.NewReader(body))
				r.Header.Set("Authorization", "Bearer "+token)
				if body != nil {
					r.Header.Set("Content-Type", "application/json")
				}
				t0 := time.Now()
				res, err := client.Do(r)
				if err != nil {
					cancel()
					errs.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				cancel()
				took := time.Since(t0)
				if res.StatusCode/100 != 2 {
					errs.Add(1)
				} else {
					mine = append(mine, took)
				}
				if ok != nil {
					ok(i, res.StatusCode)
				}
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	return all, int(errs.Load()), len(all) + int(errs.Load()), wall
}

// runScale shows pushes per second against the worker's notify concurrency at the scale latency: a backlog of
// scaleN−1 notifications (half FCM, half APNs) is enqueued with no worker, then a worker with that
// concurrency drains it. The concurrency is in tasks; a task of a batch of members has several pushes in
// flight, so the pushes actually in flight are shown as measured (Little's law: pushes/s × latency).
// Connections opened to each fake show reuse: FCM (HTTP/1.1 to the fake) keeps about one connection per
// concurrent push; APNs multiplexes HTTP/2 streams over a few TLS connections.
func runScale(cfg *config, st *state) (*table, error) {
	t := &table{
		title: fmt.Sprintf("throughput against concurrency: %d members, provider latency %s", cfg.scaleN, cfg.scaleLatency),
		header: []string{"RINGER_NOTIFY_CONCURRENCY", "drain", "pushes/s", "pushes in flight (pushes/s × latency)",
			"FCM connections opened", "APNs connections opened", "worker peak RSS"},
	}
	err := guard("scale", func(tb *tb) {
		e := newEnv(tb, cfg, cfg.scaleLatency)
		members := memberIDs("m", cfg.scaleN)
		kinds := kindsFor("mix")
		e.seedDevices(members[1:], func(i int) []string { return kinds(i + 1) })
		apiP := e.startRinger("api")
		base := "http://" + apiP.addr
		tok := e.token("caller")
		pushes := cfg.scaleN - 1
		for _, c := range cfg.scaleConcurrency {
			cid := "scale-" + strconv.Itoa(c)
			e.mustDo(base, "POST", "/v1/call/bench/"+cid, tok, createBody(members, false, false))
			e.mustDo(base, "GET", "/v1/call/bench/"+cid+"?notify=true", tok, nil)
			fc0, ac0 := e.fcm.Connections(), e.apns.Connections()
			before := e.pushes()
			ws := time.Now()
			w := e.startRinger("worker", "RINGER_NOTIFY_CONCURRENCY="+strconv.Itoa(c))
			if !e.waitPushes(before+pushes, cfg.timeout) {
				tb.Fatalf("concurrency %d: %d of %d pushes", c, e.pushes()-before, pushes)
			}
			_, last, _ := e.received("bench:" + cid)
			rss := familyStatusKB(w.pid(), "VmHWM")
			w.stop(10 * time.Second)
			drain := last.Sub(ws)
			rate := float64(pushes) / drain.Seconds()
			t.add(strconv.Itoa(c), ms(drain), fmt.Sprintf("**%.0f**", rate), fmt.Sprintf("%.0f", rate*cfg.scaleLatency.Seconds()),
				strconv.Itoa(e.fcm.Connections()-fc0), strconv.Itoa(e.apns.Connections()-ac0),
				fmt.Sprintf("%.0f MB", float64(rss)/1024))
		}
	})
	t.note("drain: worker start to the last push, so it includes the worker's start (tens of ms) and its first dials. A fresh worker per row; connections opened are that worker's.")
	return t, err
}

// startYardstick serves the API yardstick (runAPI) on a loopback port of the bench process until the run ends,
// and answers its base URL. Its tasks go to the ring queue's shards as ringer's ring tasks do (shards queues,
// one when 0), under a type no worker serves, and nothing drains them: the phase measures the enqueue, as the
// API phases measure theirs.
func startYardstick(t *tb, e *env, shards int) string {
	client := asynq.NewClientFromRedisClient(e.rdb)
	layout := queue.NewLayout(max(shards, 1))
	payload, _ := json.Marshal(queue.RingTask{Call: queue.CallInfo{CID: "bench:yardstick", Type: "bench", ID: "yardstick",
		CreatedByID: "caller", CreatedByName: "Caller"}, RingID: "0123456789abcdef01234567", Member: "m000000"})
	mux := http.NewServeMux()
	mux.HandleFunc("POST /enqueue/{i}", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		id := "yardstick:" + r.PathValue("i")
		_, err := client.EnqueueContext(r.Context(), asynq.NewTask("bench:yardstick", payload),
			asynq.Queue(layout.For(queue.QueueRing, id)), asynq.TaskID(id),
			asynq.MaxRetry(queue.NotifyMaxRetry), asynq.Retention(time.Minute))
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{}`))
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("yardstick: %v", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}
