package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringer-dev/ringer/api"
)

// runDev runs everything with nothing configured: its own redis-server when REDIS_URL is unset, a fresh
// secret, demo tokens, pushes logged unless a provider is configured, and the dashboard with a printed login.
func runDev(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "listen address (default RINGER_ADDR or 127.0.0.1:8080)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	env := map[string]string{}
	get := func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		return getenv(k)
	}
	if *addr != "" {
		env["RINGER_ADDR"] = *addr
	}
	if getenv("RINGER_API_SECRET") == "" {
		env["RINGER_API_SECRET"] = randomHex(MinSecretBytes)
	}
	if getenv("RINGER_DASHBOARD_USER") == "" {
		env["RINGER_DASHBOARD_USER"], env["RINGER_DASHBOARD_PASSWORD"] = "admin", randomHex(8)
	}
	if getenv("RINGER_LOG_FORMAT") == "" {
		env["RINGER_LOG_FORMAT"] = "text"
	}
	if getenv("REDIS_URL") == "" && getenv("REDIS_CLUSTER_ADDRS") == "" {
		url, stop, err := startRedis(ctx, stderr)
		if err != nil {
			return err
		}
		defer stop()
		env["REDIS_URL"] = url
	}
	cfg, err := loadConfig(get, true)
	if err != nil {
		return err
	}
	childEnv := make([]string, 0, len(env))
	for k, v := range env {
		childEnv = append(childEnv, k+"="+v)
	}
	return serve(ctx, cfg, stderr, roles{api: true, worker: true, dashboard: true}, &hooks{
		listening: func(addr string) { printWelcome(stdout, cfg, addr) },
		demo:      true,
		childEnv:  childEnv,
	})
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// startRedis runs a private redis-server on a free loopback port, in a temporary folder removed at stop.
func startRedis(ctx context.Context, stderr io.Writer) (url string, stop func(), err error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", nil, errors.New("redis-server not found: install it (apt-get install redis-server) or set REDIS_URL")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("find a free port for redis-server: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir, err := os.MkdirTemp("", "ringer-dev-redis-")
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", dir,
		"--save", "", "--appendonly", "yes", "--logfile", filepath.Join(dir, "redis.log"))
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("start redis-server: %w", err)
	}
	stop = func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		os.RemoveAll(dir)
	}
	url = fmt.Sprintf("redis://127.0.0.1:%d/0", port)
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port)})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(ctx).Err() != nil {
		if time.Now().After(deadline) || ctx.Err() != nil {
			stop()
			return "", nil, fmt.Errorf("redis-server on port %d did not answer; its log is in %s", port, dir)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return url, stop, nil
}

func printWelcome(w io.Writer, cfg config, addr string) {
	secret := []byte(cfg.Secret)
	alice, _ := api.MintToken(secret, api.TokenClaims{UserID: "alice", Name: "Alice"}, 24*time.Hour)
	bob, _ := api.MintToken(secret, api.TokenClaims{UserID: "bob", Name: "Bob"}, 24*time.Hour)
	server, _ := api.MintToken(secret, api.TokenClaims{Server: true}, 24*time.Hour)
	base := "http://" + addr
	fmt.Fprintf(w, `
ringer dev is running at %[1]s  (Redis: %[2]s)

See it ring: open %[1]s/?user=alice and %[1]s/?user=bob in two browser windows, then call from one to the other.

RINGER_API_SECRET=%[3]s
ALICE=%[4]s
BOB=%[5]s
SERVER=%[6]s

Dashboard: %[1]s/asynq/  (login %[7]s / %[8]s)

Try a ring (pushes are logged here because no provider is configured):
  curl -s -XPOST %[1]s/v1/devices -H "Authorization: Bearer $BOB" -H 'Content-Type: application/json' -d '{"id":"bob-android","push_provider":"firebase"}'
  curl -s -XPOST %[1]s/v1/devices -H "Authorization: Bearer $BOB" -H 'Content-Type: application/json' -d '{"id":"9d392ac4b61d46c4a703eff2c01eff9556710a1253229d7bfb74647e60242a94","push_provider":"apn","voip_token":true}'
  curl -s -XPOST %[1]s/v1/call/default/demo1 -H "Authorization: Bearer $ALICE" -H 'Content-Type: application/json' -d '{"ring":true,"data":{"members":[{"user_id":"alice"},{"user_id":"bob"}],"custom":{"display_name":"Standup"}}}'
  curl -s -XPOST %[1]s/v1/call/default/demo1/accept -H "Authorization: Bearer $BOB"
  curl -s %[1]s/v1/calls -H "Authorization: Bearer $ALICE"

`, base, cfg.RedisURL, cfg.Secret, alice, bob, server, cfg.DashboardUser, cfg.DashboardPassword)
}
