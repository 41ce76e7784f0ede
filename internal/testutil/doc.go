// Package testutil holds helpers shared by the project's tests: the root
// check, and base images made at test time from Debian's busybox-static (no
// image blob is ever committed).
//
// Like every internal package it imports the standard library and
// third-party modules only, never a builder package (the tests that use it
// do).
package testutil
