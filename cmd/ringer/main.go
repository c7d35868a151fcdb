// Command ringer rings phones for video and audio calls: an HTTP API, Asynq workers that push through FCM
// and APNs, and the Asynq dashboard, in one binary (API.md, "Commands").
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
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
	case notifyChildCommand: // run by `ringer worker` itself, not by people
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
