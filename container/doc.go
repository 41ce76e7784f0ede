// Package container owns containers: an image instantiated with its own
// writable layer and settings, kept in the store until removed.
//
// A container is a record in the store's metadata database (bucket
// containers.v1, one transaction per state change, names unique through
// containers.names.v1), an active snapshot over its image's layers (the
// writable layer, under snapshots/active/<snapshot id>, kept while the
// container is stopped), and a directory ROOT/containers/<id> holding its
// log (<id>-json.log, JSON lines as Docker's json-file driver writes them)
// and its anonymous volumes (volumes/<n>, one per VOLUME of the image, see
// volume.go).
//
// Whoever runs a container is its monitor (Runtime.Run): the `builder run`
// process itself for a foreground container, or a small re-executed builder
// process in a session of its own for a detached one (SpawnMonitor and
// Monitor, monitor.go). The monitor records the container's pid and the
// pid's start time, waits for it, and records its exit. A record in state
// running is believed only while its container or monitor process is alive
// (a pid is matched with its start time from /proc, so a reused pid is not
// mistaken): after a crash of the monitor, List shows the container exited
// and Reconcile writes it down.
//
// The package keeps to Docker's rules where a user can see them: how
// ENTRYPOINT, CMD, --entrypoint and arguments combine, how -e and
// --env-file override the image's environment, what `diff` prints, how
// `ps -s` counts sizes, and what `commit` writes. Those decisions are plain
// functions (spec.go, diff.go, commit.go) that test without root.
//
// It imports runner, snapshot, store, fsutil and internal packages only; it
// must not import the solver (containers unpack images through snapshot),
// frontend, source, exporter, gc or cmd.
package container
