package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/ringer-dev/ringer/api"
	"github.com/ringer-dev/ringer/devices"
	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/tests/fakeapns"
	"github.com/ringer-dev/ringer/tests/fakefcm"
	"github.com/ringer-dev/ringer/tests/harness"
	"github.com/ringer-dev/ringer/tests/testredis"
)

// tb lets the test helpers (testredis, fakefcm, fakeapns) run outside `go test`: they take a testing.TB for
// cleanups, temp dirs and fatal errors. Only the methods they call are implemented; the embedded nil TB makes
// any other call panic loudly instead of doing something quiet.
type tb struct {
	testing.TB
	name     string
	mu       sync.Mutex
	cleanups []func()
	dirs     []string
	failed   bool
}

// fatal is what tb.Fatal panics with; scenario runners recover it into an error.
type fatal struct{ msg string }

// live is every tb not yet closed, so that an interrupted run still stops the processes it started.
var live struct {
	sync.Mutex
	tbs map[*tb]bool
}

func newTB(name string) *tb {
	t := &tb{name: name}
	live.Lock()
	if live.tbs == nil {
		live.tbs = map[*tb]bool{}
	}
	live.tbs[t] = true
	live.Unlock()
	return t
}

// closeAll runs the cleanups of every live tb (on SIGINT or SIGTERM).
func closeAll() {
	live.Lock()
	var ts []*tb
	for t := range live.tbs {
		ts = append(ts, t)
	}
	live.Unlock()
	for _, t := range ts {
		t.close()
	}
}

func (t *tb) Helper()      {}
func (t *tb) Name() string { return t.name }
func (t *tb) Failed() bool { t.mu.Lock(); defer t.mu.Unlock(); return t.failed }
func (t *tb) Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "  [%s] %s\n", t.name, fmt.Sprintf(format, args...))
}
func (t *tb) Log(args ...any) { t.Logf("%s", fmt.Sprint(args...)) }
func (t *tb) Errorf(format string, args ...any) {
	t.mu.Lock()
	t.failed = true
	t.mu.Unlock()
	t.Logf(format, args...)
}
func (t *tb) Fatalf(format string, args ...any) {
	t.mu.Lock()
	t.failed = true
	t.mu.Unlock()
	panic(fatal{fmt.Sprintf(format, args...)})
}
func (t *tb) Fatal(args ...any) { t.Fatalf("%s", fmt.Sprint(args...)) }
func (t *tb) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}
func (t *tb) TempDir() string {
	dir, err := os.MkdirTemp("", "ringer-bench-")
	if err != nil {
		t.Fatalf("temp dir: %v", err)
	}
	t.mu.Lock()
	t.dirs = append(t.dirs, dir)
	t.mu.Unlock()
	return dir
}

// close runs the cleanups, last first, and removes the temp dirs.
func (t *tb) close() {
	live.Lock()
	delete(live.tbs, t)
	live.Unlock()
	t.mu.Lock()
	cs, dirs := t.cleanups, t.dirs
	t.cleanups, t.dirs = nil, nil
	t.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
	for _, d := range dirs {
		_ = os.RemoveAll(d)
	}
}

// env is one Redis (a redis-server, or a Redis Cluster with -cluster), one fake FCM and one fake APNs, and the
// ringer processes started on them.
type env struct {
	t   *tb
	cfg *config
	rdb redis.UniversalClient // a *redis.ClusterClient on a cluster
	// nodes has a client of each Redis server: the one server, or each master of the cluster, in a fixed order.
	// Per-server figures (INFO, SLOWLOG, DBSIZE) are read from each and summed.
	nodes  []*redis.Client
	rpids  []int // the nodes' process ids
	fcm    *fakefcm.Server
	apns   *fakeapns.Server
	insp   *asynq.Inspector
	secret string
	vars   []string // environment of a ringer process
	dir    string
	procs  []*proc
	http   *http.Client
}

