package hooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/floatip/floatip/internal/testutil"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// script writes an executable /bin/sh script into dir and returns its path.
func script(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func testLogger() (*slog.Logger, *testutil.SyncBuffer) {
	buf := &testutil.SyncBuffer{}
	return slog.New(slog.NewTextHandler(buf, nil)), buf
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func readLines(t *testing.T, p string) []string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}

// dumpScript writes its environment and then its arguments, one per line
// after a separator, to out.
func dumpScript(t *testing.T, dir, out string) string {
	return script(t, dir, "dump", fmt.Sprintf(`env > %[1]s.tmp
echo "--args--" >> %[1]s.tmp
for a in "$@"; do echo "[$a]" >> %[1]s.tmp; done
mv %[1]s.tmp %[1]s`, out))
}

// parseDump returns the environment (without the variables /bin/sh adds
// by itself) and the arguments written by dumpScript.
func parseDump(t *testing.T, p string) (env, args []string) {
	t.Helper()
	shellVars := []string{"PWD", "OLDPWD", "SHLVL", "_"}
	inArgs := false
	for _, l := range readLines(t, p) {
		switch {
		case l == "--args--":
			inArgs = true
		case inArgs:
			args = append(args, strings.TrimSuffix(strings.TrimPrefix(l, "["), "]"))
		default:
			name, _, _ := strings.Cut(l, "=")
			if !slices.Contains(shellVars, name) {
				env = append(env, l)
			}
		}
	}
	slices.Sort(env)
	return env, args
}

var testTime = time.Date(2025, 3, 4, 5, 6, 7, 890123456, time.UTC)

func TestEventEnvAndArgs(t *testing.T) {
	t.Setenv("FLOATIP_SECRET_FROM_DAEMON", "leak") // must not reach the hook
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	log, logs := testLogger()
	var mu sync.Mutex
	var results []error
	n := NewNotifier([]Hook{{Command: []string{dumpScript(t, dir, out), "first arg"}, Timeout: 5 * time.Second}}, log,
		func(hook string, err error) {
			mu.Lock()
			defer mu.Unlock()
			if hook != "dump" {
				t.Errorf("onResult hook = %q, want dump (base name)", hook)
			}
			results = append(results, err)
		})
	n.Notify(Event{
		Group: "web", VIPs: []string{"192.0.2.10", "192.0.2.11"}, Interface: "eth0", Node: "node-a",
		From: "standby", To: "holder", Reason: "holder 6a:00:00:00:00:13 silent for 3 probes", Time: testTime,
	})
	n.Close()

	env, args := parseDump(t, out)
	wantEnv := []string{
		"FLOATIP_EVENT=state_change",
		"FLOATIP_GROUP=web",
		"FLOATIP_INTERFACE=eth0",
		"FLOATIP_NEW_STATE=holder",
		"FLOATIP_NODE=node-a",
		"FLOATIP_OLD_STATE=standby",
		"FLOATIP_REASON=holder 6a:00:00:00:00:13 silent for 3 probes",
		"FLOATIP_TIME=2025-03-04T05:06:07.890Z",
		"FLOATIP_VIPS=192.0.2.10 192.0.2.11",
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
	}
	if !slices.Equal(env, wantEnv) {
		t.Errorf("env:\n got %q\nwant %q", env, wantEnv)
	}
	wantArgs := []string{"first arg", "holder", "web", "192.0.2.10,192.0.2.11", "standby"}
	if !slices.Equal(args, wantArgs) {
		t.Errorf("args = %q, want %q", args, wantArgs)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(results) != 1 || results[0] != nil {
		t.Errorf("results = %v, want one nil", results)
	}
	if !strings.Contains(logs.String(), `msg="notify hook done" hook=dump`) {
		t.Errorf("no \"notify hook done\" in log:\n%s", logs)
	}
}

func TestNotifyFiltersByOn(t *testing.T) {
	dir := t.TempDir()
	rec := script(t, dir, "rec", `echo "$1" >> "$0.out"`)
	all := filepath.Join(dir, "all")
	n := NewNotifier([]Hook{
		{Name: "only", Command: []string{rec}, On: []string{"holder", "fault"}},
		{Name: "all", Command: []string{script(t, dir, "all", `echo "$1" >> "$0.out"`)}},
	}, nil, nil)
	for _, to := range []string{"probing", "holder", "standby", "fault", "stopping"} {
		n.Notify(Event{Group: "g", From: "x", To: to})
	}
	n.Close()
	if got, want := readLines(t, rec+".out"), []string{"holder", "fault"}; !slices.Equal(got, want) {
		t.Errorf("hook with On: ran for %q, want %q", got, want)
	}
	if got, want := readLines(t, all+".out"), []string{"probing", "holder", "standby", "fault", "stopping"}; !slices.Equal(got, want) {
		t.Errorf("hook without On: ran for %q, want %q", got, want)
	}
}

func TestNotifyDoesNotBlock(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	slow := script(t, dir, "slow", fmt.Sprintf(`sleep 1; echo "$1 $FLOATIP_REASON" >> %s`, out))
	n := NewNotifier([]Hook{{Command: []string{slow}, Timeout: 10 * time.Second}}, nil, nil)
	start := time.Now()
	for i := range 5 {
		n.Notify(Event{Group: "g", To: "holder", Reason: strconv.Itoa(i)})
	}
	// A bound on blocking, not on speed: five runs take five seconds.
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Errorf("5 Notify calls took %v, want < 50ms", d)
	}
	n.Close()
	want := []string{"holder 0", "holder 1", "holder 2", "holder 3", "holder 4"}
	if got := readLines(t, out); !slices.Equal(got, want) {
		t.Errorf("runs = %q, want in order %q", got, want)
	}
}

// groupAlive tells whether a process other than a zombie is in process
// group pgid (zombies are not reaped when PID 1 does not reap orphans).
func groupAlive(t *testing.T, pgid int) []string {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatal(err)
	}
	var alive []string
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // exited meanwhile
		}
		// pid (comm) state ppid pgrp ...; comm may contain spaces.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if g, _ := strconv.Atoi(f[2]); g == pgid {
			alive = append(alive, string(b[:i+1]))
		}
	}
	return alive
}

