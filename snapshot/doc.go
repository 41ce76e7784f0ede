// Package snapshot owns the copy-on-write filesystems builds and containers
// run on, using overlayfs.
//
// Under its root directory:
//
//	sha256/<chain ID hex>/   a committed layer, in overlay form (whiteouts
//	                         are 0/0 devices, opaque dirs carry
//	                         trusted.overlay.opaque=y); used as a lowerdir
//	active/<id>/{upper,work} a writable snapshot
//	tmp/                     layers being unpacked, and layers being removed
//	empty/                   an empty directory, the lowerdir of nothing
//
// There is no database: a layer directory exists if and only if the layer is
// committed, because it is built elsewhere and renamed into place. That makes
// concurrent processes unpacking the same layer safe (the loser of the rename
// discards its copy), and a kill at any moment leaves no half layer.
//
// The snapshotter never mounts anything itself: it returns mounts as data
// (Active.Mounts, View) for the runner to perform in the container's own
// mount namespace.
//
// What is under its root, others ask it rather than read the directories:
// garbage collection lists the committed layers (Walk) and writable
// snapshots (Actives) and removes them (Remove, SweepActive), and empties
// tmp/ of what killed processes left (SweepTmp, TmpUsage), unmounting
// first what such a process left mounted there.
//
// It imports snapshot/archive and internal packages only; it must not
// import store (layers are read through the LayerOpener it declares), the
// solver, runner or anything above them.
package snapshot