// newEnv starts Redis and the fakes; the fakes answer after latency.
func newEnv(t *tb, cfg *config, latency time.Duration) *env {
	e := &env{t: t, cfg: cfg, secret: "bench-secret-of-at-least-32-bytes-long"}
	addrs, redisVars := e.startRedis()
	e.fcm = fakefcm.StartWith(t, fakefcm.Options{Plain: cfg.fcmHTTP1})
	e.apns = fakeapns.Start(t)
	e.fcm.SetLatency(latency)
	e.apns.SetLatency(latency)
	for _, a := range append(addrs, e.fcm.URL, e.apns.URL) {
		if err := loopback(a); err != nil {
			t.Fatalf("the bench targets only this machine: %v", err)
		}
	}
	e.insp = asynq.NewInspectorFromRedisClient(e.rdb)
	e.dir = t.TempDir()
	keyPath, keyID, teamID := e.apns.WriteKey(e.dir)
	e.vars = []string{
		"RINGER_API_SECRET=" + e.secret,
		"FCM_CREDENTIALS_FILE=" + e.fcm.WriteCredentials(e.dir),
		"FCM_ENDPOINT=" + e.fcm.Endpoint,
		"APNS_KEY_FILE=" + keyPath, "APNS_KEY_ID=" + keyID, "APNS_TEAM_ID=" + teamID,
		"APNS_TOPIC=" + harness.Topic, "APNS_ENDPOINT=" + e.apns.URL,
		"SSL_CERT_FILE=" + harness.CAFile(t, e.dir, e.fcm.WriteCAFile(e.dir), e.apns.WriteCAFile(e.dir)),
		"RINGER_LOG_FORMAT=json",
		"RINGER_SHUTDOWN_TIMEOUT=5s",
		// The bench's users ring far faster than a person does: it measures delivery, not the ring rate.
		"RINGER_RING_RATE=0",
	}
	e.vars = append(e.vars, redisVars...)
	if cfg.shards > 0 {
		e.vars = append(e.vars, "RINGER_QUEUE_SHARDS="+strconv.Itoa(cfg.shards))
	}
	if cfg.webhookDelay > 0 {
		// A slow receiver: it must not slow any ring (the webhook queue has its own server).
		rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(cfg.webhookDelay):
			case <-r.Context().Done():
			}
		}))
		t.Cleanup(rcv.Close)
		e.vars = append(e.vars, "RINGER_WEBHOOK_URL="+rcv.URL+"/hooks", "RINGER_WEBHOOK_SECRET=bench-webhook-secret")
	}
	// Many concurrent clients, all to 127.0.0.1: keep a connection per client.
	e.http = &http.Client{
		Transport: &http.Transport{MaxIdleConns: 0, MaxIdleConnsPerHost: 1024, IdleConnTimeout: 90 * time.Second},
		Timeout:   60 * time.Second,
	}
	return e
}

// startRedis starts the env's Redis, a redis-server or a cluster of cfg.cluster masters, and its clients, and
// answers the servers' addresses and the environment that points ringer at them.
func (e *env) startRedis() (addrs, vars []string) {
	t := e.t
	if e.cfg.cluster == 0 {
		srv := testredis.Start(t)
		c := redis.NewClient(&redis.Options{Addr: srv.Addr, PoolSize: 256})
		t.Cleanup(func() { c.Close() })
		e.rdb, e.nodes = c, []*redis.Client{c}
		addrs, vars = []string{srv.Addr}, []string{"REDIS_URL=" + srv.URL()}
	} else {
		cl := testredis.StartCluster(t, e.cfg.cluster)
		addrs = cl.Addrs()
		cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, PoolSize: 256})
		t.Cleanup(func() { cc.Close() })
		e.rdb = cc
		for _, a := range addrs {
			c := redis.NewClient(&redis.Options{Addr: a})
			t.Cleanup(func() { c.Close() })
			e.nodes = append(e.nodes, c)
		}
		// REDIS_URL emptied: one inherited from the bench's own environment would make ringer refuse both.
		vars = []string{"REDIS_URL=", "REDIS_CLUSTER_ADDRS=" + strings.Join(addrs, ",")}
	}
	for _, c := range e.nodes {
		info, err := c.Info(context.Background(), "server").Result()
		if err != nil {
			t.Fatalf("INFO server of %s: %v", c.Options().Addr, err)
		}
		e.rpids = append(e.rpids, int(infoInt(info, "process_id")))
	}
	return addrs, vars
}