func TestTimeoutKillsProcessGroup(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	hang := script(t, dir, "hang", fmt.Sprintf(`sleep 30 &
echo $$ > %[1]s.tmp; mv %[1]s.tmp %[1]s
echo started
wait`, pidFile))
	log, logs := testLogger()
	errs := make(chan error, 1)
	n := NewNotifier([]Hook{{Name: "hang", Command: []string{hang}, Timeout: 300 * time.Millisecond}}, log,
		func(_ string, err error) { errs <- err })
	start := time.Now()
	n.Notify(Event{To: "holder"})
	err := <-errs
	elapsed := time.Since(start)
	n.Close()

	var re *RunError
	if !errors.As(err, &re) || !re.TimedOut || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a timeout *RunError", err)
	}
	if want := "notify hook command " + hang + " timed out after 300ms: started"; err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
	if elapsed > 5*time.Second {
		t.Errorf("the run took %v after a 300ms timeout", elapsed)
	}
	pgid, err := strconv.Atoi(strings.TrimSpace(readLines(t, pidFile)[0]))
	if err != nil {
		t.Fatal(err)
	}
	// The kernel needs a moment to deliver SIGKILL to the orphaned sleep.
	var alive []string
	for range 100 {
		if alive = groupAlive(t, pgid); len(alive) == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(alive) > 0 {
		t.Errorf("processes of group %d still alive after the timeout: %q", pgid, alive)
	}
	for _, want := range []string{`msg="notify hook output" hook=hang line=started`, `msg="notify hook failed" hook=hang`, "status=-1"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}

func TestFailingHookReportsError(t *testing.T) {
	dir := t.TempDir()
	fail := script(t, dir, "fail", `echo "line one"; echo "line two" >&2; exit 3`)
	log, logs := testLogger()
	var got []error
	var mu sync.Mutex
	n := NewNotifier([]Hook{{Name: "failer", Command: []string{fail}}}, log, func(hook string, err error) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, err)
	})
	n.Notify(Event{To: "fault"})
	n.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] == nil {
		t.Fatalf("onResult errors = %v, want one non-nil", got)
	}
	var re *RunError
	if !errors.As(got[0], &re) || re.Status != 3 {
		t.Fatalf("err = %#v, want a *RunError with status 3", got[0])
	}
	if want := "notify hook command " + fail + " exited with status 3: line one"; got[0].Error() != want {
		t.Errorf("err = %q, want %q", got[0], want)
	}
	for _, want := range []string{
		`msg="notify hook output" hook=failer line="line one"`,
		`msg="notify hook output" hook=failer line="line two"`,
		`msg="notify hook failed" hook=failer`,
		"status=3",
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}

