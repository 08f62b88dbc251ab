package health

import (
	"fmt"
	"testing"
)

func TestDebouncer(t *testing.T) {
	const F, S = false, true
	tests := []struct {
		name       string
		fall, rise int
		in         []bool
		state      []bool // state after each observation
		changed    []bool // changed after each observation
	}{
		{"first success decides", 3, 3, []bool{S}, []bool{S}, []bool{true}},
		{"first failure decides", 3, 3, []bool{F}, []bool{F}, []bool{true}},
		{"steady healthy never changes", 2, 2,
			[]bool{S, S, S}, []bool{S, S, S}, []bool{true, false, false}},
		{"fall 2 needs two failures", 2, 2,
			[]bool{S, F, F, F}, []bool{S, S, F, F}, []bool{true, false, true, false}},
		{"rise 2 needs two successes", 2, 2,
			[]bool{F, S, S, S}, []bool{F, F, S, S}, []bool{true, false, true, false}},
		{"a success resets the failure count", 2, 2,
			[]bool{S, F, S, F, F}, []bool{S, S, S, S, F}, []bool{true, false, false, false, true}},
		{"alternating never flips from healthy", 2, 2,
			[]bool{S, F, S, F, S, F, S, F}, []bool{S, S, S, S, S, S, S, S},
			[]bool{true, false, false, false, false, false, false, false}},
		{"alternating never flips from unhealthy", 2, 2,
			[]bool{F, S, F, S, F, S}, []bool{F, F, F, F, F, F},
			[]bool{true, false, false, false, false, false}},
		{"fall 1 and rise 1 follow every result", 1, 1,
			[]bool{S, F, S, S, F}, []bool{S, F, S, S, F}, []bool{true, true, true, false, true}},
		{"fall 3 rise 1", 3, 1,
			[]bool{S, F, F, F, S}, []bool{S, S, S, F, S}, []bool{true, false, false, true, true}},
		{"zero counts act as 1", 0, 0,
			[]bool{S, F, S}, []bool{S, F, S}, []bool{true, true, true}},
		{"full cycle", 2, 3,
			[]bool{S, F, F, S, S, S, F},
			[]bool{S, S, F, F, F, S, S},
			[]bool{true, false, true, false, false, true, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := debouncer{fall: tt.fall, rise: tt.rise}
			for i, ok := range tt.in {
				state, changed := d.observe(ok)
				if state != tt.state[i] || changed != tt.changed[i] {
					t.Fatalf("observation %d (%v) of %v: got state=%v changed=%v, want state=%v changed=%v",
						i, ok, fmt.Sprint(tt.in), state, changed, tt.state[i], tt.changed[i])
				}
			}
		})
	}
}
