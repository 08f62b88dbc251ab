// Package election is floatip's per-group state machine for ARP mode.
//
// It is pure: the daemon feeds it events (a frame seen, a tick, the link or an
// address changed, stop) together with the current time, and it answers with
// actions (send this frame, add or renew the VIPs, remove them, a state
// transition to log). It never reads a clock or touches the network, so the
// whole protocol is tested quickly and deterministically with a fake clock.
//
// The protocol in one paragraph: a starting node sends RFC 5227 ARP probes
// (sender IP 0.0.0.0) for the group's first VIP; after Misses consecutive
// probes went unanswered the VIP is free and the node claims it: it adds every
// VIP with a finite lifetime that it renews, then sends gratuitous ARP
// announcements. Other nodes stay standby and keep probing the holder, unicast
// to its MAC. When the holder stops answering (or says it releases the VIP)
// the standbys claim in priority order: each waits its rank among the live,
// better standbys it knows times ClaimSlot, and a waiting node broadcasts a
// probe flagged "claiming" so that a better standby that has not noticed yet
// checks the holder and claims first. Every frame floatip sends carries a
// small trailer in the Ethernet padding with the sender's priority, intent
// and node name, so nodes learn each other without a peer list (Peers; logs
// name them "n2 (mac)", peers: names first, see peers.go), and two holders
// (a healed partition, a race) resolve deterministically: higher priority,
// then lower MAC, keeps the VIP; the other deletes it and becomes standby.
//
// Every frame from the wire is hostile (guard.go). Without authentication
// the machine believes a frame only as far as it is consistent with what
// it observes: a holder yields to a better claimant only once that one
// answers a unicast check; a Release is obeyed only from the current
// holder, a Takeover only with preempt on; fencing runs only against a
// holder that answered our checks (and, with fencing required, is in
// FenceAllowed); claim deferrals, the peer table and conflict answers are
// bounded. That bounds what a forged frame costs; it cannot stop a forger
// that impersonates a peer frame for frame. With Params.AuthRequired only
// frames the codec authenticated (Frame.Authenticated) reach the election;
// the others are looked at only to report claims by hosts that are not
// floatip peers (ForeignClaim).
package election
