package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Serve runs the node service used by `floatip lab serve`: an HTTP server on
// listen answering every request with name (plus a newline). It prints one
// JSON line {"msg":"listening","addr":...} to w once it listens, and returns
// when ctx ends.
func Serve(ctx context.Context, name, listen string, w io.Writer) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
			rw.Header().Set("Content-Type", "text/plain")
			rw.Header().Set("Connection", "close")
			_, _ = io.WriteString(rw, name+"\n")
		}),
		ReadHeaderTimeout: 2 * time.Second,
		IdleTimeout:       time.Second,
	}
	srv.SetKeepAlivesEnabled(false)
	line, _ := json.Marshal(map[string]string{"msg": "listening", "addr": ln.Addr().String(), "name": name})
	if _, err := fmt.Fprintf(w, "%s\n", line); err != nil {
		ln.Close()
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		return nil
	}
}

// ClientConfig configures RunClient (`floatip lab client`).
type ClientConfig struct {
	Target   string        // host:port
	Every    time.Duration // send interval; requests run concurrently, so a slow one does not delay the next
	Timeout  time.Duration // per request: connect + request + response
	Count    int           // stop after this many requests; 0: no limit
	Duration time.Duration // stop after this long; 0: no limit
}

// clientRecord is one JSON line of the client's output.
type clientRecord struct {
	T    int64   `json:"t"`              // send time, Unix nanoseconds
	OK   bool    `json:"ok"`             // a 200 response with a body arrived in time
	Node string  `json:"node,omitempty"` // the body: the answering node's name
	MS   float64 `json:"ms"`             // latency in milliseconds
	Err  string  `json:"err,omitempty"`  // why it failed
}

// RunClient sends an HTTP GET to cfg.Target every cfg.Every, each on a fresh
// TCP connection (Connection: close), and writes one JSON line per request to
// w, {"t":unix-nanos-at-send,"ok":bool,"node":"n2","ms":1.2,"err":"..."}, as
// each request completes. Requests overlap when one is slower than the
// interval. It returns after cfg.Count requests or cfg.Duration, or when ctx
// ends, once the requests in flight have finished.
func RunClient(ctx context.Context, cfg ClientConfig, w io.Writer) error {
	if cfg.Target == "" {
		return errors.New("no target")
	}
	if cfg.Every <= 0 || cfg.Timeout <= 0 {
		return errors.New("--every and --timeout must be positive")
	}
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	dialer := &net.Dialer{}
	tr := &http.Transport{
		DialContext:           dialer.DialContext,
		DisableKeepAlives:     true,
		DisableCompression:    true,
		MaxIdleConns:          -1,
		ResponseHeaderTimeout: cfg.Timeout,
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	url := "http://" + cfg.Target + "/"

	var (
		mu      sync.Mutex
		werr    error
		flights sync.WaitGroup
	)
	emit := func(r clientRecord) {
		b, _ := json.Marshal(r)
		b = append(b, '\n')
		mu.Lock()
		defer mu.Unlock()
		if werr == nil {
			_, werr = w.Write(b) // one write per line: the reader sees whole lines at once
		}
	}
	one := func(sent time.Time) {
		defer flights.Done()
		// Each request gets its own deadline, independent of ctx, so ending
		// the client still reports the requests in flight.
		rctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
		defer cancel()
		r := clientRecord{T: sent.UnixNano()}
		req, _ := http.NewRequestWithContext(rctx, http.MethodGet, url, nil)
		req.Close = true
		resp, err := hc.Do(req)
		var body []byte
		if err == nil {
			body, err = io.ReadAll(io.LimitReader(resp.Body, 256))
			resp.Body.Close()
			if err == nil && resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("HTTP %d", resp.StatusCode)
			}
		}
		r.MS = float64(time.Since(sent).Microseconds()) / 1000
		if err != nil {
			r.Err = shortErr(err)
		} else {
			r.OK = true
			r.Node = strings.TrimSpace(string(body))
		}
		emit(r)
	}

	tick := time.NewTicker(cfg.Every)
	defer tick.Stop()
	sent := 0
	for {
		flights.Add(1)
		go one(time.Now())
		sent++
		if cfg.Count > 0 && sent >= cfg.Count {
			break
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
			continue
		}
		break
	}
	flights.Wait()
	mu.Lock()
	defer mu.Unlock()
	return werr
}

// shortErr names the usual failures briefly.
func shortErr(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded), os.IsTimeout(err):
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "host unreachable"
	case errors.Is(err, syscall.ENETUNREACH):
		return "net unreachable"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	}
	return err.Error()
}
