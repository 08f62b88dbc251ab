package daemon

import (
	"context"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
)

// systemd tells systemd (Type=notify) that the daemon is ready and, when the
// unit sets WatchdogSec=, pings the watchdog while every group's goroutine
// keeps turning: a group stuck for a whole watchdog interval stops the
// pings and systemd restarts the daemon. Without systemd it does nothing.
func (d *daemon) systemd(ctx context.Context) {
	if _, err := sd.SdNotify(false, sd.SdNotifyReady); err != nil {
		d.log.Warn("telling systemd we are ready", "err", err)
	}
	interval, err := sd.SdWatchdogEnabled(false)
	if err != nil || interval <= 0 {
		return
	}
	t := time.NewTicker(interval / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if stuck := d.stuckGroup(interval); stuck != "" {
			d.log.Error("group loop stuck; withholding the watchdog ping", "group", stuck)
			continue
		}
		sd.SdNotify(false, sd.SdNotifyWatchdog)
	}
}

// stuckGroup names a group whose loop has not turned for limit, and
// writes the log records its batch holds (batchLog): systemd restarts the
// daemon soon, and the log must say what the group was doing.
func (d *daemon) stuckGroup(limit time.Duration) string {
	for _, g := range d.allGroups() {
		if d.since(d.started)-time.Duration(g.heartbeat.Load()) > limit {
			g.logBatch.flush()
			return g.name
		}
	}
	return ""
}

// notifyStopping tells systemd the daemon is releasing its VIPs.
func notifyStopping() { sd.SdNotify(false, sd.SdNotifyStopping) }