// proc is one running ringer process.
type proc struct {
	name  string
	cmd   *exec.Cmd
	addr  string
	log   string // file its stderr goes to
	start time.Time
	done  chan struct{}
}

// startWorkers starts the workers of the ring and timeout scenarios: one `ringer worker` (which runs
// notifications in its own niced child process), or with -split-workers a ring-only and a notify-only worker
// (RINGER_QUEUES), the notify one under nice(1).
func (e *env) startWorkers(t *table) {
	if e.cfg.splitNice == 0 {
		e.startRinger("worker", concurrencyEnv(e.cfg)...)
		return
	}
	e.startRinger("worker", append(concurrencyEnv(e.cfg), "RINGER_QUEUES=ring")...)
	e.startRinger("worker", append(concurrencyEnv(e.cfg), "RINGER_QUEUES=notify", niceEnv+"="+strconv.Itoa(e.cfg.splitNice))...)
	t.note("Split workers: a ring-only worker, and a notify-only worker under nice %d.", e.cfg.splitNice)
}

// startRinger runs `ringer <command>` (the real binary; or, with -profile, the bench's own wiring of the
// same parts with a CPU profile) with extra environment, and waits until it listens.
func (e *env) startRinger(command string, extra ...string) *proc {
	var cmd *exec.Cmd
	if e.cfg.profileDir != "" && (command == "worker" || command == "api") {
		self, err := os.Executable()
		if err != nil {
			e.t.Fatalf("find own binary: %v", err)
		}
		cmd = exec.Command(self)
		extra = append(extra, profileRoleEnv+"="+command, profileDirEnv+"="+e.cfg.profileDir)
	} else if nice := niceOf(extra); nice != "" {
		cmd = exec.Command("nice", "-n", nice, e.cfg.binary, command)
	} else {
		cmd = exec.Command(e.cfg.binary, command)
	}
	cmd.Env = append(append(append(os.Environ(), e.vars...), "RINGER_ADDR=127.0.0.1:0"), extra...)
	// Never outlive a killed bench; a process group, so a kill takes a worker's notify child along.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	logPath := filepath.Join(e.dir, fmt.Sprintf("ringer-%s-%d.log", command, len(e.procs)))
	f, err := os.Create(logPath)
	if err != nil {
		e.t.Fatalf("log file: %v", err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	p := &proc{name: command, cmd: cmd, log: logPath, done: make(chan struct{})}
	p.start = time.Now()
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("start ringer %s: %v", command, err)
	}
	addr := make(chan string, 1)
	go func() {
		defer close(p.done)
		defer f.Close()
		br := bufio.NewReaderSize(stderr, 1<<16)
		w := bufio.NewWriterSize(f, 1<<16)
		defer w.Flush()
		found := false
		for {
			line, err := br.ReadSlice('\n')
			if len(line) > 0 {
				w.Write(line)
				if !found && bytes.Contains(line, []byte(`"msg":"listening"`)) {
					var rec struct {
						Addr string `json:"addr"`
					}
					if json.Unmarshal(line, &rec) == nil {
						found = true
						addr <- rec.Addr
					}
				}
			}
			if err == bufio.ErrBufferFull {
				continue
			}
			if err != nil {
				return
			}
		}
	}()
	e.procs = append(e.procs, p)
	e.t.Cleanup(func() { p.stop(10 * time.Second) })
	select {
	case p.addr = <-addr:
		if err := loopback(p.addr); err != nil {
			e.t.Fatalf("the bench targets only this machine: ringer %s: %v", command, err)
		}
		if e.cfg.profileDir != "" {
			fmt.Fprintf(os.Stderr, "bench: %s listens on %s (pid %d)\n", command, p.addr, p.pid())
		}
	case <-p.done:
		e.t.Fatalf("ringer %s exited at start:\n%s", command, tailFile(logPath, 30))
	case <-time.After(60 * time.Second):
		e.t.Fatalf("ringer %s did not start listening:\n%s", command, tailFile(logPath, 30))
	}
	return p
}

// niceEnv in a process's extra environment starts it under nice(1) with that niceness (it is not passed on).
const niceEnv = "BENCH_NICE"

func niceOf(extra []string) string {
	for _, kv := range extra {
		if v, ok := strings.CutPrefix(kv, niceEnv+"="); ok {
			return v
		}
	}
	return ""
}

// stop sends SIGTERM, waits up to d, then kills.
func (p *proc) stop(d time.Duration) {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(d):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	_ = p.cmd.Wait()
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func tailFile(path string, n int) string {
	b, _ := os.ReadFile(path)
	return harness.Tail(string(b), n)
}

// procStatus reads a field of /proc/<pid>/status in kB (VmHWM is peak RSS, VmRSS the current one).
func procStatusKB(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return -1
}

// family is pid and its descendants: a worker that serves both queues runs its notify server in a child
// process, and its CPU and memory are the two together.
func family(pid int) []int {
	out := []int{pid}
	for _, c := range harness.Children(pid) {
		out = append(out, family(c)...)
	}
	return out
}

// familyStatusKB sums procStatusKB over pid's family (for VmHWM: each process's peak, an upper bound).
func familyStatusKB(pid int, field string) int64 {
	var sum int64
	for _, p := range family(pid) {
		sum += max(procStatusKB(p, field), 0)
	}
	return sum
}

// familyCPU sums cpuTime over pid's family.
func familyCPU(pid int) time.Duration {
	var sum time.Duration
	for _, p := range family(pid) {
		sum += cpuTime(p)
	}
	return sum
}

// cpuTime is a process's user+system CPU time so far (/proc/<pid>/stat, fields 14 and 15).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	// The command name (field 2) may hold spaces; fields after it start past the last ')'.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const clkTck = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / clkTck
}

// machineBusy is the CPU time all processes of the machine spent so far (/proc/stat: every state but idle
// and iowait). Over an interval, what ringer, Redis and the bench did not use of it is others' load: this
// machine may be shared, and a figure measured beside someone's build says so.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0
	}
	var busy int64
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i != 3 && i != 4 && i < 8 { // idle, iowait; guest time is already in user
			busy += n
		}
	}
	return time.Duration(busy) * time.Second / 100
}

