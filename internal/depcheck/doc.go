// Package depcheck holds only a test: it lists the module's packages with
// `go list` and fails when one imports against the intended direction
// (see layering in depcheck_test.go, the same layering as the design's
// "Data flow"). A new package needs a row there before its test passes.
//
// It has no code for others to import, and must import no builder package.
package depcheck
