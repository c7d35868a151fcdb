package gate

// Every key of a call is built here. Keys of one call share the hash tag {cid}, so every script touches one
// Redis Cluster slot (ARCHITECTURE.md, invariant 2).

// CallKey is the key of one call's part named suffix: ringer:{<cid>}:<suffix>.
func CallKey(cid, suffix string) string { return "ringer:{" + cid + "}:" + suffix }

// RingKey is the hash of the call's current ring: id, ends_at (unix ms), live ("1" while ringing),
// accepted ("1" once a callee accepted), caller, caller_name, and at:<member> (unix ms the member was rung).
func RingKey(cid string) string { return CallKey(cid, "ring") }

// RingingKey is the sorted set of members still being rung in the current ring, scored by the unix ms at
// which each member's ring ends.
func RingingKey(cid string) string { return CallKey(cid, "ringing") }

// LeaseKey is held while a worker sends member's ring push (its value is the holder's id, renewed while it
// works) or while the push waits for a retry (leaseWaiting). A stop waits for a live holder, so it sees every
// device the ring reached; the watchdog re-enqueues a member whose lease lapsed with the push undelivered.
func LeaseKey(cid, ringID, member string) string {
	return CallKey(cid, "lease:"+ringID+":"+member)
}

// ReleasedKey is the release signal of member's lease: a list of one element while no live worker holds the
// lease, pushed by the release and emptied by the next admission. Waiters block on it (WaitIdle).
func ReleasedKey(cid, ringID, member string) string {
	return CallKey(cid, "released:"+ringID+":"+member)
}

// DeliveredKey is the set of members whose ring push is done (every device sent, pruned or refused).
func DeliveredKey(cid, ringID string) string { return CallKey(cid, "delivered:"+ringID) }

// LedgerKey is the set of device tokens that a push (named by its task id) reached
// (ARCHITECTURE.md, invariant 5).
func LedgerKey(cid, pushID string) string { return CallKey(cid, "sent:"+pushID) }

// BatchLedgerKey is LedgerKey for a notification batch: a ledger no script reads beside the call's other keys,
// under a hash tag of its own (the call and the push) rather than the call's. A big call's batches then
// record their pushes on every master of a Redis Cluster instead of all on the call's, where they were most
// of that master's work during a fan-out. It lapses by its own time to live, as every ledger does.
func BatchLedgerKey(cid, pushID string) string { return "ringer:{" + cid + "/" + pushID + "}:sent" }
