package queue

import (
	"fmt"
	"slices"
	"testing"
)

// The Cluster specification's check value: CRC16 (XMODEM) of "123456789" is 0x31C3.
func TestKeySlotIsTheClusterSpecificationsCRC16(t *testing.T) {
	if got := keySlot("123456789"); got != 0x31C3 {
		t.Fatalf("keySlot(123456789) = %d, want %d", got, 0x31C3)
	}
}

func TestOneShardKeepsThePlainQueueNames(t *testing.T) {
	var zero Layout
	for _, l := range []Layout{zero, NewLayout(1), NewLayout(0)} {
		if got := l.Names(QueueRing); !slices.Equal(got, []string{QueueRing}) {
			t.Fatalf("Names(ring) = %v, want [ring]", got)
		}
		if got := l.For(QueueNotify, "notify:n1:3"); got != QueueNotify {
			t.Fatalf("For(notify) = %q, want notify", got)
		}
	}
}

// On a cluster whose masters hold equal runs of slots, as redis-cli --cluster create makes them, a shard count
// that is a multiple of the master count puts the same number of shards on every master.
func TestShardsSpreadEvenlyOverMastersHoldingEqualRunsOfSlots(t *testing.T) {
	for _, masters := range []int{2, 3, 4} {
		for _, n := range []int{masters, 2 * masters, 4 * masters} {
			for _, base := range []string{QueueRing, QueueWatch, QueueNotify, QueueWebhook} {
				names := ShardNames(base, n)
				if len(names) != n || names[0] != base {
					t.Fatalf("ShardNames(%s, %d) = %v", base, n, names)
				}
				perMaster := make([]int, masters)
				for _, name := range names {
					if Base(name) != base {
						t.Fatalf("Base(%q) = %q, want %q", name, Base(name), base)
					}
					perMaster[masterOf(keySlot(name), masters)]++
				}
				for m, c := range perMaster {
					if c != n/masters {
						t.Errorf("%d shards of %s over %d masters: master %d holds %d (%v), want %d", n, base, masters, m, c, names, n/masters)
					}
				}
			}
		}
	}
}

// masterOf is the master holding slot when masters hold equal runs of slots, as redis-cli's allocation does
// (the first masters take the rounding's extra slot).
func masterOf(slot uint16, masters int) int {
	per := float64(clusterSlots) / float64(masters)
	for m := range masters {
		if float64(slot) < float64(m+1)*per {
			return m
		}
	}
	return masters - 1
}

func TestATaskIDAlwaysLandsInTheSameShardAndIDsSpreadOverAll(t *testing.T) {
	l := NewLayout(6)
	seen := map[string]int{}
	for i := range 6000 {
		id := RingTaskID(fmt.Sprintf("r%d", i), "bob")
		q := l.For(QueueRing, id)
		if again := l.For(QueueRing, id); again != q {
			t.Fatalf("For(%s) = %s, then %s", id, q, again)
		}
		seen[q]++
	}
	for _, name := range l.Names(QueueRing) {
		if seen[name] < 800 {
			t.Errorf("shard %s took %d of 6000 tasks: %v", name, seen[name], seen)
		}
	}
}

func TestBaseStripsOnlyAShardNumber(t *testing.T) {
	for in, want := range map[string]string{"ring": "ring", "ring.12": "ring", "notify.3": "notify", "a.b": "a.b", "ring.": "ring.", "ring.-1": "ring.-1"} {
		if got := Base(in); got != want {
			t.Errorf("Base(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAWorkerServesShardsItFindsInRedisBesideItsOwn(t *testing.T) {
	got := AllShards(QueueRing, []string{"ring", "ring.5"}, []string{"notify", "ring.5", "ring.9", "ring", "webhook.2", "ringer"})
	if !slices.Equal(got, []string{"ring", "ring.5", "ring.9"}) {
		t.Fatalf("AllShards = %v", got)
	}
}
