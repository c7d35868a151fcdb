// Command bench is ringer's whole-system load tool. It starts a private redis-server (or, with -cluster N, a
// local Redis Cluster of N masters), the fake FCM and fake APNs (tests/fakefcm, tests/fakeapns) with a chosen
// response latency, and the real `ringer api` and `ringer worker` binaries, drives one scenario after another,
// and prints a table per scenario:
//
//	ceiling   a bare Asynq server with a no-op handler on the same Redis and concurrency: tasks per second
//	fanout    notify N members: enqueue time, drain time, pushes per second, ratio to the ceiling, lost,
//	          peak worker RSS, Redis memory per queued job
//	ring      1,000 single-callee rings one after another, idle and while a 100,000-member notify drains
//	stop      600 accepts while a 20-device callee rings: accept answer to last stop push, rings after the answer
//	timeout   200 rings of a second, idle and while a notify drains: due end to the missed-call push (-timeout-rings)
//	api       get-or-create with ring, accept, and devices register under 200 concurrent clients, each beside a
//	          yardstick of the same run: a bare HTTP server that enqueues one Asynq task a request
//	scale     pushes per second against worker concurrency at 20 ms provider latency, connections opened
//	overload  the sustainable ring rate, then twice it for two minutes: accepted, refused (503), rang in time
//	soak      ten minutes of rings, accepts and notifications at 70 % of it with a one-minute call retention:
//	          Redis memory, ringer RSS and goroutines, ring latency over time
//
// overload and soak run only when named (-scenarios overload,soak); -quick runs them tiny.
//
// With -cluster N, ringer runs on a local Redis Cluster of N masters (REDIS_CLUSTER_ADDRS) with its queues
// split over -shards Asynq queues each (RINGER_QUEUE_SHARDS, N by default), and the ceiling, fanout and api
// tables gain each master's share of the Redis CPU. The ceiling stays one Asynq queue, so one master.
//
// Everything listens on 127.0.0.1 and every loop is bounded in count and time. BENCHMARKS.md at the module
// root has the command lines and the numbers.
//
//	go run ./tests/bench                       # every scenario at full size (about 10 minutes on 2 cores)
//	go run ./tests/bench -quick                # every scenario at a tiny size (what CI runs)
//	go run ./tests/bench -scenarios fanout -n 100000 -latency 0,20ms -profile /tmp/prof
//	go run ./tests/bench -scenarios overload,soak  # about 15 minutes: the figures of RELIABILITY.md, "Load held"
//	go run ./tests/bench -cluster 3 -scenarios ceiling,fanout,api -n 100000 -latency 0 -mix fcm  # per-master CPU
//	go run ./tests/bench -quick -cluster 3 -scenarios ceiling,fanout,api  # the cluster mode at a tiny size
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config is what the flags set.
type config struct {
	scenarios []string
	binary    string // the ringer binary; built from ./cmd/ringer when empty

	fanoutN     []int
	latencies   []time.Duration
	mixes       []string // "fcm": one FCM device per member; "mix": half FCM, half APNs
	ceilingN    int
	concurrency int // RINGER_NOTIFY_CONCURRENCY of the worker; 0 keeps ringer's default
	// fcmHTTP1 serves the fake FCM as plain HTTP/1.1 instead of FCM's TLS and HTTP/2.
	fcmHTTP1 bool

	// rings and stopIters are large enough that a p99 is not a run's slowest sample, which swings by half from
	// run to run: 1,000 rings a phase, 200 accepts a phase.
	rings        int
	timeoutRings int
	ringLoadN    int
	stopIters    int
	stopDevices  int

	apiClients  int
	apiDuration time.Duration
	apiMax      int

	scaleN           int
	scaleConcurrency []int
	scaleLatency     time.Duration

	// overload and soak (overload.go)
	budget           time.Duration // RINGER_RING_QUEUE_BUDGET of the overload run
	rampFrom         float64       // rings/s of the first step of the search for the sustainable rate
	rampWarm         time.Duration // how long each step runs before its judged window (its rings' timeouts under way)
	rampStep         time.Duration // length of each step's judged window
	rampSteps        int           // most steps
	overloadDuration time.Duration // how long the overload run offers twice the sustainable rate
	expiredN         int           // ring tasks past their ring that the overload run times the worker dropping
	soakDuration     time.Duration
	soakShare        float64       // share of the sustainable ring rate the soak offers
	soakRate         float64       // requests/s of the soak; 0 finds the sustainable rate first
	soakRetention    time.Duration // RINGER_CALL_RETENTION of the soak
	soakSample       time.Duration // how often the soak samples memory and latency

	splitNice int // ring scenario: separate ring and notify workers, the notify one at this niceness (0: one worker)

	cluster int // masters of a local Redis Cluster ringer runs on; 0 runs one redis-server
	shards  int // RINGER_QUEUE_SHARDS of ringer; 0 leaves it unset

	profileDir string
	// webhookDelay, when set, points RINGER_WEBHOOK_URL at a receiver on this machine that answers after it.
	webhookDelay time.Duration
	timeout      time.Duration // bound on one scenario's waits
	out          io.Writer
}

