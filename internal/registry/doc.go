// Package registry holds what every user of a registry shares: the
// transport options (credentials from the docker keychain, plain HTTP for
// loopback and configured insecure hosts, extra CA files, retries with
// backoff, the user agent), the registries config file with its docker.io
// mirrors, reference parsing as docker does it, and errors that name the
// reference and the registry. Package source pulls with it and package
// exporter pushes with it; neither writes registry HTTP of its own.
//
// It imports go-containerregistry and the standard library only; it must
// not import the store or any other package of the module.
package registry
