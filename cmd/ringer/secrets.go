package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"time"
)

// fileSecrets are the variables that may instead name a file holding the value, as X_FILE: container
// platforms (Docker and Kubernetes secrets) mount secrets as files rather than put them in the environment.
var fileSecrets = []string{"RINGER_API_SECRET", "RINGER_DASHBOARD_USER", "RINGER_DASHBOARD_PASSWORD", "REDIS_URL", "REDIS_CLUSTER_ADDRS"}

// withFileSecrets returns getenv with every X of fileSecrets whose X_FILE is set read from that file (its
// trailing newline dropped). Setting both X and X_FILE, or naming a file that cannot be read, is an error
// naming the variable.
func withFileSecrets(getenv func(string) string) (func(string) string, error) {
	values := map[string]string{}
	var errs []error
	for _, name := range fileSecrets {
		path := getenv(name + "_FILE")
		if path == "" {
			continue
		}
		if getenv(name) != "" {
			errs = append(errs, fmt.Errorf("%s and %s_FILE are both set: choose one", name, name))
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s_FILE: %w", name, err))
			continue
		}
		values[name] = strings.TrimRight(string(b), "\r\n")
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return func(k string) string {
		if v, ok := values[k]; ok {
			return v
		}
		return getenv(k)
	}, nil
}

// printVersion prints the module's version and the VCS revision the binary was built from, as the Go
// toolchain recorded them.
func printVersion(w io.Writer) error {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return errors.New("version: this binary carries no build information")
	}
	rev, modified, at := "unknown", false, ""
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		case "vcs.time":
			at = s.Value
		}
	}
	if modified {
		rev += " (modified)"
	}
	fmt.Fprintf(w, "ringer %s\nmodule %s\nrevision %s\n", bi.Main.Version, bi.Main.Path, rev)
	if at != "" {
		fmt.Fprintf(w, "committed %s\n", at)
	}
	fmt.Fprintf(w, "go %s\n", bi.GoVersion)
	return nil
}

// runHealthcheck asks this machine's ringer (at RINGER_ADDR) for path, /healthz by default, and fails unless
// it answers 200: a container healthcheck for images with no shell or curl (distroless).
func runHealthcheck(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	path := "/healthz"
	if len(args) > 0 {
		path = args[0]
	}
	host, port, err := net.SplitHostPort(or(getenv("RINGER_ADDR"), "127.0.0.1:8080"))
	if err != nil {
		return fmt.Errorf("healthcheck: RINGER_ADDR: %w", err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+path, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	fmt.Fprintf(stdout, "%d %s\n", res.StatusCode, strings.TrimSpace(string(body)))
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %d", path, res.StatusCode)
	}
	return nil
}
