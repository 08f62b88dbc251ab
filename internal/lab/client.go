package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"time"
)

// Sample is one request of the lab client.
type Sample struct {
	At      time.Time     // when the request was sent
	OK      bool          // a 200 response arrived within the timeout
	Node    string        // the node that answered ("n2"), when OK
	Latency time.Duration // send to response (or to failure)
	Err     string        // why it failed: "timeout", "refused", ...
}

// ParseSample decodes one line of `floatip lab client` output.
func ParseSample(l Line) (Sample, bool) {
	if l.Fields == nil {
		return Sample{}, false
	}
	if _, ok := l.Fields["t"]; !ok {
		return Sample{}, false
	}
	// Decode the text again: Fields holds numbers as float64, too coarse
	// for Unix nanoseconds.
	var r clientRecord
	if err := json.Unmarshal([]byte(l.Text), &r); err != nil {
		return Sample{}, false
	}
	return Sample{
		At:      time.Unix(0, r.T),
		OK:      r.OK,
		Node:    r.Node,
		Latency: time.Duration(r.MS * float64(time.Millisecond)),
		Err:     r.Err,
	}, true
}

// ClientOptions configures StartClient; zero fields take the defaults.
type ClientOptions struct {
	Target   netip.AddrPort // default the lab's first VIP (Lab.VIPs[0]), port 8080
	Every    time.Duration  // default 5 ms
	Timeout  time.Duration  // default 50 ms
	Count    int            // default 0: no limit
	Duration time.Duration  // default 10 min: the client always ends
}

// Client is a running `floatip lab client` in the client namespace.
type Client struct {
	Proc *Proc
}

// StartClient runs `floatip lab client` in the client namespace against the
// VIP (by default every 5 ms, 50 ms timeout, at most 10 min).
func (l *Lab) StartClient(ctx context.Context, o ClientOptions) (*Client, error) {
	if !o.Target.IsValid() {
		vip := l.VIP
		if len(l.VIPs) > 0 {
			vip = l.VIPs[0]
		}
		o.Target = netip.AddrPortFrom(vip, ServicePort)
	}
	if o.Every == 0 {
		o.Every = 5 * time.Millisecond
	}
	if o.Timeout == 0 {
		o.Timeout = 50 * time.Millisecond
	}
	if o.Duration == 0 {
		o.Duration = 10 * time.Minute
	}
	args := []string{"lab", "client", "--target", o.Target.String(),
		"--every", o.Every.String(), "--timeout", o.Timeout.String(), "--duration", o.Duration.String()}
	if o.Count > 0 {
		args = append(args, "--count", strconv.Itoa(o.Count))
	}
	p, err := l.client.Start(ctx, l.Binary, args...)
	if err != nil {
		return nil, err
	}
	return &Client{Proc: p}, nil
}

// Samples returns the samples received so far, ordered by send time.
func (c *Client) Samples() []Sample {
	return samplesOf(c.Proc.Lines())
}

func samplesOf(lines []Line) []Sample {
	var out []Sample
	for _, l := range lines {
		if s, ok := ParseSample(l); ok {
			out = append(out, s)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out
}

// WaitSample waits until a sample matching match arrives (any sample so far
// counts) and returns it.
func (c *Client) WaitSample(ctx context.Context, timeout time.Duration, match func(Sample) bool) (Sample, error) {
	l, err := c.Proc.WaitLine(ctx, timeout, func(l Line) bool {
		s, ok := ParseSample(l)
		return ok && match(s)
	})
	if err != nil {
		return Sample{}, err
	}
	s, _ := ParseSample(l)
	return s, nil
}

// Stop ends the client gracefully (SIGTERM: it finishes and reports the
// requests in flight), waits for it, and returns every sample.
func (c *Client) Stop() []Sample {
	if err := c.Proc.Stop(2 * time.Second); err != nil {
		_ = c.Proc.Kill()
	}
	<-c.Proc.Done()
	return c.Samples()
}

// Wait waits for a client started with Count or Duration to finish on its
// own and returns every sample; it reports the client's failure, if any.
func (c *Client) Wait() ([]Sample, error) {
	if err := c.Proc.Wait(); err != nil {
		return c.Samples(), fmt.Errorf("lab client: %v; last output: %s", err, c.Proc.Tail(3))
	}
	return c.Samples(), nil
}
