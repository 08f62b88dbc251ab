package control

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/election"
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// sampleStatus is a node holding one group and standing by for another.
func sampleStatus() Status {
	return Status{
		Node:      "node-a",
		Interface: "eth0",
		Version:   "v1.2.0",
		PID:       4242,
		Started:   t0.Add(-(3*time.Hour + 25*time.Minute + 10*time.Second)),
		Groups: []Group{
			{
				Name:         "web",
				VIPs:         []string{"192.0.2.10", "192.0.2.11"},
				State:        election.StateHolder,
				Since:        t0.Add(-12 * time.Second),
				Reason:       "holder 02:00:00:00:00:02 silent for 3 consecutive probes (rank 0 among live standbys)",
				Holder:       "02:00:00:00:00:01",
				Priority:     200,
				LastProbe:    t0.Add(-(12*time.Second + 40*time.Millisecond)),
				LastAnnounce: t0.Add(-11 * time.Second),
				Counters:     Counters{Claims: 1, Releases: 0, Conflicts: 0, ProbesUnanswered: 3, Transitions: 4},
				Health: []Check{
					{Name: "http", Healthy: true, Detail: "200 OK", Last: t0.Add(-time.Second)},
				},
				Peers: []Peer{
					{Name: "node-b", NameSource: "peers", MAC: "02:00:00:00:00:02", Priority: 150, Role: election.RoleStandby, Healthy: true, LastHeard: t0.Add(-400 * time.Millisecond)},
					{Name: "node-c", NameSource: "frames", MAC: "02:00:00:00:00:03", Priority: 100, Role: election.RolePassive, LastHeard: t0.Add(-2 * time.Second)},
					{MAC: "02:00:00:00:00:04", Priority: 50, Role: election.RoleStandby, Healthy: true, LastHeard: t0.Add(-12 * time.Second), Lost: true},
				},
			},
			{
				Name:       "db",
				VIPs:       []string{"192.0.2.20"},
				State:      election.StateStandby,
				Since:      t0.Add(-(2*time.Hour + 5*time.Minute)),
				Reason:     "holder answered",
				Holder:     "02:00:00:00:00:02",
				HolderNode: "node-b",
				Priority:   150,
				Held:       true,
				LastProbe:  t0.Add(-150 * time.Millisecond),
				Counters:   Counters{ProbesUnanswered: 12, Transitions: 2},
				Health:     []Check{},
				Peers: []Peer{
					{Name: "node-b", NameSource: "frames", MAC: "02:00:00:00:00:02", Priority: 200, Role: election.RoleHolder, Healthy: true, LastHeard: t0.Add(-100 * time.Millisecond)},
				},
			},
		},
	}
}

const wantText = `floatip v1.2.0 on node-a (interface eth0), pid 4242, up 3h25m

group web
  state          holder since 12s ago
  reason         holder 02:00:00:00:00:02 silent for 3 consecutive probes (rank
                 0 among live standbys)
  vips           192.0.2.10, 192.0.2.11
  holder         this node (02:00:00:00:00:01)
  priority       200
  hold           off
  last probe     12s ago
  last announce  11s ago
  counters       claims 1  releases 0  conflicts 0  transitions 4
                 probes unanswered 3
  health         http ok: 200 OK (1s ago)
  peers          node-b (02:00:00:00:00:02)  prio 150  standby  400ms ago
                 node-c (02:00:00:00:00:03)  prio 100  passive  2s ago
                 02:00:00:00:00:04  prio 50  standby  LOST, heard 12s ago

group db
  state          standby since 2h5m ago
  reason         holder answered
  vips           192.0.2.20
  holder         node-b (02:00:00:00:00:02)
  priority       150
  hold           on: this node will not claim
  last probe     150ms ago
  last announce  never
  counters       claims 0  releases 0  conflicts 0  transitions 2
                 probes unanswered 12
  peers          node-b (02:00:00:00:00:02)  prio 200  holder  100ms ago
`

func TestFormatStatus(t *testing.T) {
	var b bytes.Buffer
	if err := FormatStatus(&b, sampleStatus(), t0); err != nil {
		t.Fatal(err)
	}
	if got := b.String(); got != wantText {
		t.Errorf("FormatStatus:\n%s\nwant:\n%s", got, wantText)
	}
	for i, line := range strings.Split(b.String(), "\n") {
		if len(line) > lineWidth {
			t.Errorf("line %d is %d columns: %q", i+1, len(line), line)
		}
	}
}

