package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/ringer-dev/ringer/api"
	"github.com/ringer-dev/ringer/calls"
	"github.com/ringer-dev/ringer/logwriter"
	"github.com/ringer-dev/ringer/providers/registry"
	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/ratelimit"
	"github.com/ringer-dev/ringer/worker"
)

// config is everything ringer reads from the environment (API.md, "Configuration").
type config struct {
	Addr              string
	Secret            string
	RedisURL          string
	RedisClusterAddrs []string

	FCMCredentialsFile string
	FCMEndpoint        string

	APNsKeyFile     string
	APNsKeyID       string
	APNsTeamID      string
	APNsTopic       string
	APNsEnvironment string
	APNsEndpoint    string

	// ProvidersFile is RINGER_PROVIDERS_FILE; Providers are the named providers it, or the FCM_* and APNS_*
	// variables, define (providers_file.go).
	ProvidersFile string
	Providers     []registry.Spec

	TemplatesDir      string
	DashboardUser     string
	DashboardPassword string
	ShutdownTimeout   time.Duration
	LogFormat         string // json or text
	// LogLevel is the least severe level written (RINGER_LOG_LEVEL).
	LogLevel slog.Level
	// LogFlushInterval is how long an Info or Debug line may wait in the log's buffer (logwriter); 0 writes
	// every line at once.
	LogFlushInterval time.Duration
	// HTTP server timeouts (RINGER_HTTP_*_TIMEOUT): a slow body, a slow reader or an idle keep-alive
	// connection is cut off instead of holding a connection and its goroutine.
	HTTPReadTimeout, HTTPWriteTimeout, HTTPIdleTimeout time.Duration

	RingConcurrency   int
	NotifyConcurrency int
	RingPollInterval  time.Duration
	// QueueShards splits each queue over that many Asynq queues (RINGER_QUEUE_SHARDS, queue.Layout), for a
	// Redis Cluster; 0 is one.
	QueueShards int
	// Queues are the queues a worker serves: ring (rings and stops) and notify. Separate processes for each
	// keep a notification backlog from competing with rings for CPU.
	ServeRing, ServeNotify bool
	// NotifyInline keeps a two-queue worker's notify server in its own process instead of a child process at
	// NotifyNice (RINGER_NOTIFY_PROCESS=inline); see notifychild.go for why the child is the default.
	NotifyInline bool
	NotifyNice   int
	// SchedSlice is the scheduler slice the kernel is asked to run this process's threads with
	// (RINGER_SCHED_SLICE, setSchedSlice); 0 leaves the kernel's. The notify child runs with the kernel's.
	SchedSlice time.Duration

	// SSEPerUser and SSEMax bound the event streams of one user and of the process (0: calls' defaults).
	SSEPerUser, SSEMax int
	// RingQueueBudget is how long ring pushes may wait in the queue before new rings are refused (0: never).
	RingQueueBudget time.Duration
	// NotifyTTL is the lifetime of notification, missed-call and reminder pushes (RINGER_NOTIFY_TTL).
	NotifyTTL time.Duration
	// RingRate bounds how fast one user starts rings (RINGER_RING_RATE); N 0 is no limit.
	RingRate ratelimit.Rate
	// CallRetention keeps an ended call; CallMaxAge keeps a call that never ends after its last activity.
	CallRetention, CallMaxAge time.Duration
	// ReminderLead is how long before a scheduled call's starts_at its members get the call.reminder push.
	ReminderLead time.Duration

	// Webhooks (API.md, "Webhooks"): the receiver URLs, the signing secret, one POST's timeout, the first
	// retry's wait; EventsReplay is how long each user's events are kept for a reconnect.
	WebhookURLs      []string
	WebhookSecret    string
	WebhookTimeout   time.Duration
	WebhookRetryBase time.Duration
	EventsReplay     time.Duration
}

// MinSecretBytes is the shortest RINGER_API_SECRET accepted: HS256 keys shorter than its 32-byte hash
// make forged tokens cheaper to find.
const MinSecretBytes = 32