// redisCPU is the CPU time of every Redis server of the env so far.
func (e *env) redisCPU() time.Duration {
	var sum time.Duration
	for _, pid := range e.rpids {
		sum += cpuTime(pid)
	}
	return sum
}

// masterCPU is each Redis server's CPU time so far (INFO cpu, used_cpu_sys + used_cpu_user), in e.nodes' order.
func (e *env) masterCPU() []time.Duration {
	out := make([]time.Duration, len(e.nodes))
	for i, c := range e.nodes {
		info, err := c.Info(context.Background(), "cpu").Result()
		if err != nil {
			continue
		}
		out[i] = time.Duration((infoFloat(info, "used_cpu_sys") + infoFloat(info, "used_cpu_user")) * float64(time.Second))
	}
	return out
}

// masterShares is each master's share of the Redis CPU spent between two masterCPU readings, the busiest
// one's, and the total: how evenly a cluster carries the load.
func masterShares(before, after []time.Duration) string {
	var total, busiest time.Duration
	used := make([]time.Duration, len(after))
	for i := range after {
		used[i] = max(after[i]-before[i], 0)
		total += used[i]
		busiest = max(busiest, used[i])
	}
	if total <= 0 {
		return "no Redis CPU"
	}
	parts := make([]string, len(used))
	for i, u := range used {
		parts[i] = fmt.Sprintf("%.0f%%", 100*u.Seconds()/total.Seconds())
	}
	return fmt.Sprintf("%s (busiest %.0f%%) of %.2f s", strings.Join(parts, " / "), 100*busiest.Seconds()/total.Seconds(), total.Seconds())
}

