package etcd

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// The first attempt hangs (a dead member's connection); the second,
// sent beside it after `every`, answers: hedged returns that answer
// without waiting for the first attempt's timeout, and only after the
// first attempt ended.
func TestHedgedSecondAttemptAnswers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls, running atomic.Int32
		start := time.Now()
		v, err := hedged(context.Background(), 100*time.Millisecond, time.Second, func(ctx context.Context) (int, error) {
			running.Add(1)
			defer running.Add(-1)
			if calls.Add(1) == 1 {
				<-ctx.Done() // hangs until cancelled or timed out
				return 0, ctx.Err()
			}
			return 7, nil
		})
		if err != nil || v != 7 {
			t.Fatalf("got %d, %v; want 7", v, err)
		}
		if took := time.Since(start); took != 100*time.Millisecond {
			t.Fatalf("answered after %v, want the hedge interval (100ms)", took)
		}
		if n := running.Load(); n != 0 {
			t.Fatalf("%d attempts still running after hedged returned", n)
		}
	})
}

// Every attempt timing out gives a timeout after at most maxHedged
// attempts; another error ends it at once.
func TestHedgedErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		_, err := hedged(context.Background(), 100*time.Millisecond, time.Second, func(ctx context.Context) (int, error) {
			calls.Add(1)
			<-ctx.Done()
			return 0, ctx.Err()
		})
		if !errors.Is(err, context.DeadlineExceeded) || calls.Load() != maxHedged {
			t.Fatalf("all time out: err %v after %d calls, want a timeout after %d", err, calls.Load(), maxHedged)
		}
		bad := errors.New("permission denied")
		calls.Store(0)
		_, err = hedged(context.Background(), 100*time.Millisecond, time.Second, func(ctx context.Context) (int, error) {
			calls.Add(1)
			return 0, bad
		})
		if !errors.Is(err, bad) || calls.Load() != 1 {
			t.Fatalf("an error: %v after %d calls, want it after 1", err, calls.Load())
		}
	})
}