// Defaults of the HTTP server timeouts. The write timeout bounds a whole answer, so it must outlast the
// API's own request timeout, or a slow request would be cut mid-answer instead of getting its 503.
const (
	defaultHTTPReadTimeout  = 30 * time.Second
	defaultHTTPWriteTimeout = 30 * time.Second
	defaultHTTPIdleTimeout  = 120 * time.Second
)

// The scheduler slice ringer's threads ask for (RINGER_SCHED_SLICE), and the range Linux accepts: the shortest
// it takes is the default, since a ring's wake-ups each need little CPU and come often.
const (
	defaultSchedSlice = 100 * time.Microsecond
	minSchedSlice     = 100 * time.Microsecond
	maxSchedSlice     = 100 * time.Millisecond
)

// loadConfig reads the environment; every missing or malformed value is named in the error.
func loadConfig(getenv func(string) string, needSecret bool) (config, error) {
	c := config{
		Addr:               or(getenv("RINGER_ADDR"), "127.0.0.1:8080"),
		Secret:             getenv("RINGER_API_SECRET"),
		RedisURL:           getenv("REDIS_URL"),
		FCMCredentialsFile: getenv("FCM_CREDENTIALS_FILE"),
		FCMEndpoint:        getenv("FCM_ENDPOINT"),
		APNsKeyFile:        getenv("APNS_KEY_FILE"),
		APNsKeyID:          getenv("APNS_KEY_ID"),
		APNsTeamID:         getenv("APNS_TEAM_ID"),
		APNsTopic:          getenv("APNS_TOPIC"),
		APNsEnvironment:    or(getenv("APNS_ENVIRONMENT"), "production"),
		APNsEndpoint:       getenv("APNS_ENDPOINT"),
		TemplatesDir:       getenv("RINGER_TEMPLATES_DIR"),
		DashboardUser:      getenv("RINGER_DASHBOARD_USER"),
		DashboardPassword:  getenv("RINGER_DASHBOARD_PASSWORD"),
		LogFormat:          or(getenv("RINGER_LOG_FORMAT"), "json"),
	}
	var errs []error
	if needSecret {
		if err := checkSecret("RINGER_API_SECRET", c.Secret); err != nil {
			errs = append(errs, err)
		}
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("RINGER_ADDR %q is not host:port: %w", c.Addr, err))
	}
	if v := getenv("REDIS_CLUSTER_ADDRS"); v != "" {
		for _, a := range strings.Split(v, ",") {
			a = strings.TrimSpace(a)
			if _, _, err := net.SplitHostPort(a); err != nil {
				errs = append(errs, fmt.Errorf("REDIS_CLUSTER_ADDRS: %q is not host:port", a))
				continue
			}
			c.RedisClusterAddrs = append(c.RedisClusterAddrs, a)
		}
		if c.RedisURL != "" {
			errs = append(errs, errors.New("REDIS_URL and REDIS_CLUSTER_ADDRS are both set: choose one"))
		}
	}
	if c.RedisURL != "" {
		if _, err := redis.ParseURL(c.RedisURL); err != nil {
			errs = append(errs, fmt.Errorf("REDIS_URL is malformed: %w", err))
		}
	}
	apns := []string{c.APNsKeyFile, c.APNsKeyID, c.APNsTeamID}
	if anySet(apns...) {
		if !allSet(apns...) {
			errs = append(errs, errors.New("APNS_KEY_FILE, APNS_KEY_ID and APNS_TEAM_ID go together: set all three or none"))
		}
		if c.APNsTopic == "" {
			errs = append(errs, errors.New("APNS_TOPIC is not set: APNs needs the app's bundle id"))
		}
	}
	if c.APNsEnvironment != "production" && c.APNsEnvironment != "development" {
		errs = append(errs, fmt.Errorf("APNS_ENVIRONMENT %q is neither production nor development", c.APNsEnvironment))
	}
	if c.FCMEndpoint != "" && !strings.HasPrefix(c.FCMEndpoint, "http") {
		errs = append(errs, fmt.Errorf("FCM_ENDPOINT %q is not an http(s) URL", c.FCMEndpoint))
	}
	if c.APNsEndpoint != "" && !strings.HasPrefix(c.APNsEndpoint, "https://") {
		errs = append(errs, fmt.Errorf("APNS_ENDPOINT %q is not an https URL (APNs is HTTP/2 over TLS)", c.APNsEndpoint))
	}
	for _, f := range []struct{ name, path string }{{"FCM_CREDENTIALS_FILE", c.FCMCredentialsFile}, {"APNS_KEY_FILE", c.APNsKeyFile}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.name, err))
		}
	}
	c.ProvidersFile = getenv("RINGER_PROVIDERS_FILE")
	if specs, err := providerSpecs(getenv, c); err != nil {
		errs = append(errs, err)
	} else {
		c.Providers = specs
	}
	if (c.DashboardUser == "") != (c.DashboardPassword == "") {
		errs = append(errs, errors.New("RINGER_DASHBOARD_USER and RINGER_DASHBOARD_PASSWORD go together: set both or neither"))
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		errs = append(errs, fmt.Errorf("RINGER_LOG_FORMAT %q is neither json nor text", c.LogFormat))
	}
	if lv, err := parseLogLevel(getenv("RINGER_LOG_LEVEL")); err != nil {
		errs = append(errs, err)
	} else {
		c.LogLevel = lv
	}
	errs = append(errs, c.loadHTTPTimeouts(getenv)...)
	c.ServeRing, c.ServeNotify = true, true
	if v := getenv("RINGER_QUEUES"); v != "" {
		c.ServeRing, c.ServeNotify = false, false
		for _, q := range strings.Split(v, ",") {
			switch strings.TrimSpace(q) {
			case "ring":
				c.ServeRing = true
			case "notify":
				c.ServeNotify = true
			default:
				errs = append(errs, fmt.Errorf("RINGER_QUEUES %q: each queue is ring or notify", v))
			}
		}
	}
	switch v := or(getenv("RINGER_NOTIFY_PROCESS"), "child"); v {
	case "child":
	case "inline":
		c.NotifyInline = true
	default:
		errs = append(errs, fmt.Errorf("RINGER_NOTIFY_PROCESS %q is neither child nor inline", v))
	}
	c.NotifyNice = 10
	if v := getenv("RINGER_NOTIFY_NICE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 19 {
			errs = append(errs, fmt.Errorf("RINGER_NOTIFY_NICE %q is not a niceness from 0 to 19", v))
		}
		c.NotifyNice = n
	}
	var err error
	if c.ShutdownTimeout, err = durationEnv(getenv, "RINGER_SHUTDOWN_TIMEOUT", 30*time.Second); err != nil {
		errs = append(errs, err)
	}
	if c.SchedSlice, err = durationEnv(getenv, "RINGER_SCHED_SLICE", defaultSchedSlice); err != nil {
		errs = append(errs, err)
	} else if c.SchedSlice != 0 && (c.SchedSlice < minSchedSlice || c.SchedSlice > maxSchedSlice) {
		errs = append(errs, fmt.Errorf("RINGER_SCHED_SLICE %q is outside 100us to 100ms (or 0, the kernel's own)", getenv("RINGER_SCHED_SLICE")))
	}
	if c.LogFlushInterval, err = durationEnv(getenv, "RINGER_LOG_FLUSH_INTERVAL", logwriter.DefaultInterval); err != nil {
		errs = append(errs, err)
	}
	if c.RingPollInterval, err = durationEnv(getenv, "RINGER_RING_POLL_INTERVAL", 0); err != nil {
		errs = append(errs, err)
	}
	if c.RingQueueBudget, err = durationEnv(getenv, "RINGER_RING_QUEUE_BUDGET", 2*time.Second); err != nil {
		errs = append(errs, err)
	}
	if c.NotifyTTL, err = positiveDurationEnv(getenv, "RINGER_NOTIFY_TTL", worker.DefaultNotifyTTL); err != nil {
		errs = append(errs, err)
	}
	c.RingRate = ratelimit.DefaultRate
	if v := getenv("RINGER_RING_RATE"); v != "" {
		if c.RingRate, err = ratelimit.ParseRate(v); err != nil {
			errs = append(errs, fmt.Errorf("RINGER_RING_RATE: %w", err))
		}
	}
	if c.CallRetention, err = positiveDurationEnv(getenv, "RINGER_CALL_RETENTION", 24*time.Hour); err != nil {
		errs = append(errs, err)
	}
	if c.CallMaxAge, err = positiveDurationEnv(getenv, "RINGER_CALL_MAX_AGE", 7*24*time.Hour); err != nil {
		errs = append(errs, err)
	}
	if c.ReminderLead, err = durationEnv(getenv, "RINGER_REMINDER_LEAD", calls.DefaultReminderLead); err != nil {
		errs = append(errs, err)
	}
	if c.RingConcurrency, err = intEnv(getenv, "RINGER_RING_CONCURRENCY"); err != nil {
		errs = append(errs, err)
	}
	if c.NotifyConcurrency, err = intEnv(getenv, "RINGER_NOTIFY_CONCURRENCY"); err != nil {
		errs = append(errs, err)
	}
	if c.QueueShards, err = intEnv(getenv, "RINGER_QUEUE_SHARDS"); err != nil {
		errs = append(errs, err)
	} else if c.QueueShards > queue.MaxShards {
		errs = append(errs, fmt.Errorf("RINGER_QUEUE_SHARDS %d is more than %d", c.QueueShards, queue.MaxShards))
	}
	if c.SSEPerUser, err = intEnv(getenv, "RINGER_SSE_PER_USER"); err != nil {
		errs = append(errs, err)
	}
	if c.SSEMax, err = intEnv(getenv, "RINGER_SSE_MAX"); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.loadWebhooks(getenv)...)
	return c, errors.Join(errs...)
}

