package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"time"

	"github.com/floatip/floatip/internal/lab"
)

// labCmd is `floatip lab`: the live failover demo by default, plus the
// hidden helpers the lab runs inside its namespaces.
type labCmd struct {
	Demo      labDemoCmd      `cmd:"" default:"withargs" help:"Build a namespace lab, run floatip on every node, break the holder and show the failover (the default; its flags are listed above)."`
	Up        labUpCmd        `cmd:"" help:"Start a lab to play in and leave it running in the background: floatip, an HTTP service on every node, a client sampling the VIP."`
	Status    labStatusCmd    `cmd:"" help:"Show the running lab: every node's daemon state, who holds the VIP, what the client sees."`
	Fault     labFaultCmd     `cmd:"" help:"Inject a fault on a node of the running lab (default: the VIP's holder)."`
	Heal      labHealCmd      `cmd:"" help:"Undo faults in the running lab (default: every fault on every node)."`
	Exec      labExecCmd      `cmd:"" help:"Run a command in a node's namespace, with the lab's floatip on PATH talking to that node's daemon: lab exec n1 -- floatip status."`
	Down      labDownCmd      `cmd:"" help:"Stop the running lab and remove everything it made."`
	Soak      labSoakCmd      `cmd:"" help:"Chaos soak: seeded random faults on a namespace lab for a while; checks the invariants and reports (needs root)."`
	Supervise labSuperviseCmd `cmd:"" hidden:"" help:"Hold a running lab and answer status, fault, heal and down (started by lab up)."`
	Serve     labServeCmd     `cmd:"" hidden:"" help:"HTTP server answering its node name (run inside a lab node)."`
	Client    labClientCmd    `cmd:"" hidden:"" help:"Request a target over fresh TCP connections, one JSON line per request (run inside the lab)."`
	HTTPCheck labHTTPCheckCmd `cmd:"" name:"httpcheck" hidden:"" help:"Exit 0 if URL answers 200 within the timeout (keepalived's track_script in the benchmark)."`
	Leader    labLeaderCmd    `cmd:"" hidden:"" help:"Keep a leader key in etcd's v2 store as Patroni does, and run a command alongside (the benchmark's vip-manager nodes)."`
	Fence     labFenceCmd     `cmd:"" hidden:"" help:"Power a lab node off through the lab's power switch (the fence command of the fencing trials): MAC NODE, as floatip passes them."`
}

type labLeaderCmd struct {
	Endpoints []string      `required:"" help:"etcd client URLs (comma-separated)."`
	Key       string        `required:"" help:"The leader key."`
	Name      string        `required:"" help:"This node's value in the key."`
	TTL       time.Duration `name:"ttl" default:"5s" help:"The key's TTL."`
	Command   []string      `arg:"" optional:"" passthrough:"" placeholder:"COMMAND" help:"Command run alongside (after --)."`
}

func (c *labLeaderCmd) Run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	argv := c.Command
	if len(argv) > 0 && argv[0] == "--" {
		argv = argv[1:]
	}
	return lab.RunLeader(ctx, lab.LeaderConfig{Endpoints: c.Endpoints, Key: c.Key, Name: c.Name, TTL: c.TTL, Then: argv}, os.Stdout)
}

type labFenceCmd struct {
	Socket  string        `required:"" help:"The lab's power switch socket."`
	Timeout time.Duration `default:"5s" help:"How long to wait for the switch."`
	MAC     string        `arg:"" help:"The MAC of the node to fence (unused: the switch knows the nodes by name)."`
	Node    string        `arg:"" help:"The node to power off (n1, ...)."`
}

func (c *labFenceCmd) Run() error {
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	if err := lab.PowerOffVia(ctx, c.Socket, c.Node); err != nil {
		return err
	}
	fmt.Printf("fenced %s (powered off)\n", c.Node)
	return nil
}

type labServeCmd struct {
	Name   string `required:"" help:"Node name to answer with."`
	Listen string `default:":8080" help:"Address to listen on."`
}