func TestFormatStatusEdges(t *testing.T) {
	st := Status{Node: "n", Interface: "eth0", Version: "dev", PID: 1}
	var b bytes.Buffer
	FormatStatus(&b, st, t0)
	if want := "floatip dev on n (interface eth0), pid 1, up unknown\n\nno groups\n"; b.String() != want {
		t.Errorf("no groups:\n%q\nwant\n%q", b.String(), want)
	}

	// Many VIPs wrap; control characters cannot break the table.
	g := Group{Name: "big\tname", State: election.StateProbing, Since: t0, Reason: "line\none"}
	for range 12 {
		g.VIPs = append(g.VIPs, "198.51.100.100")
	}
	b.Reset()
	FormatStatus(&b, Status{Groups: []Group{g}}, t0)
	out := b.String()
	for i, line := range strings.Split(out, "\n") {
		if len(line) > lineWidth {
			t.Errorf("line %d is %d columns: %q", i+1, len(line), line)
		}
	}
	g.Peers = []Peer{{Name: "evil\x1b[2J\nname", MAC: "02:00:00:00:00:09\r", Role: election.RoleClaiming, Healthy: true, LastHeard: t0}}
	b.Reset()
	FormatStatus(&b, Status{Groups: []Group{g}}, t0)
	out = b.String()
	for _, want := range []string{"group big name\n", "reason         line one\n", "holder         none known\n", "since 0ms ago",
		"peers          evil [2J name (02:00:00:00:00:09 )  prio 0  claiming  0ms ago\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestHuman(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second:                          "0ms",
		0:                                     "0ms",
		999 * time.Millisecond:                "999ms",
		time.Second:                           "1s",
		59*time.Second + 900*time.Millisecond: "59s",
		5*time.Minute + 3*time.Second:         "5m3s",
		3*time.Hour + 25*time.Minute:          "3h25m",
		50 * time.Hour:                        "2d2h",
	} {
		if got := human(d); got != want {
			t.Errorf("human(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestStatusJSONRoundTrip(t *testing.T) {
	want := sampleStatus()
	b, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	var got Status
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
	}
}

// TestStatusJSONFieldNames pins the JSON that scripts read: renaming a field
// breaks them.
func TestStatusJSONFieldNames(t *testing.T) {
	st := sampleStatus()
	st.Groups = st.Groups[1:] // db: never announced, no health checks
	st.Groups[0].Health = nil
	b, err := json.MarshalIndent(normalize(st), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	const want = `{
  "node": "node-a",
  "interface": "eth0",
  "version": "v1.2.0",
  "pid": 4242,
  "started": "2025-06-01T08:34:50Z",
  "groups": [
    {
      "name": "db",
      "vips": [
        "192.0.2.20"
      ],
      "state": "standby",
      "since": "2025-06-01T09:55:00Z",
      "reason": "holder answered",
      "holder": "02:00:00:00:00:02",
      "holder_node": "node-b",
      "priority": 150,
      "maintenance_hold": true,
      "last_probe": "2025-06-01T11:59:59.85Z",
      "counters": {
        "claims": 0,
        "releases": 0,
        "conflicts": 0,
        "probes_unanswered": 12,
        "transitions": 2,
        "foreign_claims": 0,
        "spoofed": 0,
        "throttled": 0,
        "unconfirmed": 0,
        "ignored": 0
      },
      "health": [],
      "peers": [
        {
          "name": "node-b",
          "name_source": "frames",
          "mac": "02:00:00:00:00:02",
          "priority": 200,
          "role": "holder",
          "healthy": true,
          "last_heard": "2025-06-01T11:59:59.9Z",
          "lost": false
        }
      ]
    }
  ],
  "spoofed_frames": 0
}`
	if string(b) != want {
		t.Errorf("JSON:\n%s\nwant:\n%s", b, want)
	}

	fc, err := json.Marshal(Group{LastForeignClaim: &ForeignClaim{MAC: "02:00:00:00:00:66", VIP: "192.0.2.20", Time: t0}}.LastForeignClaim)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"mac":"02:00:00:00:00:66","vip":"192.0.2.20","time":"2025-06-01T12:00:00Z"}`; string(fc) != want {
		t.Errorf("ForeignClaim JSON %s, want %s", fc, want)
	}
	au, err := json.Marshal(Auth{Require: true, KeyIDs: []string{"6bca8a90"}, Failures: map[string]uint64{"bad_tag": 2}, Senders: 1})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"require":true,"key_ids":["6bca8a90"],"failures":{"bad_tag":2},"senders":1}`; string(au) != want {
		t.Errorf("Auth JSON %s, want %s", au, want)
	}

	c, err := json.Marshal(Check{Name: "http", Healthy: false, Detail: "refused", Last: t0})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"name":"http","healthy":false,"detail":"refused","last":"2025-06-01T12:00:00Z"}`; string(c) != want {
		t.Errorf("Check JSON %s, want %s", c, want)
	}
}

func TestNormalizeEmptyLists(t *testing.T) {
	b, err := json.Marshal(normalize(Status{Groups: []Group{{Name: "g"}}}))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"vips":[]`, `"health":[]`, `"peers":[]`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %s", b, want)
		}
	}
	if b, _ := json.Marshal(normalize(Status{})); !strings.Contains(string(b), `"groups":[]`) {
		t.Errorf("%s lacks \"groups\":[]", b)
	}
}

