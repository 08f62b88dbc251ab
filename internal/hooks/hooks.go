// Package hooks runs external commands for floatip: notify hooks on every
// state change (asynchronously, never blocking the state machine) and the
// fence command (STONITH) before taking over from a vanished holder.
//
// Commands run in their own process group with stdin from /dev/null, an
// environment made only of floatip's variables and a minimal PATH, and
// without floatip's CAP_NET_ADMIN and CAP_NET_RAW (package privdrop); the
// whole group is killed when the timeout runs out. Their output (stdout and stderr
// together, up to OutputLimit bytes) is logged line by line.
package hooks

import (
	"context"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/floatip/floatip/internal/election"
)

// Stopping is the new state a hook sees when its group stops (floatip
// stops, or a reload removed the group). It is a hook event, not a state of
// the machine: the machine's last transition, to election.StateStopped,
// reaches hooks under this name, which says what the hook can still do.
const Stopping = "stopping"

// StateName is how hooks name state s (FLOATIP_OLD_STATE,
// FLOATIP_NEW_STATE, the arguments): the state's own name, and Stopping for
// election.StateStopped.
func StateName(s election.State) string {
	if s == election.StateStopped {
		return Stopping
	}
	return s.String()
}

// ForeignClaim is the trigger (and Event.To) of a foreign-claim event: a
// host that is not an (authenticated) floatip peer claims one of the
// group's VIPs. Hooks get it only when their on: lists it: a hook written
// for state changes would take it for one.
const ForeignClaim = "foreign-claim"

// Event kinds, in FLOATIP_EVENT.
const (
	KindStateChange  = "state_change"
	KindForeignClaim = "foreign_claim"
)

// Triggers are what a hook may be limited to (the configuration's on:):
// the new states worth a command to an operator, and ForeignClaim.
func Triggers() []string {
	return append(StateTriggers(), ForeignClaim)
}

// StateTriggers are the new states of Triggers: a hook's default on:.
func StateTriggers() []string {
	return []string{
		StateName(election.StateHolder), StateName(election.StateStandby),
		StateName(election.StateFault), StateName(election.StateStopped),
	}
}

// QueueSize is how many events wait per hook while it runs. When the queue
// is full, a new event replaces an older one of the same group (coalescing),
// so the hook always sees each group's latest state; see Notifier.
const QueueSize = 16

// Event describes a state change for notify hooks.
type Event struct {
	Group     string
	VIPs      []string
	Interface string
	Node      string
	From, To  string // as StateName spells them: holder, standby, fault, stopping, probing, candidate...
	Reason    string
	Time      time.Time // Notify sets it to now when zero

	// Foreign is set for a foreign-claim event (To is ForeignClaim, From
	// the group's state): the claimant's MAC and the VIP it claimed.
	Foreign *Foreign
}

// Foreign is the claimant of a foreign-claim event.
type Foreign struct {
	MAC string
	VIP string
	// Suppressed is how many more such claims the rate limit left
	// unreported since the previous event.
	Suppressed uint64
}

