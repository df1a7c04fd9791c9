// Go 1.25+ keeps the cgroup's cpu.max open to re-read the CPU limit: one more
// file for CRIU to dump and reopen in the destination pod. A fixed GOMAXPROCS
// is fine for a test workload.
//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0

// Go 1.24+ listens with MPTCP where the kernel has it; CRIU 4.1 cannot dump
// MPTCP sockets ("Unsupported proto 262"). Plain TCP, as most servers use.
//go:debug multipathtcp=0

// Command memstate is the real-node test workload whose state lives only in
// memory: N MiB of random bytes, a counter ticking every 100 ms and a note. A
// CRIU checkpoint and restore that loses or corrupts any of it shows in
// `memstate query`: the digest is recomputed over the bytes on every query,
// the counter goes on from where it was, the note is the one set before the
// checkpoint.
//
//	memstate serve [--mib 8] [--listen 127.0.0.1:7070]
//	memstate query [--addr 127.0.0.1:7070] [--timeout 5s]
//	memstate set-note VALUE [--addr 127.0.0.1:7070] [--timeout 5s]
//
// So that CRIU can dump it, the server never writes to disk and keeps no file
// open besides stdio, the listening socket and the Go runtime's epoll and
// eventfd. HTTP keep-alives are off: no client connection outlives its
// request, so a checkpoint never meets an established TCP connection.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}