func defaultConfig() *config {
	return &config{
		scenarios:        []string{"ceiling", "fanout", "ring", "stop", "timeout", "api", "scale"},
		fanoutN:          []int{1000, 10000, 100000},
		latencies:        []time.Duration{0, 20 * time.Millisecond},
		mixes:            []string{"fcm", "mix"},
		ceilingN:         100000,
		rings:            1000,
		timeoutRings:     200,
		ringLoadN:        100000,
		stopIters:        600,
		stopDevices:      20,
		apiClients:       200,
		apiDuration:      10 * time.Second,
		apiMax:           300000,
		scaleN:           20000,
		scaleConcurrency: []int{1, 2, 4, 8, 16, 32, 64},
		scaleLatency:     20 * time.Millisecond,
		timeout:          5 * time.Minute,
		out:              os.Stdout,
		budget:           2 * time.Second,
		rampFrom:         100,
		rampWarm:         overloadRingMs * time.Millisecond,
		rampStep:         15 * time.Second,
		rampSteps:        12,
		overloadDuration: 2 * time.Minute,
		expiredN:         20000,
		soakDuration:     10 * time.Minute,
		soakShare:        0.7,
		soakRetention:    time.Minute,
		soakSample:       15 * time.Second,
	}
}

// quickConfig is every scenario at a tiny size: a smoke pass that keeps the tool from rotting.
func quickConfig() *config {
	c := defaultConfig()
	c.fanoutN = []int{200}
	c.latencies = []time.Duration{0}
	c.mixes = []string{"mix"}
	c.ceilingN = 1000
	c.rings = 5
	c.timeoutRings = 5
	c.ringLoadN = 200
	c.stopIters = 4
	c.apiClients = 8
	c.apiDuration = 500 * time.Millisecond
	c.apiMax = 400
	c.scaleN = 200
	c.scaleConcurrency = []int{4}
	// CI runs this under -race beside other test packages, on a shared machine: a race-built worker and its
	// niced notify child can take tens of seconds to start and drain 200 members there. waitPushes still fails
	// after 30 s without progress.
	c.timeout = 3 * time.Minute
	// overload and soak: opt-in at full size (they take 15 minutes), tiny here.
	c.scenarios = append(c.scenarios, "overload", "soak")
	c.rampFrom, c.rampWarm, c.rampStep, c.rampSteps = 10, 0, 2*time.Second, 2
	c.overloadDuration, c.expiredN = 3*time.Second, 200
	c.soakDuration, c.soakRate, c.soakRetention, c.soakSample = 6*time.Second, 10, 2*time.Second, 2*time.Second
	return c
}

