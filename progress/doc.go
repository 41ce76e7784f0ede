// Package progress renders the solver's events for people and tools: a live
// terminal view in BuildKit's look, BuildKit's plain format for CI logs, one
// JSON object per event for tools, or nothing at all. It owns only
// formatting; the solver decides what happens and when, and cmd/builder picks
// the mode from --progress.
//
// It imports the solver (its Event type) and solver/graph only; it must not
// import runner, snapshot, store or cmd.
package progress
