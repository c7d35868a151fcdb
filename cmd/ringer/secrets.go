package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
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
