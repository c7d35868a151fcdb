package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	_ "net/http/pprof" // the profiled worker serves /debug/pprof/ on its listener
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringer-dev/ringer/app"
	"github.com/ringer-dev/ringer/logwriter"
	"github.com/ringer-dev/ringer/providers"
	"github.com/ringer-dev/ringer/providers/registry"
	"github.com/ringer-dev/ringer/queue"
)

// With -profile, the bench runs its worker and its API as copies of itself in these roles instead of `ringer
// worker` and `ringer api`: the same parts, built by the same builder as cmd/ringer's (app.Build; without the
// metrics registry, the dashboard and the notify child), with a CPU profile of the whole run and heap, block
// and mutex profiles at the end written to the profile folder, and /debug/pprof/ on the listener for a look
// mid-run. cmd/ringer has no pprof endpoint, and this keeps it so.
const (
	profileRoleEnv = "RINGER_BENCH_ROLE"
	profileDirEnv  = "RINGER_BENCH_PROFILE_DIR"
)

func runProfiled() error {
	role, dir := os.Getenv(profileRoleEnv), os.Getenv(profileDirEnv)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	name := fmt.Sprintf("%s-%d-%d", role, os.Getpid(), time.Now().Unix())
	cpu, err := os.Create(filepath.Join(dir, name+".cpu.pprof"))
	if err != nil {
		return err
	}
	if err := pprof.StartCPUProfile(cpu); err != nil {
		return err
	}
	// Where handlers wait, not only where they burn CPU: a process that is not CPU-bound is bound by a wait.
	runtime.SetBlockProfileRate(int(100 * time.Microsecond))
	runtime.SetMutexProfileFraction(10)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	// Logged as cmd/ringer logs (its serve): through a logwriter, so the profile shows what ringer's logging costs.
	interval := logwriter.DefaultInterval
	if v := os.Getenv("RINGER_LOG_FLUSH_INTERVAL"); v != "" {
		if interval, err = time.ParseDuration(v); err != nil {
			return fmt.Errorf("RINGER_LOG_FLUSH_INTERVAL: %w", err)
		}
	}
	logOut := logwriter.New(os.Stderr, interval)
	defer logOut.Close()
	log := slog.New(logwriter.NewHandler(slog.NewJSONHandler(logOut, nil), logOut))
	rdb, err := profiledRedis(os.Getenv)
	if err != nil {
		return err
	}
	defer rdb.Close()
	a, err := profiledApp(ctx, role, os.Getenv, rdb, log)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/debug/pprof/", http.DefaultServeMux)
	mux.Handle("/", a.Handler)
	srv := &app.HTTPServer{Addr: "127.0.0.1:0", AddrFrom: "listen", Handler: mux, OnListen: func(addr string) {
		log.Info("listening", "addr", addr, "role", role, "profile", dir)
		_ = logOut.Flush() // the bench waits for this line
	}}
	if err := app.Run(ctx, log, 5*time.Second, append(a.Components(), srv)...); err != nil {
		return err
	}
	pprof.StopCPUProfile()
	cpu.Close()
	runtime.GC()
	for _, p := range []string{"heap", "block", "mutex"} {
		f, err := os.Create(filepath.Join(dir, name+"."+p+".pprof"))
		if err != nil {
			return err
		}
		err = pprof.Lookup(p).WriteTo(f, 0)
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// profiledRedis connects to the Redis the bench points ringer at, REDIS_CLUSTER_ADDRS (-cluster) or REDIS_URL,
// as cmd/ringer's config.redisClient does.
func profiledRedis(getenv func(string) string) (redis.UniversalClient, error) {
	if addrs := getenv("REDIS_CLUSTER_ADDRS"); addrs != "" {
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Split(addrs, ",")}), nil
	}
	opt, err := redis.ParseURL(getenv("REDIS_URL"))
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	opt.PoolSize = max(opt.PoolSize, 256)
	return redis.NewClient(opt), nil
}

// profiledApp builds the parts of role ("worker" or "api") from the environment the bench gives `ringer
// worker` and `ringer api`: the FCM_* and APNS_* providers, the concurrency and RINGER_QUEUES.
func profiledApp(ctx context.Context, role string, getenv func(string) string, rdb redis.UniversalClient, log *slog.Logger) (*app.App, error) {
	if role != "worker" && role != "api" {
		return nil, fmt.Errorf("unknown role %q", role)
	}
	var specs []registry.Spec
	if f := getenv("FCM_CREDENTIALS_FILE"); f != "" {
		specs = append(specs, registry.Spec{Name: providers.Firebase, Type: providers.Firebase, Default: true,
			CredentialsFile: f, Endpoint: getenv("FCM_ENDPOINT")})
	}
	if f := getenv("APNS_KEY_FILE"); f != "" {
		specs = append(specs, registry.Spec{Name: providers.APN, Type: providers.APN, Default: true,
			KeyFile: f, KeyID: getenv("APNS_KEY_ID"), TeamID: getenv("APNS_TEAM_ID"), Topic: getenv("APNS_TOPIC"),
			Environment: "production", Endpoint: getenv("APNS_ENDPOINT")})
	}
	provs, err := registry.Build(ctx, specs, log)
	if err != nil {
		return nil, err
	}
	atoi := func(k string) int { n, _ := strconv.Atoi(getenv(k)); return n }
	queues := getenv("RINGER_QUEUES")
	return app.Build(app.Config{
		Redis: rdb, Logger: log, Providers: provs,
		API: role == "api", Worker: role == "worker", Secret: []byte(getenv("RINGER_API_SECRET")),
		RingConcurrency: atoi("RINGER_RING_CONCURRENCY"), NotifyConcurrency: atoi("RINGER_NOTIFY_CONCURRENCY"),
		ShutdownTimeout: 5 * time.Second,
		SkipRing:        queues != "" && !strings.Contains(queues, queue.QueueRing),
		SkipNotify:      queues != "" && !strings.Contains(queues, queue.QueueNotify),
	})
}

// profileSelf writes the CPU profile of the bench's own process into dir until stop is called: the fakes
// share the cores with ringer, so what they spend a push is part of every figure.
func profileSelf(dir string) (stop func(), err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("bench-%d-%d.cpu.pprof", os.Getpid(), time.Now().Unix())))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("bench profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
