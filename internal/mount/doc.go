// Package mount describes filesystem mounts as data and performs them.
//
// Snapshotters return []Mount; the runner (inside the container's own mount
// namespace) or a short-lived file operation performs them. Keeping the
// mechanics here means the long-overlay-options workaround lives in one place.
//
// Like every internal package it imports the standard library and
// third-party modules only, never a builder package.
package mount
