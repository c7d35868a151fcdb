package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // the profiled worker serves /debug/pprof/ on its listener
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringer-dev/ringer/api"
	"github.com/ringer-dev/ringer/calls"
	"github.com/ringer-dev/ringer/devices"
	"github.com/ringer-dev/ringer/providers/apns"
	"github.com/ringer-dev/ringer/providers/fcm"
	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/templates"
	"github.com/ringer-dev/ringer/worker"
)

// With -profile, the bench runs its worker and its API as copies of itself in these roles instead of `ringer
// worker` and `ringer api`: the same parts wired the way cmd/ringer's serve wires them (without the metrics
// registry and the dashboard), with a CPU profile of the whole run and heap, block and mutex profiles at the
// end written to the profile folder, and /debug/pprof/ on the listener for a look mid-run. cmd/ringer has no
// pprof endpoint, and this keeps it so.
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

	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	opt, err := redis.ParseURL(os.Getenv("REDIS_URL"))
	if err != nil {
		return err
	}
	opt.PoolSize = max(opt.PoolSize, 256) // as cmd/ringer's config.redisClient
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	q := queue.NewClient(rdb)
	store := calls.New(rdb, q, log)
	devs := devices.New(rdb)

	var handler http.Handler = http.DefaultServeMux // /debug/pprof/
	var w *worker.Worker
	switch role {
	case "worker":
		fcmS, err := fcm.New(ctx, fcm.Config{CredentialsFile: os.Getenv("FCM_CREDENTIALS_FILE"), Endpoint: os.Getenv("FCM_ENDPOINT")})
		if err != nil {
			return err
		}
		apnsS, err := apns.New(apns.Config{KeyFile: os.Getenv("APNS_KEY_FILE"), KeyID: os.Getenv("APNS_KEY_ID"),
			TeamID: os.Getenv("APNS_TEAM_ID"), Topic: os.Getenv("APNS_TOPIC"), Endpoint: os.Getenv("APNS_ENDPOINT")})
		if err != nil {
			return err
		}
		tmpl, err := templates.Load("")
		if err != nil {
			return err
		}
		atoi := func(k string) int { n, _ := strconv.Atoi(os.Getenv(k)); return n }
		w = worker.New(worker.Config{
			Redis: rdb, Devices: devs, Templates: tmpl, FCM: fcmS, APNs: apnsS, Calls: store,
			Logger: log, RingConcurrency: atoi("RINGER_RING_CONCURRENCY"), NotifyConcurrency: atoi("RINGER_NOTIFY_CONCURRENCY"),
			ShutdownTimeout: 5 * time.Second,
		})
		if err := w.Start(); err != nil {
			return err
		}
	case "api":
		hub, err := calls.NewHub(rdb, calls.HubConfig{Logger: log})
		if err != nil {
			return err
		}
		h, err := api.New(api.Config{Secret: []byte(os.Getenv("RINGER_API_SECRET")), Calls: store, Devices: devs, Events: hub, Logger: log})
		if err != nil {
			return err
		}
		mux := http.NewServeMux()
		mux.Handle("/debug/pprof/", http.DefaultServeMux)
		mux.Handle("/", h)
		handler = mux
	default:
		return fmt.Errorf("unknown role %q", role)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: handler}
	go srv.Serve(ln)
	log.Info("listening", "addr", ln.Addr().String(), "role", role, "profile", dir)
	<-ctx.Done()
	_ = srv.Close()
	if w != nil {
		w.Shutdown()
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
