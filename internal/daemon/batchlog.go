package daemon

import (
	"context"
	"log/slog"
	"sync"
)

// batchLog holds a group's log records while the group carries out one
// batch of its machine's actions, and writes them after the batch. A
// failover's frames and netlink calls then follow each other without a log
// write between them: a JSON record into a busy journal or pipe costs up to
// a millisecond, and the release frame, the new holder's netlink call and
// its gratuitous ARP are the gap in which a client's packets find no VIP
// (three to five records lay in that gap). Records keep the time they were
// made and their order.
type batchLog struct {
	mu      sync.Mutex
	holding bool
	recs    []heldRecord
}

type heldRecord struct {
	h slog.Handler
	r slog.Record
}

// logger wraps base so that its records wait while the batch is held.
func (b *batchLog) logger(base *slog.Logger) *slog.Logger {
	return slog.New(batchHandler{inner: base.Handler(), b: b})
}

// hold starts a batch: records wait until flush.
func (b *batchLog) hold() {
	b.mu.Lock()
	b.holding = true
	b.mu.Unlock()
}

// flush ends the batch and writes the records that waited, in order. The
// watchdog may call it for a group stuck mid-batch (stuckGroup): the rest
// of that batch then logs at once.
func (b *batchLog) flush() {
	b.mu.Lock()
	recs := b.recs
	b.recs, b.holding = nil, false
	b.mu.Unlock()
	for _, x := range recs {
		_ = x.h.Handle(context.Background(), x.r)
	}
}

type batchHandler struct {
	inner slog.Handler
	b     *batchLog
}

func (h batchHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h batchHandler) Handle(ctx context.Context, r slog.Record) error {
	h.b.mu.Lock()
	if h.b.holding {
		h.b.recs = append(h.b.recs, heldRecord{h.inner, r.Clone()})
		h.b.mu.Unlock()
		return nil
	}
	h.b.mu.Unlock()
	return h.inner.Handle(ctx, r)
}

func (h batchHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return batchHandler{inner: h.inner.WithAttrs(as), b: h.b}
}

func (h batchHandler) WithGroup(name string) slog.Handler {
	return batchHandler{inner: h.inner.WithGroup(name), b: h.b}
}
