// Package testutil holds helpers shared by the project's tests: the root
// check, base images made at test time from Debian's busybox-static (no
// image blob is ever committed), tree listings, and the one tar builder
// (TarEntry by named fields; Tar for a small tar, TarWriter for a streamed
// one) that every package's tests write their archives with, and the
// registry harness (StartRegistry: Debian's docker-registry on 127.0.0.1,
// plain or TLS with basic auth, its access log read back to count
// uploads, mounts and downloads).
//
// Like every internal package it imports the standard library and
// third-party modules only, never a builder package (the tests that use it
// do).
package testutil
