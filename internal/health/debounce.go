package health

// debouncer turns a check's raw probe results into its debounced state.
//
// A new debouncer is "unknown": its first observation decides the state at
// once, so a node learns its health quickly at start. Afterwards the state
// flips to unhealthy only after fall consecutive failures, and back to
// healthy only after rise consecutive successes; a result that agrees with the
// current state resets the count, so alternating results never flip it (with
// fall and rise of 2 or more).
type debouncer struct {
	fall, rise int // at least 1 (values below 1 act as 1)

	known   bool
	healthy bool
	streak  int // consecutive results that disagree with healthy
}

// observe records one probe result and returns the debounced state and
// whether this observation changed it (the first observation always does).
func (d *debouncer) observe(ok bool) (state, changed bool) {
	if !d.known {
		d.known, d.healthy, d.streak = true, ok, 0
		return ok, true
	}
	if ok == d.healthy {
		d.streak = 0
		return d.healthy, false
	}
	d.streak++
	need := d.fall
	if ok {
		need = d.rise
	}
	if d.streak < max(need, 1) {
		return d.healthy, false
	}
	d.healthy, d.streak = ok, 0
	return ok, true
}
