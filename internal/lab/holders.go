package lab

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// HolderPoll is how often WaitHolders and a HolderRecorder read the holders.
const HolderPoll = 10 * time.Millisecond

// WaitHolders polls Holders every HolderPoll until want(holders) holds, ctx
// ends, or timeout passes; it returns the last holders seen either way. It
// gives up early when one of the watched processes (the daemons) exits, with
// that process's last output, and adds the watched processes' last output to
// a timeout.
func (l *Lab) WaitHolders(ctx context.Context, want func([]string) bool, timeout time.Duration, watch ...*Proc) ([]string, error) {
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	for _, p := range watch {
		go func() {
			select {
			case <-p.Done():
				cancel(fmt.Errorf("lab: %s exited (%v) while waiting for the holders; its last output: %s", p.Name, p.Wait(), p.Tail(8)))
			case <-wctx.Done():
			}
		}()
	}
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(HolderPoll)
	defer tick.Stop()
	for {
		h, err := l.Holders()
		if err != nil {
			return h, err
		}
		if want(h) {
			return h, nil
		}
		if time.Now().After(deadline) {
			return h, fmt.Errorf("lab: holders still %v after %v%s", h, timeout, tails(watch, 4))
		}
		select {
		case <-wctx.Done():
			if cause := context.Cause(wctx); ctx.Err() == nil && cause != nil && !errors.Is(cause, context.Canceled) {
				return h, cause
			}
			return h, fmt.Errorf("lab: waiting for holders (now %v): %w", h, ctx.Err())
		case <-tick.C:
		}
	}
}

// tails is "; last output of P: ..." for each process.
func tails(procs []*Proc, n int) string {
	var b strings.Builder
	for _, p := range procs {
		fmt.Fprintf(&b, "; last output of %s: %s", p.Name, p.Tail(n))
	}
	return b.String()
}

// HolderObs is one reading of the VIP's holders.
type HolderObs struct {
	At      time.Time
	Holders []string
}

// HolderChange is a change of the VIP's holders between two readings.
type HolderChange struct {
	At       time.Time
	From, To []string
}

// String is "VIP holders: n1 -> n1,n2" ("none" for no holder).
func (c HolderChange) String() string {
	return "VIP holders: " + noneOr(c.From) + " -> " + noneOr(c.To)
}

func noneOr(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ",")
}

// HolderRecorder reads the lab's holders every HolderPoll on its own
// goroutine, as the kernel sees them (independent of what the daemons log),
// and keeps the first reading and each one that differs from the one before,
// so it can run for hours. Stop ends it.
type HolderRecorder struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu  sync.Mutex
	obs []HolderObs
}

// RecordHolders starts a HolderRecorder; it runs until Stop or ctx ends.
func (l *Lab) RecordHolders(ctx context.Context) *HolderRecorder {
	ctx, cancel := context.WithCancel(ctx)
	r := &HolderRecorder{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		tick := time.NewTicker(HolderPoll)
		defer tick.Stop()
		for {
			at := time.Now()
			if h, err := l.Holders(); err == nil {
				r.mu.Lock()
				if len(r.obs) == 0 || !slices.Equal(r.obs[len(r.obs)-1].Holders, h) {
					r.obs = append(r.obs, HolderObs{At: at, Holders: h})
				}
				r.mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return r
}

// Observations returns the readings so far: the first and each change, in
// time order. Each holds until the next (the last until now).
func (r *HolderRecorder) Observations() []HolderObs {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.obs)
}

// Changes returns the changes so far, in time order.
func (r *HolderRecorder) Changes() []HolderChange {
	obs := r.Observations()
	var out []HolderChange
	for i := 1; i < len(obs); i++ {
		out = append(out, HolderChange{At: obs[i].At, From: obs[i-1].Holders, To: obs[i].Holders})
	}
	return out
}

// Stop ends the recording (idempotent) and returns the observations.
func (r *HolderRecorder) Stop() []HolderObs {
	r.cancel()
	<-r.done
	return r.Observations()
}
