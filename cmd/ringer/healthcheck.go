package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

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
