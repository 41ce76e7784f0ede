// Package testutil holds helpers shared by the project's tests: the root
// check, and base images made at test time from Debian's busybox-static (no
// image blob is ever committed).
package testutil