func TestOutputIsLimited(t *testing.T) {
	dir := t.TempDir()
	// 100 lines of 99 characters: 10000 bytes, more than OutputLimit.
	loud := script(t, dir, "loud", `i=0; while [ $i -lt 100 ]; do printf '%099d\n' $i; i=$((i+1)); done`)
	log, logs := testLogger()
	n := NewNotifier([]Hook{{Name: "loud", Command: []string{loud}}}, log, nil)
	n.Notify(Event{To: "holder"})
	n.Close()
	s := logs.String()
	if c := strings.Count(s, `msg="notify hook output"`); c != OutputLimit/100+2 { // 40 whole lines, a partial one, the note
		t.Errorf("%d output lines logged, want %d", c, OutputLimit/100+2)
	}
	if !strings.Contains(s, "output truncated after 4096 bytes") || !strings.Contains(s, `msg="notify hook done"`) {
		t.Errorf("log:\n%s", s)
	}
}

func TestQueueOverflowCoalescesToTheLatest(t *testing.T) {
	dir := t.TempDir()
	started, release, out := filepath.Join(dir, "started"), filepath.Join(dir, "release"), filepath.Join(dir, "out")
	blocker := script(t, dir, "block", fmt.Sprintf(`touch %s
while [ ! -e %s ]; do sleep 0.01; done
echo "$FLOATIP_GROUP $FLOATIP_REASON $FLOATIP_NEW_STATE" >> %s`, started, release, out))
	log, logs := testLogger()
	n := NewNotifier([]Hook{{Name: "block", Command: []string{blocker}}}, log, nil)
	n.Notify(Event{Group: "web", To: "holder", Reason: "0"})
	waitFor(t, "the first run", func() bool { return exists(started) })
	// The first run is out of the queue. Group db changes state once, then
	// web flaps: QueueSize-1 more fit, the rest replace web's newest queued
	// event, and the last (standby) is the state web ends in.
	n.Notify(Event{Group: "db", To: "holder", Reason: "db"})
	const flaps = 100
	states := []string{"standby", "holder"}
	for i := 1; i <= flaps; i++ {
		n.Notify(Event{Group: "web", To: states[i%2], Reason: strconv.Itoa(i)})
	}
	coalesced := uint64(flaps - (QueueSize - 1))
	if d := n.Coalesced("block"); d != coalesced {
		t.Errorf("Coalesced = %d, want %d", d, coalesced)
	}
	if c := strings.Count(logs.String(), `msg="notify hook queue full; a later event replaced a queued one" hook=block`); c != int(coalesced) {
		t.Errorf("%d queue-full warnings, want %d:\n%s", c, coalesced, logs)
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	n.Close()
	want := []string{"web 0 holder", "db db holder"}
	for i := 1; i < QueueSize-1; i++ {
		want = append(want, fmt.Sprintf("web %d %s", i, states[i%2]))
	}
	want = append(want, fmt.Sprintf("web %d %s", flaps, states[flaps%2]))
	if got := readLines(t, out); !slices.Equal(got, want) {
		t.Errorf("runs = %q,\nwant %q", got, want)
	}
}

func TestSlowHookSeesFinalStateOfEveryGroup(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	slow := script(t, dir, "slow", fmt.Sprintf(`sleep 0.05; echo "$FLOATIP_GROUP $FLOATIP_NEW_STATE $FLOATIP_REASON" >> %s`, out))
	n := NewNotifier([]Hook{{Name: "slow", Command: []string{slow}}}, nil, nil)
	// Many groups flapping at once, far faster than the hook runs.
	final := map[string]string{}
	states := []string{"holder", "standby", "fault"}
	for i := range 300 {
		g := fmt.Sprintf("g%d", i%20)
		e := Event{Group: g, To: states[(i/20+i)%3], Reason: strconv.Itoa(i)}
		n.Notify(e)
		final[g] = e.To + " " + e.Reason
	}
	n.Close()
	last := map[string]string{}
	lines := readLines(t, out)
	for _, l := range lines {
		g, rest, _ := strings.Cut(l, " ")
		last[g] = rest
	}
	for g, want := range final {
		if last[g] != want {
			t.Errorf("group %s: the hook last saw %q, want the final %q", g, last[g], want)
		}
	}
	if len(lines) > QueueSize+20+1 {
		t.Errorf("%d runs for 20 groups, want at most %d (the queue must stay bounded)", len(lines), QueueSize+21)
	}
}

func TestCloseWaitsForRunningHook(t *testing.T) {
	dir := t.TempDir()
	started, done := filepath.Join(dir, "started"), filepath.Join(dir, "done")
	h := script(t, dir, "h", fmt.Sprintf(`touch %s; sleep 0.5; touch %s`, started, done))
	n := NewNotifier([]Hook{{Command: []string{h}}}, nil, nil)
	n.Notify(Event{To: "holder"})
	waitFor(t, "the run", func() bool { return exists(started) })
	n.Close()
	if !exists(done) {
		t.Error("Close returned before the running hook finished")
	}
	n.Notify(Event{To: "standby"}) // ignored, no panic
	n.Close()                      // idempotent
}

func TestMissingHookCommand(t *testing.T) {
	errs := make(chan error, 2)
	n := NewNotifier([]Hook{
		{Command: []string{filepath.Join(t.TempDir(), "nope")}},
		{Name: "empty"},
	}, nil, func(_ string, err error) { errs <- err })
	n.Notify(Event{To: "holder"})
	n.Close()
	for range 2 {
		if err := <-errs; err == nil {
			t.Error("a missing or empty command succeeded")
		}
	}
}

func testTarget() Target {
	return Target{
		MAC: "6a:00:00:00:00:13", Node: "node-b", LastSeen: testTime,
		Group: "web", VIPs: []string{"192.0.2.10", "192.0.2.11"}, Interface: "eth0",
	}
}

func TestFenceSuccess(t *testing.T) {
	t.Setenv("FLOATIP_SECRET_FROM_DAEMON", "leak")
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	log, logs := testLogger()
	if err := Fence(t.Context(), []string{dumpScript(t, dir, out), "--pdu=1"}, 5*time.Second, testTarget(), log); err != nil {
		t.Fatalf("Fence: %v", err)
	}
	env, args := parseDump(t, out)
	wantEnv := []string{
		"FLOATIP_FENCE_LAST_SEEN=2025-03-04T05:06:07.890Z",
		"FLOATIP_FENCE_MAC=6a:00:00:00:00:13",
		"FLOATIP_FENCE_NODE=node-b",
		"FLOATIP_GROUP=web",
		"FLOATIP_INTERFACE=eth0",
		"FLOATIP_VIPS=192.0.2.10 192.0.2.11",
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
	}
	if !slices.Equal(env, wantEnv) {
		t.Errorf("env:\n got %q\nwant %q", env, wantEnv)
	}
	if want := []string{"--pdu=1", "6a:00:00:00:00:13", "node-b"}; !slices.Equal(args, want) {
		t.Errorf("args = %q, want %q", args, want)
	}
	if !strings.Contains(logs.String(), `msg="fence command finished"`) || !strings.Contains(logs.String(), "ok=true") {
		t.Errorf("log:\n%s", logs)
	}
}

func TestFenceUnknownNode(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	tg := testTarget()
	tg.Node, tg.LastSeen = "", time.Time{}
	if err := Fence(t.Context(), []string{dumpScript(t, dir, out)}, 0, tg, nil); err != nil {
		t.Fatalf("Fence: %v", err)
	}
	env, args := parseDump(t, out)
	for _, want := range []string{"FLOATIP_FENCE_NODE=", "FLOATIP_FENCE_LAST_SEEN="} {
		if !slices.Contains(env, want) {
			t.Errorf("env lacks %q: %q", want, env)
		}
	}
	if want := []string{"6a:00:00:00:00:13", ""}; !slices.Equal(args, want) {
		t.Errorf("args = %q, want %q (an empty NODE keeps its position)", args, want)
	}
}

func TestFenceFailure(t *testing.T) {
	dir := t.TempDir()
	fence := script(t, dir, "fence", `echo >&2; echo "PDU 10.0.0.5 refused login" >&2; echo more; exit 2`)
	log, logs := testLogger()
	err := Fence(t.Context(), []string{fence}, 5*time.Second, testTarget(), log)
	if want := "fence command " + fence + " exited with status 2: PDU 10.0.0.5 refused login"; err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	var re *RunError
	if !errors.As(err, &re) || re.Status != 2 || re.TimedOut || re.NotFound {
		t.Errorf("err = %#v", err)
	}
	for _, want := range []string{`msg="fence output" command=` + fence + ` line="PDU 10.0.0.5 refused login"`, "line=more", "status=2", "ok=false"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}

func TestFenceTimeout(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fence := script(t, dir, "fence", `sleep 30 & wait`)
	start := time.Now()
	err := Fence(t.Context(), []string{fence}, 200*time.Millisecond, testTarget(), nil)
	if want := "fence command " + fence + " timed out after 200ms"; err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err does not wrap context.DeadlineExceeded: %#v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Fence returned after %v with a 200ms timeout", d)
	}
}

func TestFenceCanceled(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fence := script(t, dir, "fence", `sleep 30 & wait`)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	err := Fence(ctx, []string{fence}, 30*time.Second, testTarget(), nil)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.HasSuffix(err.Error(), "was stopped: context deadline exceeded") {
		t.Fatalf("err = %v, want the caller's context error", err)
	}
}

func TestFenceMissingCommand(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "fence")
	err := Fence(t.Context(), []string{missing}, time.Second, testTarget(), nil)
	if want := "fence command " + missing + " not found"; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
	err = Fence(t.Context(), []string{"floatip-no-such-fence-agent"}, time.Second, testTarget(), nil)
	if want := "fence command floatip-no-such-fence-agent not found"; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
	var re *RunError
	if !errors.As(err, &re) || !re.NotFound {
		t.Errorf("err = %#v, want NotFound", err)
	}
	if err := Fence(t.Context(), nil, time.Second, testTarget(), nil); err == nil {
		t.Error("an empty fence command succeeded")
	}
}

