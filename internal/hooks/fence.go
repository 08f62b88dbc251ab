package hooks

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// Target is the holder to fence.
type Target struct {
	MAC       string
	Node      string // "" if unknown
	LastSeen  time.Time
	Group     string
	VIPs      []string
	Interface string
}

// Env returns the environment given to the fence command: PATH=/usr/sbin:/usr/bin:/sbin:/bin,
// FLOATIP_FENCE_MAC, FLOATIP_FENCE_NODE, FLOATIP_FENCE_LAST_SEEN (RFC 3339
// with milliseconds, "" if zero), FLOATIP_GROUP, FLOATIP_VIPS (space
// separated), FLOATIP_INTERFACE, and nothing else.
func (t Target) Env() []string {
	return []string{
		pathEnv,
		"FLOATIP_FENCE_MAC=" + envValue(t.MAC),
		"FLOATIP_FENCE_NODE=" + envValue(t.Node),
		"FLOATIP_FENCE_LAST_SEEN=" + rfc3339ms(t.LastSeen),
		"FLOATIP_GROUP=" + envValue(t.Group),
		"FLOATIP_VIPS=" + envValue(strings.Join(t.VIPs, " ")),
		"FLOATIP_INTERFACE=" + envValue(t.Interface),
	}
}

// Args returns the arguments appended after the fence command: MAC NODE.
func (t Target) Args() []string { return []string{t.MAC, t.Node} }

// Fence runs command (Target.Args appended, Target.Env as its environment)
// and waits for it. Success is exit status 0 within timeout (DefaultTimeout
// when zero); otherwise the error is a *RunError saying what happened, e.g.
// "fence command /usr/sbin/fence exited with status 2: <first line of
// output>", "... timed out after 30s", "... not found". When ctx is done
// first the process group is killed and the error wraps ctx.Err(). The
// output is logged line by line at Info ("fence output"), then the outcome
// ("fence command finished"); log may be nil.
func Fence(ctx context.Context, command []string, timeout time.Duration, t Target, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	what := "fence command"
	if len(command) > 0 {
		what += " " + command[0]
	}
	r := run(ctx, what, append(slices.Clone(command), t.Args()...), t.Env(), timeout)
	name := ""
	if len(command) > 0 {
		name = command[0]
	}
	logOutput(log, "fence output", "command", name, r)
	log.Info("fence command finished", "command", name, "group", t.Group, "mac", t.MAC,
		"node", t.Node, "duration", r.duration, "status", exitStatus(r.err), "ok", r.err == nil)
	if r.err != nil {
		return r.err
	}
	return nil
}
