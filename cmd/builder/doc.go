// Command builder builds Dockerfiles into OCI images without a daemon, keeps
// them in a local store and runs them as containers. This package only
// parses flags into option structs and wires the packages together; each
// command opens the store, does its work and exits.
//
// It may import any package of the module and nothing imports it; policies
// (what rmi removes, what an output writes, how a detached container is
// monitored) belong to the packages below, not here.
package main