// byMasterHeader is header with the column of masterShares on a cluster.
func byMasterHeader(cfg *config, header ...string) []string {
	if cfg.cluster > 0 {
		return append(header, "Redis CPU by master")
	}
	return header
}

// byMasterNote explains byMasterHeader's column, measured over span, on a cluster.
func byMasterNote(cfg *config, t *table, span string) {
	if cfg.cluster > 0 {
		t.note("Redis CPU by master: each master's share of the Redis CPU over %s (INFO cpu, in the order of REDIS_CLUSTER_ADDRS), the busiest one's, and their total.", span)
	}
}

// byMasterCell is the cell of byMasterHeader's column: the masters' shares since before (none off a cluster).
func (e *env) byMasterCell(before []time.Duration) []string {
	if e.cfg.cluster == 0 {
		return nil
	}
	return []string{masterShares(before, e.masterCPU())}
}

// info sums a figure of INFO section over the env's Redis servers; -1 when one did not answer or lacks it.
func (e *env) info(section, field string) int64 {
	var sum int64
	for _, c := range e.nodes {
		info, err := c.Info(context.Background(), section).Result()
		if err != nil {
			return -1
		}
		n := infoInt(info, field)
		if n < 0 {
			return -1
		}
		sum += n
	}
	return sum
}

// redisMemory is INFO memory's used_memory, in bytes, over every Redis server.
func (e *env) redisMemory() int64 { return e.info("memory", "used_memory") }

// dbSize is how many keys every Redis server holds together.
func (e *env) dbSize() int64 {
	var sum int64
	for _, c := range e.nodes {
		n, err := c.DBSize(context.Background()).Result()
		if err != nil {
			return -1
		}
		sum += n
	}
	return sum
}

// flushAll empties every Redis server.
func (e *env) flushAll() {
	for _, c := range e.nodes {
		if err := c.FlushAll(context.Background()).Err(); err != nil {
			e.t.Fatalf("FLUSHALL on %s: %v", c.Options().Addr, err)
		}
	}
}

