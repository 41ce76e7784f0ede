// Package crashpoint lets tests kill the builder at a named point of a
// write path, so that crash safety is tested at the exact moments that
// matter (a blob staged but not named, a record written but no image yet)
// rather than at random times.
//
// The points are dormant unless the environment variable BUILDER_CRASHPOINT
// names one: "NAME" kills the process with SIGKILL the first time it reaches
// Hit(NAME), "NAME@N" the N-th time. The variable is read once, at start;
// an unarmed Hit is one comparison.
//
// Like every internal package it imports the standard library and
// third-party modules only, never a builder package.
package crashpoint
