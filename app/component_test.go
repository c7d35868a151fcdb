package app

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"
)

func recorder(name string, log *[]string, startErr error) Funcs {
	return Funcs{
		OnStart: func(context.Context) error {
			*log = append(*log, "start "+name)
			return startErr
		},
		OnShutdown: func(context.Context) error { *log = append(*log, "stop "+name); return nil },
	}
}

func TestComponentsStartInOrderAndStopInReverseOrder(t *testing.T) {
	var got []string
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := Run(ctx, quiet, 0, recorder("child", &got, nil), recorder("worker", &got, nil), recorder("http", &got, nil)); err != nil {
		t.Fatal(err)
	}
	want := []string{"start child", "start worker", "start http", "stop http", "stop worker", "stop child"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestAComponentThatFailsToStartStopsTheOnesStartedBeforeIt(t *testing.T) {
	var got []string
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	boom := errors.New("address in use")
	err := Run(context.Background(), quiet, 0, recorder("worker", &got, nil), recorder("http", &got, boom), recorder("never", &got, nil))
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want %v", err, boom)
	}
	want := []string{"start worker", "start http", "stop worker"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}
