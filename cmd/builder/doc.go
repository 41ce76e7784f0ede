// Command builder builds Dockerfiles into OCI images without a daemon, keeps
// them in a local store and runs them as containers. This package only
// parses flags into option structs and wires the packages together; each
// command opens the store, does its work and exits.
package main
