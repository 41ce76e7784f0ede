// Command builder-init is the container init of builder's RUN steps and
// containers, installed next to the builder binary: a program of its own so
// that each container starts a small binary rather than the whole builder
// (see runner.InitBinaryName).
//
// It imports runner (whose init it runs) and nothing else of the module:
// every import is code that each container start loads.
package main
