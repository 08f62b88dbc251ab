package lab

import (
	"strings"
	"testing"
)

func TestPriorityDistinct(t *testing.T) {
	for n := 1; n <= MaxNodes; n++ {
		seen := map[int]int{}
		for i := 1; i <= n; i++ {
			p := Priority(i, n)
			if p < 1 || p > 254 {
				t.Fatalf("Priority(%d, %d) = %d, outside 1..254", i, n, p)
			}
			if j, dup := seen[p]; dup {
				t.Fatalf("%d nodes: n%d and n%d both get priority %d", n, j, i, p)
			}
			seen[p] = i
		}
	}
	for i, want := range []int{200, 150, 100} {
		if p := Priority(i+1, 3); p != want {
			t.Errorf("Priority(%d, 3) = %d, want %d", i+1, p, want)
		}
	}
}

func TestTooManyNodesSaysTheLimit(t *testing.T) {
	o := Options{Nodes: 300, Binary: "/bin/sh"}
	err := o.setDefaults()
	if err == nil || !strings.Contains(err.Error(), "lab: 300 nodes: want 1 to 80 (one address each, 198.18.0.11 to 198.18.0.90, below the VIP)") {
		t.Errorf("300 nodes: %v", err)
	}
}