// TestFenceWithoutNetCaps: run as root, the fence command and its children
// have neither CAP_NET_ADMIN (bit 12) nor CAP_NET_RAW (bit 13) in any set.
// (Notify hooks go through the same run; the integration test covers both.)
func TestFenceWithoutNetCaps(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true: run as root")
		}
		t.Skip("needs root")
	}
	// Exit 0 only when no capability line of the child or grandchild has
	// bit 12 or 13 (the 4th hex digit from the right is 0, 4, 8 or c).
	script := `for s in $(grep ^Cap /proc/self/status | cut -f2) $(sh -c 'grep ^Cap /proc/self/status' | cut -f2); do
		d=$(printf %s "$s" | rev | cut -c4)
		case $d in 0|4|8|c) ;; *) echo "has net caps: $s"; exit 1;; esac
	done`
	if err := Fence(t.Context(), []string{"sh", "-c", script}, 5*time.Second, testTarget(), nil); err != nil {
		t.Fatal(err)
	}
}

func TestForeignClaimEventEnv(t *testing.T) {
	e := Event{Group: "web", VIPs: []string{"192.0.2.10"}, From: "holder", To: ForeignClaim,
		Reason: "02:00:00:00:00:66 claims 192.0.2.10", Time: testTime,
		Foreign: &Foreign{MAC: "02:00:00:00:00:66", VIP: "192.0.2.10", Suppressed: 3}}
	env := e.Env()
	for _, want := range []string{"FLOATIP_EVENT=foreign_claim", "FLOATIP_FOREIGN_MAC=02:00:00:00:00:66",
		"FLOATIP_FOREIGN_VIP=192.0.2.10", "FLOATIP_FOREIGN_SUPPRESSED=3", "FLOATIP_NEW_STATE=foreign-claim"} {
		if !slices.Contains(env, want) {
			t.Errorf("env %q lacks %s", env, want)
		}
	}
	if args := e.Args(); args[0] != ForeignClaim {
		t.Errorf("args %q, want %s first", args, ForeignClaim)
	}
}