func main() {
	if os.Getenv(profileRoleEnv) != "" {
		if err := runProfiled(); err != nil {
			fmt.Fprintln(os.Stderr, "bench "+os.Getenv(profileRoleEnv)+":", err)
			os.Exit(1)
		}
		return
	}
	// An interrupted run stops what it started: ringer processes, redis-servers, fakes.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "bench: %s: stopping what it started\n", s)
		closeAll()
		os.Exit(1)
	}()
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (*config, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	quick := fs.Bool("quick", false, "every scenario at a tiny size (CI's pass); other flags still apply after it")
	scen := fs.String("scenarios", "", "comma-separated scenarios: ceiling,fanout,ring,stop,timeout,api,scale,overload,soak (default all but overload and soak)")
	bin := fs.String("binary", "", "ringer binary to run (default: go build ./cmd/ringer)")
	ns := fs.String("n", "", "fan-out sizes, members including the caller (default 1000,10000,100000)")
	lat := fs.String("latency", "", "fake provider latencies for fan-out (default 0,20ms)")
	mix := fs.String("mix", "", "device mixes for fan-out: fcm (one FCM device each), mix (half FCM, half APNs)")
	ceil := fs.Int("ceiling-n", 0, "tasks of the ceiling scenario (default 100000)")
	fcmH1 := fs.Bool("fcm-http1", false, "serve the fake FCM as plain HTTP/1.1, an endpoint without HTTP/2 (default: TLS and HTTP/2, as FCM)")
	conc := fs.Int("concurrency", 0, "RINGER_NOTIFY_CONCURRENCY of the worker in fanout/ring (default: ringer's)")
	rings := fs.Int("rings", 0, "rings per phase of the ring scenario (default 1000)")
	timeoutRings := fs.Int("timeout-rings", 0, "rings per phase of the timeout scenario (default 200)")
	ringLoad := fs.Int("ring-load-n", 0, "members of the notification draining under the rings (default 100000)")
	stops := fs.Int("stop-iters", 0, "accepts of the stop scenario, a third a phase (default 600)")
	apiC := fs.Int("api-clients", 0, "concurrent clients of the api scenario (default 200)")
	apiD := fs.Duration("api-duration", 0, "duration of each api phase (default 10s)")
	scaleN := fs.Int("scale-n", 0, "members of each scale run (default 20000)")
	scaleC := fs.String("scale-concurrency", "", "worker notify concurrencies of the scale scenario (default 1,2,4,8,16,32,64)")
	cluster := fs.Int("cluster", 0, "run ringer on a local Redis Cluster of N masters (3 to 16, no replicas) instead of one redis-server; the ceiling, fanout and api tables then show each master's share of the Redis CPU")
	shards := fs.Int("shards", 0, "RINGER_QUEUE_SHARDS of ringer: Asynq queues each of its queues is split over (default: the -cluster masters; unset on one redis-server)")
	split := fs.Int("split-workers", 0, "ring and timeout scenarios: a ring-only and a notify-only worker (RINGER_QUEUES), the notify one under nice N, instead of one worker with its notify child")
	prof := fs.String("profile", "", "run the worker and the API as the bench's own wiring of them and write their CPU, heap, block and mutex profiles here, and the CPU profile of the bench itself (the fakes, the load, the ceiling's no-op server)")
	whDelay := fs.Duration("webhook-delay", 0, "send every event as a webhook to a local receiver that answers after this long (default: no webhooks)")
	timeout := fs.Duration("timeout", 0, "bound on each wait of a scenario (default 5m)")
	budget := fs.Duration("budget", 0, "overload: RINGER_RING_QUEUE_BUDGET of ringer (default 2s)")
	rampFrom := fs.Float64("ramp-from", 0, "overload, soak: rings/s of the first step of the sustainable-rate search (default 100)")
	rampStep := fs.Duration("ramp-step", 0, "overload, soak: length of each step's judged window in that search, after a ring timeout of warm-up (default 15s)")
	overD := fs.Duration("overload-duration", 0, "overload: how long twice the sustainable rate is offered (default 2m)")
	soakD := fs.Duration("soak-duration", 0, "soak: how long the steady load lasts (default 10m)")
	soakRate := fs.Float64("soak-rate", 0, "soak: requests/s; 0 finds the sustainable ring rate first and offers 70 % of it")
	soakRet := fs.Duration("soak-retention", 0, "soak: RINGER_CALL_RETENTION of ringer (default 1m)")
	soakSample := fs.Duration("soak-sample", 0, "soak: sampling period (default 15s)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	cfg := defaultConfig()
	if *quick {
		cfg = quickConfig()
	}
	var err error
	if *scen != "" {
		cfg.scenarios = strings.Split(*scen, ",")
		for _, s := range cfg.scenarios {
			if scenarios[s] == nil {
				return nil, fmt.Errorf("unknown scenario %q", s)
			}
		}
	}
	cfg.binary = *bin
	if *ns != "" {
		if cfg.fanoutN, err = ints(*ns); err != nil {
			return nil, fmt.Errorf("-n: %w", err)
		}
	}
	if *lat != "" {
		cfg.latencies = nil
		for _, s := range strings.Split(*lat, ",") {
			if s == "0" {
				s = "0s"
			}
			d, err := time.ParseDuration(s)
			if err != nil {
				return nil, fmt.Errorf("-latency: %w", err)
			}
			cfg.latencies = append(cfg.latencies, d)
		}
	}
	if *mix != "" {
		cfg.mixes = strings.Split(*mix, ",")
	}
	if *scaleC != "" {
		if cfg.scaleConcurrency, err = ints(*scaleC); err != nil {
			return nil, fmt.Errorf("-scale-concurrency: %w", err)
		}
	}
	setIf := func(dst *int, v int) {
		if v > 0 {
			*dst = v
		}
	}
	setIf(&cfg.ceilingN, *ceil)
	setIf(&cfg.concurrency, *conc)
	cfg.fcmHTTP1 = *fcmH1
	setIf(&cfg.rings, *rings)
	setIf(&cfg.timeoutRings, *timeoutRings)
	setIf(&cfg.ringLoadN, *ringLoad)
	setIf(&cfg.stopIters, *stops)
	setIf(&cfg.apiClients, *apiC)
	setIf(&cfg.scaleN, *scaleN)
	if *split < 0 || *split > 19 {
		return nil, errors.New("-split-workers takes a niceness of 1 to 19")
	}
	cfg.splitNice = *split
	if *cluster != 0 && (*cluster < 3 || *cluster > 16) {
		return nil, errors.New("-cluster takes 3 to 16 masters (0: one redis-server)")
	}
	if *shards < 0 || *shards > 64 {
		return nil, errors.New("-shards takes 1 to 64 queues")
	}
	cfg.cluster, cfg.shards = *cluster, *shards
	if cfg.shards == 0 {
		cfg.shards = cfg.cluster
	}
	cfg.webhookDelay = *whDelay
	if *apiD > 0 {
		cfg.apiDuration = *apiD
	}
	if *timeout > 0 {
		cfg.timeout = *timeout
	}
	setD := func(dst *time.Duration, v time.Duration) {
		if v > 0 {
			*dst = v
		}
	}
	setD(&cfg.budget, *budget)
	setD(&cfg.rampStep, *rampStep)
	setD(&cfg.overloadDuration, *overD)
	setD(&cfg.soakDuration, *soakD)
	setD(&cfg.soakRetention, *soakRet)
	setD(&cfg.soakSample, *soakSample)
	if *rampFrom > 0 {
		cfg.rampFrom = *rampFrom
	}
	if *soakRate > 0 {
		cfg.soakRate = *soakRate
	}
	if cfg.overloadDuration > 30*time.Minute || cfg.soakDuration > 2*time.Hour || cfg.rampStep > 5*time.Minute ||
		cfg.rampFrom > 20_000 || cfg.soakRate > 20_000 || cfg.soakRetention < time.Second {
		return nil, errors.New("overload ≤ 30m, soak ≤ 2h, ramp steps ≤ 5m, rates ≤ 20,000/s, soak retention ≥ 1s")
	}
	if *prof != "" {
		if cfg.profileDir, err = filepath.Abs(*prof); err != nil {
			return nil, err
		}
	}
	// Hard bounds, whatever the flags: the tool must stop by itself.
	for _, n := range append(append([]int{}, cfg.fanoutN...), cfg.ceilingN, cfg.ringLoadN, cfg.scaleN) {
		if n < 2 || n > 100_000 {
			return nil, fmt.Errorf("member and task counts must be 2 to 100,000, got %d", n)
		}
	}
	if cfg.rings > 10_000 || cfg.timeoutRings > 10_000 || cfg.stopIters > 10_000 || cfg.apiClients > 1000 || cfg.apiDuration > 5*time.Minute {
		return nil, errors.New("rings, stop iterations (≤ 10,000), api clients (≤ 1,000) or duration (≤ 5m) too large")
	}
	return cfg, nil
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.ReplaceAll(strings.TrimSpace(f), "_", ""))
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

// table is one scenario's result.
type table struct {
	title  string
	header []string
	rows   [][]string
	notes  []string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }
func (t *table) note(format string, args ...any) {
	t.notes = append(t.notes, fmt.Sprintf(format, args...))
}

// print writes the table as Markdown, ready to paste into BENCHMARKS.md.
func (t *table) print(w io.Writer) {
	fmt.Fprintf(w, "\n### %s\n\n", t.title)
	fmt.Fprintf(w, "| %s |\n", strings.Join(t.header, " | "))
	seps := make([]string, len(t.header))
	for i := range seps {
		seps[i] = "---"
	}
	fmt.Fprintf(w, "|%s|\n", strings.Join(seps, "|"))
	for _, r := range t.rows {
		fmt.Fprintf(w, "| %s |\n", strings.Join(r, " | "))
	}
	if len(t.notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range t.notes {
			fmt.Fprintf(w, "- %s\n", n)
		}
	}
}

// state carries what one scenario tells a later one (the ceiling, for fan-out's ratio).
type state struct {
	ceiling float64 // tasks/s of the bare no-op Asynq server, 0 before the ceiling ran
}

type scenarioFunc func(cfg *config, st *state) (*table, error)

var scenarios = map[string]scenarioFunc{
	"ceiling":  runCeiling,
	"fanout":   runFanout,
	"ring":     runRing,
	"stop":     runStop,
	"api":      runAPI,
	"scale":    runScale,
	"timeout":  runTimeout,
	"overload": runOverload,
	"soak":     runSoak,
}

func run(cfg *config) error {
	if cfg.binary == "" {
		bin, err := build()
		if err != nil {
			return err
		}
		defer os.RemoveAll(filepath.Dir(bin))
		cfg.binary = bin
	}
	host, _ := os.Hostname()
	fmt.Fprintf(cfg.out, "# ringer bench — %s, %s, %d CPUs, %s, %s\n", time.Now().UTC().Format(time.RFC3339), host,
		runtime.NumCPU(), runtime.Version(), cpuModel())
	fmt.Fprintf(cfg.out, "# %s\n", redisVersion())
	if cfg.cluster > 0 {
		fmt.Fprintf(cfg.out, "# Redis Cluster of %d masters, no replicas; RINGER_QUEUE_SHARDS=%d\n", cfg.cluster, cfg.shards)
	} else if cfg.shards > 0 {
		fmt.Fprintf(cfg.out, "# one redis-server; RINGER_QUEUE_SHARDS=%d\n", cfg.shards)
	}
	fcmProto := "TLS, HTTP/2"
	if cfg.fcmHTTP1 {
		fcmProto = "plain HTTP/1.1 (-fcm-http1)"
	}
	fmt.Fprintf(cfg.out, "# fake FCM: %s\n", fcmProto)
	if cfg.profileDir != "" {
		stop, err := profileSelf(cfg.profileDir)
		if err != nil {
			return err
		}
		defer stop()
	}
	st := &state{}
	var failed []string
	for _, name := range cfg.scenarios {
		start := time.Now()
		fmt.Fprintf(os.Stderr, "bench: %s...\n", name)
		m0, o0 := machineBusy(), ownCPU()
		t, err := scenarios[name](cfg, st)
		if t != nil {
			wall := time.Since(start)
			others := max(machineBusy()-m0-(ownCPU()-o0), 0)
			t.note("Others' load: processes outside this run used %s of one core on average while it ran (load average %s).", pct(others, wall), loadAvg())
			t.print(cfg.out)
		}
		if err != nil {
			fmt.Fprintf(cfg.out, "\n**%s failed**: %v\n", name, err)
			failed = append(failed, name)
		}
		fmt.Fprintf(os.Stderr, "bench: %s took %s\n", name, time.Since(start).Round(time.Second))
	}
	if len(failed) > 0 {
		return fmt.Errorf("scenarios failed: %s", strings.Join(failed, ", "))
	}
	return nil
}

// guard runs body with a fresh tb, turning its Fatal into an error and running its cleanups.
func guard(name string, body func(t *tb)) (err error) {
	t := newTB(name)
	defer t.close()
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(fatal)
			if !ok {
				panic(r)
			}
			err = errors.New(f.msg)
		}
	}()
	body(t)
	return nil
}

// build compiles ./cmd/ringer (without -race: this measures the real thing).
func build() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return "", fmt.Errorf("find module root: %w", err)
	}
	dir, err := os.MkdirTemp("", "ringer-bench-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "ringer")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/ringer")
	cmd.Dir = strings.TrimSpace(string(out))
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/ringer: %w\n%s", err, b)
	}
	return bin, nil
}

// ownCPU is the CPU time of this process and of its children that have been waited for (every ringer and
// redis-server a scenario started, once its cleanups ran).
func ownCPU() time.Duration {
	var total time.Duration
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if syscall.Getrusage(who, &ru) == nil {
			total += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	return total
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return "unknown CPU"
}

func redisVersion() string {
	out, err := exec.Command("redis-server", "--version").Output()
	if err != nil {
		return "redis-server not found"
	}
	return strings.TrimSpace(string(out))
}