// checkSecret refuses a missing or short secret; the error names where it came from (RINGER_API_SECRET,
// --secret), never its value.
func checkSecret(from, secret string) error {
	switch {
	case secret == "":
		return fmt.Errorf("%s is not set: it signs and checks every API token", from)
	case len(secret) < MinSecretBytes:
		return fmt.Errorf("%s is %d bytes, shorter than the %d required: make one with `openssl rand -hex 32`", from, len(secret), MinSecretBytes)
	}
	return nil
}

// loadHTTPTimeouts reads RINGER_HTTP_READ_TIMEOUT, RINGER_HTTP_WRITE_TIMEOUT and RINGER_HTTP_IDLE_TIMEOUT.
func (c *config) loadHTTPTimeouts(getenv func(string) string) []error {
	var errs []error
	for _, t := range []struct {
		name string
		dst  *time.Duration
		def  time.Duration
	}{
		{"RINGER_HTTP_READ_TIMEOUT", &c.HTTPReadTimeout, defaultHTTPReadTimeout},
		{"RINGER_HTTP_WRITE_TIMEOUT", &c.HTTPWriteTimeout, defaultHTTPWriteTimeout},
		{"RINGER_HTTP_IDLE_TIMEOUT", &c.HTTPIdleTimeout, defaultHTTPIdleTimeout},
	} {
		d, err := durationEnv(getenv, t.name, t.def)
		switch {
		case err != nil:
			errs = append(errs, err)
		case d == 0:
			errs = append(errs, fmt.Errorf("%s is 0: a server without it holds connections for ever", t.name))
		}
		*t.dst = d
	}
	if c.HTTPWriteTimeout > 0 && c.HTTPWriteTimeout <= api.DefaultRequestTimeout {
		errs = append(errs, fmt.Errorf("RINGER_HTTP_WRITE_TIMEOUT %s must be longer than the API's request timeout of %s", c.HTTPWriteTimeout, api.DefaultRequestTimeout))
	}
	return errs
}