// Every election state travels as its name; a name the client does not
// know is an error, not a silent "init".
func TestStatusStateJSON(t *testing.T) {
	for _, s := range election.States() {
		b, err := json.Marshal(Group{State: s})
		if err != nil {
			t.Fatal(err)
		}
		if want := `"state":"` + s.String() + `"`; !bytes.Contains(b, []byte(want)) {
			t.Errorf("%s lacks %s", b, want)
		}
		var g Group
		if err := json.Unmarshal(b, &g); err != nil || g.State != s {
			t.Errorf("read back %v, %v; want %v", g.State, err, s)
		}
	}
	var g Group
	if err := json.Unmarshal([]byte(`{"state":"leader"}`), &g); err == nil || !strings.Contains(err.Error(), "leader") {
		t.Errorf("unknown state: %v", err)
	}
}

// Every peer role travels as its name; an unknown one is an error.
func TestStatusPeerRoleJSON(t *testing.T) {
	for _, r := range []election.PeerRole{election.RoleStandby, election.RoleHolder, election.RoleClaiming, election.RolePassive} {
		b, err := json.Marshal(Peer{Role: r})
		if err != nil {
			t.Fatal(err)
		}
		if want := `"role":"` + r.String() + `"`; !bytes.Contains(b, []byte(want)) {
			t.Errorf("%s lacks %s", b, want)
		}
		var p Peer
		if err := json.Unmarshal(b, &p); err != nil || p.Role != r {
			t.Errorf("read back %v, %v; want %v", p.Role, err, r)
		}
	}
	var p Peer
	if err := json.Unmarshal([]byte(`{"role":"leader"}`), &p); err == nil {
		t.Error("unknown role accepted")
	}
}

// The auth line, the spoofing warning, the guard counters and the last
// foreign claim show when there is something to show, within 80 columns.
func TestFormatStatusHostile(t *testing.T) {
	s := sampleStatus()
	s.Auth = &Auth{Require: true, KeyIDs: []string{"6bca8a90", "0badf00d"}, Failures: map[string]uint64{"bad_tag": 40, "replay": 12, "missing": 0}}
	s.SpoofedFrames = 20
	s.MalformedFrames = map[string]uint64{"hop_limit": 5, "checksum": 2}
	s.Groups[0].Counters.ForeignClaims = 3
	s.Groups[0].Counters.Throttled = 7
	s.Groups[0].LastForeignClaim = &ForeignClaim{MAC: "02:00:00:00:00:66", VIP: "192.0.2.10", Time: t0.Add(-12 * time.Second)}
	var b bytes.Buffer
	if err := FormatStatus(&b, s, t0); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"auth required, keys 6bca8a90 0badf00d; rejected frames: bad_tag 40, replay 12\n",
		"SPOOFING: 20 frames from the wire carried this node's own MAC\n",
		"malformed frames dropped: checksum 2, hop_limit 5\n",
		"foreign claims 3  spoofed 0  throttled 7  unconfirmed 0\n",
		"02:00:00:00:00:66 claimed 192.0.2.10 12s ago",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	for i, line := range strings.Split(out, "\n") {
		if len(line) > lineWidth {
			t.Errorf("line %d is %d columns: %q", i+1, len(line), line)
		}
	}
	if strings.Count(out, "hostile") != 1 {
		t.Errorf("want the hostile line for the one group with counters:\n%s", out)
	}
}
