package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/ringer-dev/ringer/calls"
	"github.com/ringer-dev/ringer/worker"
)

// Component is one running part of a process.
type Component interface {
	// Start runs the component until ctx ends or Shutdown; it returns once the component runs.
	Start(ctx context.Context) error
	// Shutdown stops the component, letting its work in flight finish within ctx or its own bound.
	Shutdown(ctx context.Context) error
}

// Failer is a component that can fail while it runs: Run stops the process when Failed yields an error.
type Failer interface {
	Failed() <-chan error
}

// Run starts components in order, runs them until ctx ends or one fails, then shuts them down in reverse
// order, each given drain to finish its work in flight. A component that fails to start stops the ones
// started before it.
func Run(ctx context.Context, log *slog.Logger, drain time.Duration, components ...Component) error {
	var started []Component
	shutdown := func() {
		drainCtx, cancel := context.WithTimeout(context.Background(), drain)
		defer cancel()
		for i := len(started) - 1; i >= 0; i-- {
			if err := started[i].Shutdown(drainCtx); err != nil {
				log.Warn("shutdown cut short", "component", fmt.Sprintf("%T", started[i]), "err", err)
			}
		}
	}
	failed := make(chan error, len(components))
	for _, c := range components {
		if err := c.Start(ctx); err != nil {
			shutdown()
			return err
		}
		started = append(started, c)
		if f, ok := c.(Failer); ok {
			go func() {
				if err := <-f.Failed(); err != nil {
					failed <- err
				}
			}()
		}
	}
	select {
	case <-ctx.Done():
		log.Info("draining", "timeout", drain)
		shutdown()
		log.Info("stopped")
		return nil
	case err := <-failed:
		shutdown()
		return err
	}
}

// Funcs is a component made of two functions; either may be nil.
type Funcs struct {
	OnStart    func(ctx context.Context) error
	OnShutdown func(ctx context.Context) error
}

func (f Funcs) Start(ctx context.Context) error {
	if f.OnStart == nil {
		return nil
	}
	return f.OnStart(ctx)
}

func (f Funcs) Shutdown(ctx context.Context) error {
	if f.OnShutdown == nil {
		return nil
	}
	return f.OnShutdown(ctx)
}

// workerComponent runs the worker's Asynq servers.
type workerComponent struct {
	w   *worker.Worker
	log *slog.Logger
}

func (c workerComponent) Start(context.Context) error {
	if err := c.w.Start(); err != nil {
		return err
	}
	c.log.Info("worker started")
	return nil
}

// Shutdown is bounded by the worker's own ShutdownTimeout: Asynq hands back what is still running then.
func (c workerComponent) Shutdown(context.Context) error {
	c.w.Shutdown()
	return nil
}

// sweeper enqueues the webhooks of events whose process died before it enqueued them.
type sweeper struct{ store *calls.Store }

func (s sweeper) Start(ctx context.Context) error {
	go s.store.RunOutboxSweeper(ctx)
	return nil
}

// Shutdown has nothing to wait for: the sweeper stops with the process's context.
func (s sweeper) Shutdown(context.Context) error { return nil }

// HTTPServer serves Handler on Addr.
type HTTPServer struct {
	Addr    string
	Handler http.Handler
	// AddrFrom names where Addr came from in errors (RINGER_ADDR).
	AddrFrom string
	// Timeouts of http.Server; zero is none.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// OnListen is told the address once the server listens.
	OnListen func(addr string)

	srv    *http.Server
	failed chan error
}

// Start listens and serves in the background. The requests' contexts derive from ctx, so the event streams
// end with it while other requests finish (Shutdown).
func (h *HTTPServer) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", h.Addr)
	if err != nil {
		return fmt.Errorf("%s %s: %w", h.AddrFrom, h.Addr, err)
	}
	h.srv = &http.Server{
		Handler:           h.Handler,
		ReadHeaderTimeout: h.ReadHeaderTimeout,
		ReadTimeout:       h.ReadTimeout,
		WriteTimeout:      h.WriteTimeout,
		IdleTimeout:       h.IdleTimeout,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	h.failed = make(chan error, 1)
	go func() {
		if err := h.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			h.failed <- fmt.Errorf("http server: %w", err)
		}
	}()
	if h.OnListen != nil {
		h.OnListen(ln.Addr().String())
	}
	return nil
}

// Failed yields the server's error if it stops serving on its own.
func (h *HTTPServer) Failed() <-chan error { return h.failed }

// Shutdown stops taking requests and finishes those in flight within ctx.
func (h *HTTPServer) Shutdown(ctx context.Context) error {
	if err := h.srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("http drain: %w", err)
	}
	return nil
}