// loadWebhooks reads the RINGER_WEBHOOK_* and RINGER_EVENTS_REPLAY settings.
func (c *config) loadWebhooks(getenv func(string) string) []error {
	var errs []error
	if v := getenv("RINGER_WEBHOOK_URL"); v != "" {
		for _, raw := range strings.Split(v, ",") {
			raw = strings.TrimSpace(raw)
			u, err := url.Parse(raw)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				errs = append(errs, fmt.Errorf("RINGER_WEBHOOK_URL: %q is not an http(s) URL", raw))
				continue
			}
			c.WebhookURLs = append(c.WebhookURLs, raw)
		}
	}
	c.WebhookSecret = getenv("RINGER_WEBHOOK_SECRET")
	if len(c.WebhookURLs) > 0 && c.WebhookSecret == "" {
		errs = append(errs, errors.New("RINGER_WEBHOOK_SECRET is not set: it signs every webhook, and RINGER_WEBHOOK_URL needs it"))
	}
	var err error
	if c.WebhookTimeout, err = durationEnv(getenv, "RINGER_WEBHOOK_TIMEOUT", 5*time.Second); err != nil {
		errs = append(errs, err)
	}
	if c.WebhookRetryBase, err = durationEnv(getenv, "RINGER_WEBHOOK_RETRY_BASE", 2*time.Second); err != nil {
		errs = append(errs, err)
	}
	if c.EventsReplay, err = durationEnv(getenv, "RINGER_EVENTS_REPLAY", 2*time.Minute); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// notifyChild says whether a worker runs its notify server in a child process.
