// Package gobench holds Go micro-benchmarks of the hot paths under the
// scenarios of bench/run.sh, so that a change to one of them can be measured
// without a whole build:
//
//   - BenchmarkWriteLayer20k: snapshot/archive.WriteLayer over 20,000 files
//     (S1, S2, S4: a RUN's or a COPY's diff as a layer tar);
//   - BenchmarkApply20k: snapshot/archive.Apply of that tar into a fresh
//     per-layer directory (unpacking a base or a cached layer);
//   - BenchmarkApplyS7, BenchmarkUnpackS7: S7's unpack of its ~200 MB,
//     8,000-file Debian base (skipped without bench/run.sh's archive of
//     it): archive.Apply into a fresh directory, and snapshot.Unpack into
//     a fresh snapshotter right after the previous one was deleted, as a
//     cold repetition of bench/run.sh meets it;
//   - BenchmarkIngestLayer100MB: store.IngestLayer of a 100 MB stream, half
//     text, half random (pgzip compression + digests + the blob write);
//   - BenchmarkReadDir20k: internal/dirent against os.File.Readdirnames,
//     os.File.ReadDir and x/sys's ParseDirent over a 20,000-entry
//     directory (the A/B that keeps internal/dirent; see its doc).
//
// BenchmarkHugeheapNoopDigest (in the history) measured internal/hugeheap
// on and off in a fresh process doing a no-op rebuild's context digest:
// it halved page faults but made the process ~2 ms slower, and went with
// the package (see runBuild in cmd/builder/build.go).
//
// Run them with `go test -run '^$' -bench . -benchtime 3x ./bench/gobench`.
// The package has no code of its own; it only imports what it measures.
//
// It may import any package of the module but cmd (nothing imports cmd).
package gobench