// On a full queue a foreign claim never displaces a state change (the hook
// must end on each group's final state): it replaces a queued foreign
// claim of its group, or is dropped itself.
func TestForeignClaimNeverDisplacesAStateChange(t *testing.T) {
	w := &worker{wake: make(chan struct{}, 1)}
	for i := range QueueSize {
		w.push(Event{Group: "web", To: fmt.Sprint("s", i)})
	}
	fc := Event{Group: "web", To: ForeignClaim, Foreign: &Foreign{MAC: "02:00:00:00:00:66"}}
	if old, replaced := w.push(fc); !replaced || old.Foreign == nil {
		t.Fatalf("foreign claim on a full queue of state changes: replaced %v, old %+v; want it dropped", replaced, old)
	}
	for _, e := range w.pending {
		if e.Foreign != nil {
			t.Fatal("the foreign claim displaced a state change")
		}
	}
	// A state change may replace the group's newest; then a foreign claim
	// replaces only a foreign claim.
	w.pending[len(w.pending)-1] = fc
	fc2 := fc
	fc2.Foreign = &Foreign{MAC: "02:00:00:00:00:67"}
	if old, _ := w.push(fc2); old.Foreign == nil || old.Foreign.MAC != "02:00:00:00:00:66" {
		t.Fatalf("replaced %+v, want the queued foreign claim", old)
	}
	if last := w.pending[len(w.pending)-1]; last.Foreign == nil || last.Foreign.MAC != "02:00:00:00:00:67" {
		t.Fatalf("last queued %+v, want the newer foreign claim", last)
	}
}