func (c config) notifyChild() bool { return c.ServeRing && c.ServeNotify && !c.NotifyInline }

func (c config) fcmConfigured() bool  { return c.FCMCredentialsFile != "" }
func (c config) apnsConfigured() bool { return c.APNsKeyFile != "" }

// redisClient connects to the configured Redis or Redis Cluster.
func (c config) redisClient() (redis.UniversalClient, error) {
	if len(c.RedisClusterAddrs) > 0 {
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.RedisClusterAddrs}), nil
	}
	opt, err := redis.ParseURL(c.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	opt.PoolSize = max(opt.PoolSize, 256)
	return redis.NewClient(opt), nil
}

// asynqConn is the same connection in the form asynqmon takes.
func (c config) asynqConn() (asynq.RedisConnOpt, error) {
	if len(c.RedisClusterAddrs) > 0 {
		return asynq.RedisClusterClientOpt{Addrs: c.RedisClusterAddrs}, nil
	}
	return asynq.ParseRedisURI(c.RedisURL)
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func anySet(vs ...string) bool {
	for _, v := range vs {
		if v != "" {
			return true
		}
	}
	return false
}

func allSet(vs ...string) bool {
	for _, v := range vs {
		if v == "" {
			return false
		}
	}
	return true
}

func durationEnv(getenv func(string) string, name string, def time.Duration) (time.Duration, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s %q is not a duration like 30s", name, v)
	}
	return d, nil
}

// positiveDurationEnv is durationEnv for a duration that cannot be zero, at least a second (Redis keeps
// key lifetimes in milliseconds, and anything shorter would drop a call while it is being answered).
func positiveDurationEnv(getenv func(string) string, name string, def time.Duration) (time.Duration, error) {
	d, err := durationEnv(getenv, name, def)
	if err == nil && d < time.Second {
		return 0, fmt.Errorf("%s %q is shorter than 1s", name, getenv(name))
	}
	return d, err
}

func intEnv(getenv func(string) string, name string) (int, error) {
	v := getenv(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s %q is not a positive whole number", name, v)
	}
	return n, nil
}

// parseLogLevel reads RINGER_LOG_LEVEL: debug, info (the default, for an empty value), warn or error, in any
// case.
func parseLogLevel(v string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "debug":
		return slog.LevelDebug, nil
	case "", "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return slog.LevelInfo, fmt.Errorf("RINGER_LOG_LEVEL %q is none of debug, info, warn and error", v)
}