func (c *labServeCmd) Run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return lab.Serve(ctx, c.Name, c.Listen, os.Stdout)
}

type labHTTPCheckCmd struct {
	URL     string        `required:"" help:"URL to GET."`
	Timeout time.Duration `default:"500ms" help:"Timeout."`
}

func (c labHTTPCheckCmd) Run() error {
	hc := &http.Client{Timeout: c.Timeout}
	resp, err := hc.Get(c.URL)
	if err != nil {
		return exitError{1}
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return exitError{1}
	}
	return nil
}

type labClientCmd struct {
	Target   string        `required:"" help:"host:port to request."`
	Every    time.Duration `default:"5ms" help:"Interval between requests."`
	Timeout  time.Duration `default:"50ms" help:"Timeout per request."`
	Count    int           `help:"Stop after this many requests (0: no limit)."`
	Duration time.Duration `default:"10m" help:"Stop after this long."`
}

func (c *labClientCmd) Run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return lab.RunClient(ctx, lab.ClientConfig{
		Target: c.Target, Every: c.Every, Timeout: c.Timeout, Count: c.Count, Duration: c.Duration,
	}, os.Stdout)
}

type labDemoCmd struct {
	Fault   string `enum:"poweroff,stop,crash,partition,service" default:"poweroff" help:"What happens to the holder: poweroff (cut its link, kill everything), stop (SIGTERM floatip), crash (SIGKILL floatip), partition (cut it off the others for 3 s), service (kill its HTTP service). One of: ${enum}."`
	Nodes   int    `default:"3" help:"Number of nodes, 2 to 80 (priorities 200, 150, 100, ...)."`
	Profile string `enum:"default,fast" default:"default" help:"Timing profile passed to floatip: ${enum}."`
	Keep    bool   `help:"Afterwards leave a lab running in the background (as lab up does) to play with: lab status, fault, heal, exec, down."`
	Cleanup bool   `help:"Remove a lab left behind (its supervisor, namespaces with the prefix and everything in them), then exit."`
	SVG     string `name:"svg" placeholder:"FILE" help:"Where to write the picture of the failover (default: floatip-lab-FAULT.svg in the temporary directory)."`
	Prefix  string `default:"flab" help:"Name prefix of the lab's namespaces."`
	Quorum  string `enum:",etcd" default:"" help:"etcd: also run a three-member etcd (one member on each of n1, n2, n3; needs 3 nodes) and give floatip the quorum, a 5 s lease; a partition then lasts 10 s, so that the cut-off holder's lease runs out."`
	labStackFlags
}

// labStackFlags choose what the lab's group floats.
type labStackFlags struct {
	IPv6      bool `name:"ipv6" help:"Float the IPv6 VIP 2001:db8:18::100 alone (every namespace gets IPv6, the bridge an MLD querier; the client requests [VIP]:8080)."`
	DualStack bool `name:"dual-stack" help:"Float 198.18.0.100 and 2001:db8:18::100 as one group (they move together; the client requests the IPv6 one)."`
}

func (f labStackFlags) stack() (lab.Stack, error) {
	switch {
	case f.IPv6 && f.DualStack:
		return "", errors.New("--ipv6 and --dual-stack: pick one (--ipv6 floats the IPv6 VIP alone, --dual-stack both addresses in one group)")
	case f.IPv6:
		return lab.StackIPv6, nil
	case f.DualStack:
		return lab.StackDual, nil
	}
	return lab.StackIPv4, nil
}

// Help lists the demo's flags under `floatip lab --help`: kong shows a
// default subcommand's flags only under its own --help.
func (labCmd) Help() string {
	return "Run without a subcommand, floatip lab is the demo, which takes these flags:\n\n" + flagsHelp(labDemoCmd{})
}