// Env returns the environment given to hook commands: PATH=/usr/sbin:/usr/bin:/sbin:/bin,
// FLOATIP_GROUP, FLOATIP_VIPS (space separated), FLOATIP_INTERFACE,
// FLOATIP_NODE, FLOATIP_OLD_STATE, FLOATIP_NEW_STATE, FLOATIP_REASON,
// FLOATIP_TIME (RFC 3339 with milliseconds), FLOATIP_EVENT (state_change
// or foreign_claim), for a foreign claim FLOATIP_FOREIGN_MAC,
// FLOATIP_FOREIGN_VIP and FLOATIP_FOREIGN_SUPPRESSED, and nothing else.
func (e Event) Env() []string {
	kind := KindStateChange
	if e.Foreign != nil {
		kind = KindForeignClaim
	}
	env := []string{
		pathEnv,
		"FLOATIP_GROUP=" + envValue(e.Group),
		"FLOATIP_VIPS=" + envValue(strings.Join(e.VIPs, " ")),
		"FLOATIP_INTERFACE=" + envValue(e.Interface),
		"FLOATIP_NODE=" + envValue(e.Node),
		"FLOATIP_OLD_STATE=" + envValue(e.From),
		"FLOATIP_NEW_STATE=" + envValue(e.To),
		"FLOATIP_REASON=" + envValue(e.Reason),
		"FLOATIP_TIME=" + rfc3339ms(e.Time),
		"FLOATIP_EVENT=" + kind,
	}
	if f := e.Foreign; f != nil {
		env = append(env, "FLOATIP_FOREIGN_MAC="+envValue(f.MAC), "FLOATIP_FOREIGN_VIP="+envValue(f.VIP),
			"FLOATIP_FOREIGN_SUPPRESSED="+strconv.FormatUint(f.Suppressed, 10))
	}
	return env
}

// Args returns the arguments appended after the configured command:
// NEW_STATE GROUP VIPS (comma separated) OLD_STATE, keepalived style.
func (e Event) Args() []string {
	return []string{e.To, e.Group, strings.Join(e.VIPs, ","), e.From}
}

// Hook is a notify hook.
type Hook struct {
	Name    string        // for logs and metrics; defaults to the base name of Command[0]
	Command []string      // program and its first arguments; Event.Args are appended
	Timeout time.Duration // per run; DefaultTimeout when zero
	On      []string      // triggers (Triggers); empty means every state (StateTriggers)
}

// Notifier runs notify hooks asynchronously. Each hook has a queue of
// QueueSize events and one worker, so one hook's runs happen in order and
// never overlap. Under flapping the queue may fill: then a new event
// replaces the newest queued event of the same group (and, if the group has
// none queued, the oldest event of a group with a later one queued), so that
// the last event a hook sees for a group is always the group's final state.
// Each replaced event is counted and logged. Only when every queued event is
// the sole pending one of its group does the queue grow beyond QueueSize, by
// at most one event per group.
type Notifier struct {
	log      *slog.Logger
	onResult func(hook string, err error)

	mu      sync.RWMutex // guards closed against the sends in Notify
	closed  bool
	workers []*worker
	wg      sync.WaitGroup
}

type worker struct {
	hook      Hook
	wake      chan struct{} // capacity 1: there is something to do
	mu        sync.Mutex    // guards pending and done
	pending   []Event
	done      bool // Close was called: run what is pending, then stop
	coalesced atomic.Uint64
}

// NewNotifier starts one worker per hook. log may be nil (discard);
// onResult, if not nil, is called after every run with the hook's name and
// nil or a *RunError, from the hook's worker goroutine.
func NewNotifier(hooks []Hook, log *slog.Logger, onResult func(hook string, err error)) *Notifier {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Notifier{log: log, onResult: onResult}
	for _, h := range hooks {
		h.Command = slices.Clone(h.Command)
		h.On = slices.Clone(h.On)
		if h.Name == "" && len(h.Command) > 0 {
			h.Name = filepath.Base(h.Command[0])
		}
		w := &worker{hook: h, wake: make(chan struct{}, 1)}
		n.workers = append(n.workers, w)
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			for {
				e, ok := w.next()
				if !ok {
					return
				}
				n.run(w.hook, e)
			}
		}()
	}
	return n
}

// next waits for the oldest pending event; ok is false once the worker is
// closed and nothing is pending.
func (w *worker) next() (e Event, ok bool) {
	for {
		w.mu.Lock()
		if len(w.pending) > 0 {
			e = w.pending[0]
			w.pending = slices.Delete(w.pending, 0, 1)
			w.mu.Unlock()
			return e, true
		}
		done := w.done
		w.mu.Unlock()
		if done {
			return Event{}, false
		}
		<-w.wake
	}
}