func infoInt(info, field string) int64 {
	n, err := strconv.ParseInt(infoField(info, field), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

func infoFloat(info, field string) float64 {
	f, _ := strconv.ParseFloat(infoField(info, field), 64)
	return f
}

func infoField(info, field string) string {
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// slowlogLens is how many commands each Redis server has logged as slow so far.
func (e *env) slowlogLens() []int64 {
	out := make([]int64, len(e.nodes))
	for i, c := range e.nodes {
		out[i], _ = c.Do(context.Background(), "SLOWLOG", "LEN").Int64()
	}
	return out
}

// slowlog names the k slowest commands the Redis servers logged after they had logged since of them (each
// keeps the last 128, over 10 ms each by default).
func (e *env) slowlog(since []int64, k int) string {
	var logs []redis.SlowLog
	for i, c := range e.nodes {
		l, err := c.SlowLogGet(context.Background(), 128).Result()
		if err != nil {
			continue
		}
		if n, _ := c.Do(context.Background(), "SLOWLOG", "LEN").Int64(); n-since[i] < int64(len(l)) {
			l = l[:max(n-since[i], 0)]
		}
		logs = append(logs, l...)
	}
	sort.Slice(logs, func(i, j int) bool { return logs[i].Duration > logs[j].Duration })
	var parts []string
	for _, l := range logs[:min(k, len(logs))] {
		cmd := ""
		if len(l.Args) > 0 {
			cmd = strings.ToUpper(l.Args[0])
			if len(l.Args) > 1 && len(l.Args[1]) < 60 {
				cmd += " " + l.Args[1]
			}
		}
		parts = append(parts, fmt.Sprintf("%s %s", cmd, ms(l.Duration)))
	}
	if len(parts) == 0 {
		return ""
	}
	return fmt.Sprintf("%d logged; slowest %s", len(logs), strings.Join(parts, ", "))
}

// cmdStat is one line of INFO commandstats.
type cmdStat struct {
	calls int64
	usec  int64
}

// commandStats is INFO commandstats summed over the Redis servers.
func (e *env) commandStats() map[string]cmdStat {
	out := map[string]cmdStat{}
	for _, c := range e.nodes {
		info, err := c.Info(context.Background(), "commandstats").Result()
		if err == nil {
			addCommandStats(out, info)
		}
	}
	return out
}

func addCommandStats(out map[string]cmdStat, info string) {
	for _, line := range strings.Split(info, "\r\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		var s cmdStat
		for _, kv := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			n, _ := strconv.ParseInt(v, 10, 64)
			switch k {
			case "calls":
				s.calls = n
			case "usec":
				s.usec = n
			}
		}
		name = strings.TrimPrefix(name, "cmdstat_")
		out[name] = cmdStat{calls: out[name].calls + s.calls, usec: out[name].usec + s.usec}
	}
}

// redisCost is the Redis servers' CPU time per unit (a push, a task, a request), then the commands that took
// the most Redis time between two INFO commandstats, per unit. The CPU time leads because commandstats cannot
// be summed: a script's time there includes every command it runs, and each of those commands counts on its
// own line too, so the sum counts a script's commands twice. A script's figure below includes its commands.
func redisCost(cpu time.Duration, before, after map[string]cmdStat, per int, k int) string {
	type row struct {
		name string
		d    cmdStat
	}
	var rows []row
	for n, a := range after {
		b := before[n]
		d := cmdStat{calls: a.calls - b.calls, usec: a.usec - b.usec}
		if d.calls > 0 {
			rows = append(rows, row{n, d})
		}
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].d.usec > rows[j].d.usec })
	if len(rows) > k {
		rows = rows[:k]
	}
	var parts []string
	for _, r := range rows {
		parts = append(parts, fmt.Sprintf("%s %.2f calls/%.1fµs", strings.ToUpper(r.name), float64(r.d.calls)/float64(per), float64(r.d.usec)/float64(per)))
	}
	return fmt.Sprintf("%.1f µs CPU: %s", float64(cpu.Microseconds())/float64(per), strings.Join(parts, ", "))
}

// token is a user token; "" is a server token.
func (e *env) token(user string) string {
	c := api.TokenClaims{UserID: user, Name: user}
	if user == "" {
		c = api.TokenClaims{Server: true}
	}
	tok, err := api.MintToken([]byte(e.secret), c, 6*time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// do sends one request to a ringer process; body is JSON-encoded unless []byte.
func (e *env) do(ctx context.Context, base, method, path, token string, body any) (int, []byte, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := e.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	return res.StatusCode, raw, err
}

// mustDo is do that fails the scenario unless the status is 2xx.
func (e *env) mustDo(base, method, path, token string, body any) []byte {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, raw, err := e.do(ctx, base, method, path, token, body)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	if st/100 != 2 {
		e.t.Fatalf("%s %s: status %d: %.300s", method, path, st, raw)
	}
	return raw
}

// Device kinds a seeded user gets.
const (
	devFCM      = "fcm"
	devAPNs     = "apns"     // regular APNs token
	devAPNsVoIP = "apnsvoip" // APNs VoIP token
)

// seedDevices registers devices straight in the registry (the same Registry the API uses), in parallel.
// kinds(i) names the devices of users[i].
func (e *env) seedDevices(users []string, kinds func(i int) []string) {
	reg := devices.New(e.rdb)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var (
		wg   sync.WaitGroup
		next = make(chan int, 1024)
		errs = make(chan error, 64)
	)
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				for j, k := range kinds(i) {
					d := devices.Device{ID: deviceToken(users[i], k, j), UserID: users[i]}
					switch k {
					case devFCM:
						d.PushProvider = devices.Firebase
					case devAPNs:
						d.PushProvider = devices.APN
					case devAPNsVoIP:
						d.PushProvider, d.VoIPToken = devices.APN, true
					}
					if _, err := reg.Register(ctx, d); err != nil {
						select {
						case errs <- err:
						default:
						}
						return
					}
				}
			}
		}()
	}
	for i := range users {
		if ctx.Err() != nil {
			break
		}
		select {
		case err := <-errs:
			close(next)
			wg.Wait()
			e.t.Fatalf("seed devices: %v", err)
		case next <- i:
		}
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		e.t.Fatalf("seed devices: %v", err)
	default:
	}
}

