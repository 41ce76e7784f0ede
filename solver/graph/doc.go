// Package graph is the build definition the frontend produces and the solver
// executes: stages of fully expanded steps, each step either config-only or an
// operation that makes a layer (exec, copy, mkdir). It is a leaf: it imports
// only image-spec, so both sides can share it without depending on each other.
package graph