func (c *labDemoCmd) Run() error {
	out := os.Stdout
	if c.Cleanup {
		removed, err := lab.Teardown(c.Prefix)
		if err != nil {
			return err
		}
		if len(removed) == 0 {
			fmt.Fprintf(out, "no lab named %s found\n", c.Prefix)
		} else {
			fmt.Fprintf(out, "removed %s\n", strings.Join(removed, ", "))
		}
		return nil
	}
	stack, err := c.stack()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	svg := c.SVG
	if svg == "" {
		svg = filepath.Join(os.TempDir(), "floatip-lab-"+c.Fault+".svg")
	}
	err = lab.RunDemo(ctx, lab.DemoOptions{
		Fault: lab.FaultKind(c.Fault), Nodes: c.Nodes, Profile: c.Profile, Keep: c.Keep, Prefix: c.Prefix, Out: out, Stack: stack,
		SVG: svg, Invocation: invocation(), Quorum: c.Quorum,
	})
	switch {
	case ctx.Err() != nil:
		return exitError{130}
	case errors.Is(err, lab.ErrDemoFailed):
		return exitError{1}
	}
	return err
}

// flagsHelp renders the flags of a kong command struct as kong tags describe
// them: "  --name=PLACEHOLDER  help (default: d)".
func flagsHelp(cmd any) string {
	var b strings.Builder
	t := reflect.TypeOf(cmd)
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			b.WriteString(flagsHelp(reflect.Zero(f.Type).Interface()))
			continue
		}
		if _, isCmd := tag.Lookup("cmd"); isCmd || !f.IsExported() {
			continue
		}
		name := tag.Get("name")
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		flag := "--" + name
		if f.Type.Kind() != reflect.Bool {
			ph := tag.Get("placeholder")
			if ph == "" {
				ph = strings.ToUpper(name)
			}
			flag += "=" + ph
		}
		help := strings.ReplaceAll(tag.Get("help"), "${enum}", strings.ReplaceAll(tag.Get("enum"), ",", ", "))
		if d := tag.Get("default"); d != "" {
			help += " (default: " + d + ")"
		}
		fmt.Fprintf(&b, "  %s\n      %s\n", flag, help)
	}
	return b.String()
}

// invocation is how the user can run this floatip again, for the hints a
// command prints: "floatip" when that is on PATH, "go run ./cmd/floatip"
// for a go run build (deleted when go run exits), else the binary's path;
// with "sudo " in front when run through sudo.
func invocation() string {
	exe, _ := os.Executable()
	return invocationOf(exe, exec.LookPath, os.Getenv("SUDO_USER") != "")
}

func invocationOf(exe string, lookPath func(string) (string, error), sudo bool) string {
	s := exe
	switch {
	case exe == "":
		s = "floatip"
	case strings.Contains(exe, string(filepath.Separator)+"go-build"):
		s = "go run ./cmd/floatip"
	default:
		if p, err := lookPath("floatip"); err == nil && sameFile(p, exe) {
			s = "floatip"
		}
	}
	if sudo {
		s = "sudo " + s
	}
	return s
}

func sameFile(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}

type labPrefix struct {
	Prefix string `default:"flab" help:"Name prefix of the lab's namespaces."`
}

type labUpCmd struct {
	Nodes   int    `default:"3" help:"Number of nodes, 1 to 80 (priorities 200, 150, 100, ...)."`
	Profile string `enum:"default,fast" default:"default" help:"Timing profile passed to floatip: ${enum}."`
	Quorum  string `enum:",etcd" default:"" help:"etcd: also run a three-member etcd (one member on each of n1, n2, n3; needs 3 nodes) and give floatip the quorum, a 5 s lease (faults etcd-cut and quorum-lost then work too)."`
	labStackFlags
	labPrefix
}

func (c *labUpCmd) Run() error {
	stack, err := c.stack()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Printf("starting a lab of %d nodes in the background (log: %s)... ", c.Nodes, lab.PlayLog(c.Prefix))
	st, err := lab.UpPlay(ctx, lab.PlayOptions{Prefix: c.Prefix, Nodes: c.Nodes, Profile: c.Profile, Quorum: c.Quorum, Stack: stack})
	if err != nil {
		fmt.Println("failed")
		return err
	}
	fmt.Print("ok\n\n")
	if err := lab.FormatPlayStatus(os.Stdout, st, time.Now()); err != nil {
		return err
	}
	lab.PlayHints(os.Stdout, invocation(), c.Prefix)
	return nil
}

