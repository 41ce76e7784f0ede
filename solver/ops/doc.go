// Package ops binds the build graph's ops to the parts that do the work,
// for the solver to schedule: RUN through the runner (exec.go), COPY, ADD
// and WORKDIR as file operations through fsutil (file.go, mkdir.go), both
// over an overlay snapshot whose changes become a staged layer (layer.go),
// and images looked up through source. A layer the store lacks (a record
// from an imported cache) is fetched through Config.Fetcher just before it
// is unpacked, so only layers a step runs on are downloaded. The build context's .dockerignore
// matcher and stat-cache live here, one per build (Resolver).
//
// It must not import cmd, frontend, container, gc or exporter.
package ops
