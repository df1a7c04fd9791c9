package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

const (
	defaultAddr    = "127.0.0.1:7070"
	defaultTimeout = 5 * time.Second
)

const usage = `usage:
  memstate serve [--mib 8] [--listen 127.0.0.1:7070]
  memstate query [--addr 127.0.0.1:7070] [--timeout 5s] [--no-digest]
  memstate set-note VALUE [--addr 127.0.0.1:7070] [--timeout 5s]
`

// run is the whole command: it returns the exit code (0 ok, 1 failed, 2
// usage).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		err = runServe(ctx, rest, stderr)
	case "query":
		err = runClient(ctx, cmd, rest, 0, stdout, stderr)
	case "set-note":
		err = runClient(ctx, cmd, rest, 1, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		err = usageError{fmt.Errorf("unknown command %q", cmd)}
	}
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, pflag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "memstate: %v\n%s", err, usage)
		return 2
	default:
		fmt.Fprintf(stderr, "memstate: %v\n", err)
		return 1
	}
}

type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func newFlagSet(name string, stderr io.Writer) *pflag.FlagSet {
	fs := pflag.NewFlagSet("memstate "+name, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func parse(fs *pflag.FlagSet, args []string, positional int) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() != positional {
		return usageError{fmt.Errorf("%s: want %d argument(s), got %d", fs.Name(), positional, fs.NArg())}
	}
	return nil
}

func runServe(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr)
	mib := fs.Int("mib", 8, "MiB of random bytes to keep in memory")
	listen := fs.String("listen", defaultAddr, "address to serve on (plain HTTP)")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	s, err := newState(*mib)
	if err != nil {
		return usageError{err}
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	fmt.Fprintf(stderr, "memstate: pid %d serving %d MiB (%s) on %s\n", s.pid, s.mib, s.digestAtStart, ln.Addr())
	if err := serve(ctx, ln, s); err != nil {
		return err
	}
	fmt.Fprintln(stderr, "memstate: stopped")
	return nil
}

// runClient is query (no argument) and set-note (the note): it prints the
// server's Status as one line of JSON.
func runClient(ctx context.Context, cmd string, args []string, positional int, stdout, stderr io.Writer) error {
	fs := newFlagSet(cmd, stderr)
	addr := fs.String("addr", defaultAddr, "address of memstate serve")
	timeout := fs.Duration("timeout", defaultTimeout, "deadline of the whole request")
	noDigest := false
	if cmd == "query" {
		fs.BoolVar(&noDigest, "no-digest", false, "answer without recomputing the memory's digest (digest empty, intact false)")
	}
	if err := parse(fs, args, positional); err != nil {
		return err
	}
	var (
		line []byte
		err  error
	)
	if cmd == "set-note" {
		line, err = setNote(ctx, *addr, fs.Arg(0), *timeout)
	} else {
		line, err = query(ctx, *addr, *timeout, !noDigest)
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", line)
	return err
}

// query returns the server's Status as one line of JSON.
func query(ctx context.Context, addr string, timeout time.Duration, withDigest bool) ([]byte, error) {
	url := "http://" + addr + "/"
	if !withDigest {
		url += "?digest=false"
	}
	return request(ctx, http.MethodGet, url, nil, timeout)
}

// setNote sets the note and returns the Status after the change.
func setNote(ctx context.Context, addr, note string, timeout time.Duration) ([]byte, error) {
	return request(ctx, http.MethodPut, "http://"+addr+"/note", strings.NewReader(note), timeout)
}

func request(ctx context.Context, method, url string, body io.Reader, timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, url, err)
	}
	// No proxy, no pooled connection: one request on loopback, then nothing
	// left open.
	client := &http.Client{Transport: &http.Transport{
		DialContext:       (&net.Dialer{Timeout: timeout}).DialContext,
		DisableKeepAlives: true,
	}}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read answer: %w", method, url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, strings.TrimSpace(string(b)))
	}
	var st Status
	if err := json.Unmarshal(b, &st); err != nil || st.DigestAtStart == "" {
		return nil, fmt.Errorf("%s %s: not a memstate answer: %.200q", method, url, b)
	}
	var line bytes.Buffer
	if err := json.Compact(&line, b); err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, url, err)
	}
	return line.Bytes(), nil
}