// deviceToken is the token of a user's j-th device of a kind: APNs tokens must be hex.
func deviceToken(user, kind string, j int) string {
	name := fmt.Sprintf("%s-%s-%d", user, kind, j)
	if kind == devFCM {
		return "fcm-" + name
	}
	return harness.APNsToken(name)
}

// quiet waits until the ring and notify queues have nothing pending, active or to retry, or d passes.
func (e *env) quiet(d time.Duration) bool {
	return harness.Poll(d, 20*time.Millisecond, func() bool { return e.queued() == 0 })
}

// queued is how many tasks of the ring and notify queues (every shard) are pending, active or waiting for a
// retry.
func (e *env) queued() int {
	n := 0
	for _, base := range []string{queue.QueueRing, queue.QueueNotify} {
		qs, err := e.listedShards(base)
		if err != nil {
			return -1
		}
		for _, q := range qs {
			info, err := e.insp.GetQueueInfo(q)
			if err != nil {
				return -1
			}
			n += info.Pending + info.Active + info.Retry
		}
	}
	return n
}

// shardOf says whether the Asynq queue q is one of the shards of ringer's queue base (queue.Layout).
func shardOf(q, base string) bool { return queue.Base(q) == base }

// listedShards are the Asynq queues of ringer's queue base that Redis lists (a queue is listed once a task
// was enqueued to it).
func (e *env) listedShards(base string) ([]string, error) {
	qs, err := e.insp.Queues()
	if err != nil {
		return nil, fmt.Errorf("list the queues: %w", err)
	}
	var out []string
	for _, q := range qs {
		if shardOf(q, base) {
			out = append(out, q)
		}
	}
	return out, nil
}

// shards are the Asynq queues of ringer's queue base: those the shard count names, and those Redis lists.
func (e *env) shards(base string) []string {
	names := queue.ShardNames(base, e.cfg.shards)
	listed, err := e.listedShards(base)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, q := range listed {
		if !slices.Contains(names, q) {
			names = append(names, q)
		}
	}
	return names
}

// queueMemory is what the shards of ringer's queue base hold in Redis, as Asynq's inspector reports it (its
// keys and a sample of its tasks).
func (e *env) queueMemory(base string) int64 {
	listed, err := e.listedShards(base)
	if err != nil {
		e.t.Fatal(err)
	}
	var sum int64
	for _, q := range listed {
		qi, err := e.insp.GetQueueInfo(q)
		if err != nil {
			e.t.Fatalf("queue info of %s: %v", q, err)
		}
		sum += qi.MemoryUsage
	}
	return sum
}

// pushes counts what the fakes received so far.
func (e *env) pushes() int { return e.fcm.Count() + e.apns.Count() }

// loopback checks that addr (host:port or a URL) is on the loopback interface: the bench sends traffic to
// nothing else.
func loopback(addr string) error {
	host, _, err := net.SplitHostPort(strings.TrimPrefix(strings.TrimPrefix(addr, "http://"), "https://"))
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return errors.New(addr + " is not a loopback address")
	}
	return nil
}
