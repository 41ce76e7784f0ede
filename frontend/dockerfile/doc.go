// Package dockerfile turns a Dockerfile into a build graph
// (solver/graph.Definition): one graph.Stage per FROM block, one graph.Step
// per instruction, with every word expanded and every stage's image
// configuration and history computed up front.
//
// Parsing is BuildKit's (frontend/dockerfile/parser, instructions and the
// shell lexer); this package owns what BuildKit's dockerfile2llb does on top
// of them: ARG and ENV scoping, per-instruction expansion, the image config
// each instruction produces, the history text BuildKit writes, stage
// dependencies (FROM <stage>, COPY --from) and ONBUILD triggers.
//
// Only the stages the target needs are resolved and converted, as BuildKit
// does: a stage the target does not need may name a missing image or hold a
// failing instruction without failing the build. Such stages are still listed
// in the Definition, with their From but without steps or config.
//
// convert.go drives the conversion; dispatch.go expands each instruction's
// words and routes it to one file per instruction family: run.go (RUN,
// SHELL), copy.go (COPY, ADD), workdir.go (WORKDIR, USER), args.go (ARG and
// build args), config.go (ENV, LABEL, CMD, ENTRYPOINT, VOLUME, STOPSIGNAL,
// HEALTHCHECK, MAINTAINER, ONBUILD), expose.go (EXPOSE), stage.go (FROM,
// stage dependencies, ONBUILD triggers). changes.go applies the config
// instructions of commit's and import's --change (ApplyChanges) to a
// config, with the same EXPOSE parser a build uses. subst.go rejects the variable
// substitutions that Docker 20.10's older lexer did not know. check.go runs
// BuildKit's lint rules as "# check=" (or the BUILDKIT_DOCKERFILE_CHECK
// build arg) configures them. limits.go keeps a conversion bounded whatever
// the Dockerfile holds (its size, its line length, what variables expand
// to) and locates the errors the parser reports without a usable line.
//
// Where the parser and lexer we import have grown past Docker 20.10's
// BuildKit, whose results are the reference, this package restores the old
// limits that decide whether a build succeeds: substitution forms,
// HEALTHCHECK durations and retries, STOPSIGNAL names, global ARG defaults
// that fail to expand.
//
// It imports solver/graph (the definition it emits) and internal packages
// only; it must not import the solver, its ops, runner, snapshot, store or
// cmd: images it needs are resolved through Options.ResolveImage.
package dockerfile
