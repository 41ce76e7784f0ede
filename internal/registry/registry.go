package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Options are the transport options of every registry request. The zero
// value uses the docker keychain, the system's CAs, and plain HTTP only
// for loopback hosts.
type Options struct {
	Config
	// Keychain finds credentials; nil is authn.DefaultKeychain
	// ($DOCKER_CONFIG/config.json and its credential helpers).
	Keychain authn.Keychain
	// UserAgent is sent with every request ("builder/<version>").
	UserAgent string
	// Jobs bounds the blobs moved at once; 0 is 4.
	Jobs int
	// Backoff between retries; zero is 1 s, tripled, 3 tries.
	Backoff remote.Backoff
}

// retryCodes are the statuses retried with backoff: rate limits and a
// server's temporary failures.
var retryCodes = []int{http.StatusRequestTimeout, http.StatusTooManyRequests,
	http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout}

// ParseReference parses ref as docker does (`busybox` is
// index.docker.io/library/busybox:latest), marking the registry insecure
// when it is a loopback host or listed as insecure.
func (o *Options) ParseReference(ref string) (name.Reference, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("image reference %q: %w", ref, err)
	}
	if o.Insecure(r.Context().RegistryStr()) {
		return name.ParseReference(ref, name.Insecure)
	}
	return r, nil
}

// Insecure reports whether host may be reached over plain HTTP: a
// loopback host (localhost, 127.0.0.1, ::1, with any port) or one given
// as insecure.
func (o *Options) Insecure(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.Trim(h, "[]")
	if h == "localhost" || h == "127.0.0.1" || h == "::1" {
		return true
	}
	return o.listedInsecure(host)
}

// listedInsecure reports whether the user listed host as insecure: only
// then is a TLS certificate not checked. A loopback host may speak plain
// HTTP, but one that speaks TLS must show a valid certificate.
func (o *Options) listedInsecure(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	return slices.ContainsFunc(o.InsecureRegistries, func(s string) bool {
		s = strings.TrimPrefix(strings.TrimPrefix(s, "http://"), "https://")
		return s == host || s == h
	})
}

// Remote returns the remote.Options for requests to the registry reg.
func (o *Options) Remote(ctx context.Context, reg name.Registry) ([]remote.Option, error) {
	t, err := o.transport(reg.RegistryStr())
	if err != nil {
		return nil, err
	}
	kc := o.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	backoff := o.Backoff
	if backoff.Steps == 0 {
		backoff = remote.Backoff{Duration: time.Second, Factor: 3, Jitter: 0.1, Steps: 3}
	}
	jobs := o.Jobs
	if jobs <= 0 {
		jobs = 4
	}
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithTransport(t),
		remote.WithAuthFromKeychain(kc),
		remote.WithRetryBackoff(backoff),
		remote.WithRetryStatusCodes(retryCodes...),
		remote.WithJobs(jobs),
	}
	if o.UserAgent != "" {
		opts = append(opts, remote.WithUserAgent(o.UserAgent))
	}
	return opts, nil
}

// transport is the HTTP transport for host (host[:port]): the CA files
// trusted besides the system's; certificates not checked for a host
// listed as insecure.
func (o *Options) transport(host string) (*http.Transport, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if len(o.CAFiles) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		for _, f := range o.CAFiles {
			pem, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("registry CA file: %w", err)
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("registry CA file %s: no PEM certificate in it", f)
			}
		}
		t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	if o.listedInsecure(host) {
		if t.TLSClientConfig == nil {
			t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		// The user said this host is not to be checked: a self-signed
		// certificate is what such a host usually has.
		t.TLSClientConfig.InsecureSkipVerify = true
	}
	return t, nil
}

// Candidates are the references to try for ref, in order: ref on each
// mirror of its registry, then ref itself.
func (o *Options) Candidates(ref name.Reference) []name.Reference {
	reg := ref.Context().RegistryStr()
	var mirrors []string
	if reg == name.DefaultRegistry {
		mirrors = append(o.Mirrors["docker.io"], o.Mirrors[name.DefaultRegistry]...)
	} else {
		mirrors = o.Mirrors[reg]
	}
	var out []name.Reference
	for _, m := range mirrors {
		m = strings.TrimPrefix(strings.TrimPrefix(m, "https://"), "http://")
		s := m + "/" + ref.Context().RepositoryStr()
		sep := ":"
		if _, ok := ref.(name.Digest); ok {
			sep = "@"
		}
		mr, err := o.ParseReference(s + sep + ref.Identifier())
		if err == nil {
			out = append(out, mr)
		}
	}
	return append(out, ref)
}
