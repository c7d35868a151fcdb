package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/tests/testredis"
)

// The profiled worker is built by the same builder as `ringer worker`, so its watchdog has the queue it
// schedules the next tick on: a tick of a live ring is handled and schedules its successor.
func TestTheProfiledWorkerHandlesAWatchdogTickOfALiveRing(t *testing.T) {
	ctx := context.Background()
	rdb := testredis.Start(t).Client(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := profiledApp(ctx, "worker", func(string) string { return "" }, rdb, log)
	if err != nil {
		t.Fatal(err)
	}
	call := queue.CallInfo{CID: "default:watched", Type: "default", ID: "watched", CreatedByID: "alice"}
	now := time.Now()
	if err := a.Queue.Ring(ctx, call, "r1", []queue.RingMember{{UserID: "bob", EndsAt: now.Add(30 * time.Second)}}); err != nil {
		t.Fatal(err)
	}
	tick := now.UnixMilli()/queue.WatchInterval.Milliseconds() + 1
	payload, err := json.Marshal(queue.WatchTask{Call: call, RingID: "r1", Tick: tick})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Worker.HandleWatch(ctx, asynq.NewTask(queue.TypeWatch, payload)); err != nil {
		t.Fatalf("watchdog tick: %v", err)
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	if _, err := insp.GetTaskInfo(queue.QueueWatch, queue.WatchTaskID("r1", tick+1)); err != nil {
		t.Fatalf("the tick did not schedule the next one: %v", err)
	}
}
