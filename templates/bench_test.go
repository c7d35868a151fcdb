package templates_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/ringer-dev/ringer/providers"
	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/templates"
)

// typicalData is a call's data as most pushes carry it.
var typicalData = templates.Data{
	CallCID: "default:standup-42", CallType: "default", CallID: "standup-42", CallDisplayName: "Standup",
	CallerID: "alice", CallerName: "Alice Liddell", ReceiverID: "bob", Video: true,
	Custom: map[string]any{"topic": "weekly sync", "display_name": "Standup"},
}

// BenchmarkRender is the alert text of one push, as the worker renders it for every notification and
// missed-call push (and a ring to a regular APNs token): typical call data, then the worst case the size
// budget is checked against (every field at FieldLimit, a 5 KiB custom object).
func BenchmarkRender(b *testing.B) {
	set := load(b, "")
	typical := typicalData
	long := strings.Repeat("é", templates.FieldLimit)
	custom := map[string]any{}
	for i := 0; len(custom) < 40; i++ {
		custom[strings.Repeat(string(rune('a'+i%26)), 1+i/26)] = strings.Repeat("x", 120)
	}
	worst := templates.Data{
		CallCID: "default:" + strings.Repeat("c", 64), CallType: "default", CallID: strings.Repeat("c", 64),
		CallDisplayName: long, CallerID: strings.Repeat("u", 128), CallerName: long, ReceiverID: strings.Repeat("r", 128),
		Video: true, Custom: custom,
	}
	for _, tc := range []struct {
		name string
		data templates.Data
	}{{"typical", typical}, {"worst", worst}} {
		for _, ev := range []string{queue.EventNotification, queue.EventMissed, queue.EventRing} {
			for _, pl := range []string{providers.Firebase, providers.APN} {
				b.Run(tc.name+"/"+ev+"/"+pl, func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						if _, err := set.Render(ev, pl, tc.data); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}

// BenchmarkLoad is a start of the worker: parse the built-in templates and check each against its budget.
func BenchmarkLoad(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := templates.Load(""); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMemoRender is a notification task's texts: 100 receivers of one call, each rendered through one
// Memo (as the worker does) or each on its own.
func BenchmarkMemoRender(b *testing.B) {
	set := load(b, "")
	d := typicalData
	for _, memo := range []bool{false, true} {
		b.Run(map[bool]string{false: "each", true: "memo"}[memo], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				m := set.Memo()
				for i := range 100 {
					d.ReceiverID = "member-" + strconv.Itoa(i)
					var err error
					if memo {
						_, err = m.Render(queue.EventNotification, providers.Firebase, d)
					} else {
						_, err = set.Render(queue.EventNotification, providers.Firebase, d)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
