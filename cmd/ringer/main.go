// Command ringer rings phones for video and audio calls: an HTTP API, Asynq workers that push through FCM
// and APNs, and the Asynq dashboard, in one binary (API.md, "Commands").
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/ringer-dev/ringer/logwriter"
	"github.com/ringer-dev/ringer/notifychild"
)

const usage = `ringer rings phones for video and audio calls.

Usage:
  ringer dev         everything on one machine, nothing to configure (own redis-server, demo tokens)
  ringer serve       API, worker and dashboard in one process, configured from the environment
  ringer api         the API alone
  ringer worker      the worker alone
  ringer dashboard   the Asynq dashboard alone
  ringer token       print an API token: --user ID [--name N] [--role user|admin] [--teams a,b] [--ttl 24h] | --server
  ringer push        send one test push: --token T --provider firebase|apn [--voip] [--type call.ring]
  ringer version     print the module version and the VCS revision of this binary
  ringer healthcheck [/readyz]   ask the ringer at RINGER_ADDR on this machine; exit 0 on 200 (container healthchecks)

Configuration is read from the environment; see README.md. Every secret may be given as a file instead:
RINGER_API_SECRET_FILE, RINGER_DASHBOARD_PASSWORD_FILE, REDIS_URL_FILE, ...
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// go-redis has one logger per process (its reconnect and pool messages, many a second while Redis is
	// down), plain text on stderr by default; main owns process-wide state, so main routes it into slog.
	// Unbuffered: go-redis logs at Warn only, and a Warn record is written out at once in any case.
	// A malformed RINGER_LOG_LEVEL leaves Info here; loading the configuration reports it.
	level, _ := parseLogLevel(os.Getenv("RINGER_LOG_LEVEL"))
	rlog := newLogger(processLogFormat(os.Args[1:], os.Getenv), level, logwriter.New(os.Stderr, 0))
	if len(os.Args) > 1 && os.Args[1] == notifychild.Command {
		rlog = rlog.With("process", "notify-child")
	}
	redis.SetLogger(redisLog{rlog})
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	if errors.Is(err, errUsage) {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "ringer: %v\n", err)
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

// processLogFormat is the log format the command in args will use: RINGER_LOG_FORMAT, else text under
// `ringer dev` and JSON everywhere else (runDev, loadConfig).
func processLogFormat(args []string, getenv func(string) string) string {
	if f := getenv("RINGER_LOG_FORMAT"); f != "" {
		return f
	}
	if len(args) > 0 && args[0] == "dev" {
		return "text"
	}
	return "json"
}

// redisLog is go-redis's logger as an slog logger: each message one record at Warn, since go-redis logs
// only what went wrong (dial failures, bad connections put back in the pool).
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, "redis client", "detail", strings.TrimSpace(fmt.Sprintf(format, v...)))
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errUsage
	}
	getenv, err := withFileSecrets(getenv)
	if err != nil {
		return err
	}
	switch args[0] {
	case "dev":
		return runDev(ctx, args[1:], getenv, stdout, stderr)
	case "serve":
		return runService(ctx, getenv, stderr, roles{api: true, worker: true, dashboard: true})
	case "api":
		return runService(ctx, getenv, stderr, roles{api: true})
	case "worker":
		return runService(ctx, getenv, stderr, roles{worker: true})
	case "dashboard":
		return runService(ctx, getenv, stderr, roles{dashboard: true})
	case notifychild.Command: // run by `ringer worker` itself, not by people
		return runNotifyChild(ctx, getenv, stderr)
	case "token":
		return runToken(args[1:], getenv, stdout)
	case "push":
		return runPush(ctx, args[1:], getenv, stdout, stderr)
	case "healthcheck":
		return runHealthcheck(ctx, args[1:], getenv, stdout)
	case "version", "--version":
		return printVersion(stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return errUsage
}