// push queues e; when the queue is full it returns the event that e
// superseded (replaced is false if the queue grew instead).
func (w *worker) push(e Event) (old Event, replaced bool) {
	w.mu.Lock()
	defer func() {
		w.mu.Unlock()
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}()
	if len(w.pending) < QueueSize {
		w.pending = append(w.pending, e)
		return Event{}, false
	}
	victim := -1
	if e.Foreign != nil {
		// A foreign claim replaces only a queued foreign claim of its
		// group, never a state change: the hook must still end on each
		// group's final state. Else it is the one dropped.
		for i := len(w.pending) - 1; i >= 0; i-- {
			if old := w.pending[i]; old.Group == e.Group && old.Foreign != nil {
				w.pending = append(slices.Delete(w.pending, i, i+1), e)
				return old, true
			}
		}
		return e, true
	}
	for i := len(w.pending) - 1; i >= 0; i-- { // the same group's newest
		if w.pending[i].Group == e.Group {
			victim = i
			break
		}
	}
	if victim < 0 { // else the oldest event of a group queued again later
	search:
		for i, p := range w.pending {
			for _, q := range w.pending[i+1:] {
				if q.Group == p.Group {
					victim = i
					break search
				}
			}
		}
	}
	if victim < 0 {
		w.pending = append(w.pending, e)
		return Event{}, false
	}
	old = w.pending[victim]
	w.pending = append(slices.Delete(w.pending, victim, victim+1), e)
	return old, true
}

// Notify queues e for every hook whose On includes e.To. It never blocks.
// After Close it does nothing.
func (n *Notifier) Notify(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.VIPs = slices.Clone(e.VIPs) // the caller may reuse its slice
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.closed {
		return
	}
	for _, w := range n.workers {
		if len(w.hook.On) > 0 && !slices.Contains(w.hook.On, e.To) || len(w.hook.On) == 0 && e.Foreign != nil {
			continue
		}
		if old, replaced := w.push(e); replaced {
			total := w.coalesced.Add(1)
			n.log.Warn("notify hook queue full; a later event replaced a queued one", "hook", w.hook.Name,
				"group", e.Group, "skipped_from", old.From, "skipped_to", old.To, "from", e.From, "to", e.To,
				"coalesced_total", total)
		}
	}
}

// Coalesced returns how many queued events of the hook (or hooks) with that
// name were replaced by later ones because the queue was full.
func (n *Notifier) Coalesced(hook string) uint64 {
	var total uint64
	for _, w := range n.workers {
		if w.hook.Name == hook {
			total += w.coalesced.Load()
		}
	}
	return total
}

// Close stops accepting events, lets the queued runs finish (each bounded
// by its timeout) and waits for them. It may be called more than once.
func (n *Notifier) Close() {
	n.mu.Lock()
	if !n.closed {
		n.closed = true
		for _, w := range n.workers {
			w.mu.Lock()
			w.done = true
			w.mu.Unlock()
			select {
			case w.wake <- struct{}{}:
			default:
			}
		}
	}
	n.mu.Unlock()
	n.wg.Wait()
}

func (n *Notifier) run(h Hook, e Event) {
	argv := append(slices.Clone(h.Command), e.Args()...)
	what := "notify hook command"
	if len(h.Command) > 0 {
		what += " " + h.Command[0]
	}
	// Not cancelled by Close: queued runs finish, bounded by their timeout.
	r := run(context.Background(), what, argv, e.Env(), h.Timeout)
	logOutput(n.log, "notify hook output", "hook", h.Name, r)
	if r.err != nil {
		n.log.Warn("notify hook failed", "hook", h.Name, "group", e.Group, "to", e.To,
			"duration", r.duration, "err", r.err, "status", exitStatus(r.err))
	} else {
		n.log.Info("notify hook done", "hook", h.Name, "group", e.Group, "to", e.To,
			"duration", r.duration)
	}
	if n.onResult != nil {
		n.onResult(h.Name, r.err)
	}
}
