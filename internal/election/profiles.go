package election

import "time"

// The shipped timing profiles, spelled once: the configuration's `profile:`
// selects one, and the tests of this package run under each.
const (
	ProfileDefault = "default"
	ProfileFast    = "fast"
)

// Profiles lists the shipped profiles' names.
func Profiles() []string { return []string{ProfileDefault, ProfileFast} }

// Preset returns the timing of a shipped profile; ok is false for an
// unknown name.
func Preset(name string) (t Timing, ok bool) {
	switch name {
	case ProfileDefault:
		return Timing{
			CheckInterval:    50 * time.Millisecond,
			Misses:           3,
			ClaimSlot:        50 * time.Millisecond,
			AnnounceCount:    3,
			AnnounceInterval: 100 * time.Millisecond,
			Lifetime:         3 * time.Second,
			RenewInterval:    1500 * time.Millisecond,
			BeaconInterval:   500 * time.Millisecond,
		}, true
	case ProfileFast:
		return Timing{
			CheckInterval:    10 * time.Millisecond,
			Misses:           3,
			ClaimSlot:        10 * time.Millisecond,
			AnnounceCount:    3,
			AnnounceInterval: 20 * time.Millisecond,
			Lifetime:         2 * time.Second,
			RenewInterval:    500 * time.Millisecond,
			BeaconInterval:   500 * time.Millisecond,
		}, true
	}
	return Timing{}, false
}
