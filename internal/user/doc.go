// Package user resolves USER and --chown specs against the passwd and group
// files of a root file system, with Docker's rules. It reads the files inside
// the given root only, so a hostile image cannot point it at the host's.
//
// Like every internal package it imports the standard library and
// third-party modules only, never a builder package.
package user
