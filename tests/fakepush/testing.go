package fakepush

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// What tests of a push client (providers/apns, providers/fcm) and of the fakes themselves share.

// Context is a context that ends after d, or when the test's cleanup runs: the bound on one send to a fake.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// CallData is the data of a push of type typ about call default:abc that alice rings bob in, with every field
// API.md lists for a call push.
func CallData(typ string, video bool) map[string]string {
	return map[string]string{
		"sender": "ringer", "type": typ, "call_cid": "default:abc", "call_type": "default", "call_id": "abc",
		"call_display_name": "Standup", "created_by_id": "alice", "created_by_display_name": "Alice",
		"receiver_id": "bob", "ring_id": "r1", "video": strconv.FormatBool(video),
	}
}
