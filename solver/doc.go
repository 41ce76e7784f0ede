// Package solver executes a build definition: it computes every step's cache
// key before anything runs, reuses recorded layers for the longest cached
// prefix of each stage, runs what is missing (RUN in the runner over an
// overlay snapshot, COPY/ADD/WORKDIR as file operations) and commits each
// change as a compressed layer in the store. Stages the target needs run
// concurrently; the others are never touched.
package solver