type labStatusCmd struct {
	JSON bool `name:"json" help:"Print the status as JSON."`
	labPrefix
}

func (c *labStatusCmd) Run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, err := lab.PlayClientAPI{Prefix: c.Prefix}.Status(ctx)
	if err != nil {
		return err
	}
	if c.JSON {
		return printJSON(st)
	}
	return lab.FormatPlayStatus(os.Stdout, st, time.Now())
}

type labFaultCmd struct {
	Kind string `arg:"" placeholder:"KIND" help:"The fault: poweroff, stop, crash, freeze, service, partition, partition-out, partition-in, loss:PERCENT, linkdown; with lab up --quorum etcd also etcd-cut (the node cut off etcd only) and quorum-lost (two etcd members killed)."`
	Node string `arg:"" optional:"" placeholder:"NODE" help:"The node (n1, n2, ...); default: the one holding the VIP."`
	labPrefix
}

func (c *labFaultCmd) Run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := lab.ParseFault(c.Kind); err != nil {
		return err
	}
	done, err := lab.PlayClientAPI{Prefix: c.Prefix}.Fault(ctx, c.Kind, c.Node)
	if err != nil {
		return err
	}
	fmt.Printf("injected %s (undo it with lab heal)\n", done)
	return nil
}

type labHealCmd struct {
	Kind string `arg:"" optional:"" placeholder:"KIND" help:"The kind of fault to undo; default: every kind."`
	Node string `arg:"" optional:"" placeholder:"NODE" help:"The node; default: every node."`
	labPrefix
}

func (c *labHealCmd) Run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	kind, node := c.Kind, c.Node
	// `lab heal n2`: a node alone.
	if node == "" && kind != "" {
		if _, err := lab.ParseFaultKind(kind); err != nil && strings.HasPrefix(kind, "n") {
			kind, node = "", kind
		}
	}
	healed, err := lab.PlayClientAPI{Prefix: c.Prefix}.Heal(ctx, kind, node)
	for _, h := range healed {
		fmt.Printf("healed %s\n", h)
	}
	return err
}

type labExecCmd struct {
	Node    string   `arg:"" placeholder:"NODE" help:"n1, n2, ... or c (the client)."`
	Command []string `arg:"" passthrough:"" placeholder:"COMMAND" help:"The command and its arguments (after --)."`
	labPrefix
}

func (c *labExecCmd) Run() error {
	argv := c.Command
	if len(argv) > 0 && argv[0] == "--" {
		argv = argv[1:]
	}
	cmd, err := lab.ExecCommand(c.Prefix, c.Node, argv)
	if err != nil {
		return err
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	signal.Ignore(os.Interrupt) // Ctrl-C goes to the command
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return exitError{ee.ExitCode()}
	}
	return err
}

type labDownCmd struct {
	labPrefix
}

func (c *labDownCmd) Run() error {
	removed, err := lab.Teardown(c.Prefix)
	if err != nil {
		return err
	}
	if len(removed) == 0 {
		fmt.Printf("no lab named %s found\n", c.Prefix)
		return nil
	}
	fmt.Printf("removed lab %s (%s)\n", c.Prefix, strings.Join(removed, ", "))
	return nil
}

type labSuperviseCmd struct {
	Nodes   int    `default:"3"`
	Profile string `default:"default"`
	Quorum  string `default:""`
	Stack   string `default:"ipv4"`
	labPrefix
}

func (c *labSuperviseCmd) Run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	signal.Ignore(syscall.SIGHUP)
	stack, err := lab.ParseStack(c.Stack)
	if err != nil {
		return err
	}
	return lab.Supervise(ctx, lab.PlayOptions{Prefix: c.Prefix, Nodes: c.Nodes, Profile: c.Profile, Quorum: c.Quorum, Stack: stack, Progress: os.Stdout})
}
