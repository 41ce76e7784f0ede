package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Sentinel kinds of registry failures, checked with errors.Is.
var (
	ErrNotFound     = errors.New("not found")
	ErrUnauthorized = errors.New("authentication required or refused")
	ErrDenied       = errors.New("access denied")
	ErrUnreachable  = errors.New("registry unreachable")
	ErrUntrusted    = errors.New("TLS certificate not trusted")
)

// Error is a registry operation's failure, naming what was asked of which
// registry.
type Error struct {
	Op       string // "pull", "push", "login"
	Ref      string
	Registry string
	Kind     error // one of the sentinels, or nil
	Err      error
}

func (e *Error) Error() string {
	hint := ""
	switch e.Kind {
	case ErrNotFound:
		hint = ": not found in the registry"
	case ErrUnauthorized:
		hint = ": authentication required or refused (run `builder login " + e.Registry + "`)"
		if e.Op == "login" {
			hint = ": the registry refused these credentials"
		}
	case ErrDenied:
		hint = ": access denied"
	case ErrUnreachable:
		hint = ": registry unreachable"
	case ErrUntrusted:
		hint = ": its TLS certificate is not trusted (give its CA with --registry-ca FILE)"
	}
	return fmt.Sprintf("%s %s (registry %s)%s: %v", e.Op, e.Ref, e.Registry, hint, e.Err)
}

func (e *Error) Unwrap() []error {
	if e.Kind == nil {
		return []error{e.Err}
	}
	return []error{e.Kind, e.Err}
}

// Wrap classifies err, from a request about ref to registry, into an
// *Error; nil stays nil and a cancellation stays itself.
func Wrap(op, ref, registry string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var already *Error
	if errors.As(err, &already) {
		return err
	}
	return &Error{Op: op, Ref: ref, Registry: registry, Kind: kind(err), Err: err}
}

func kind(err error) error {
	var ce *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	// go-containerregistry's ping joins its attempts' errors into text,
	// so the certificate failure may be there only as words.
	if errors.As(err, &ce) || errors.As(err, &ua) || strings.Contains(err.Error(), "x509: ") {
		return ErrUntrusted
	}
	var te *transport.Error
	if errors.As(err, &te) {
		for _, d := range te.Errors {
			switch d.Code {
			case transport.ManifestUnknownErrorCode, transport.BlobUnknownErrorCode, transport.NameUnknownErrorCode:
				return ErrNotFound
			case transport.UnauthorizedErrorCode:
				return ErrUnauthorized
			case transport.DeniedErrorCode:
				return ErrDenied
			}
		}
		switch te.StatusCode {
		case http.StatusNotFound:
			return ErrNotFound
		case http.StatusUnauthorized:
			return ErrUnauthorized
		case http.StatusForbidden:
			return ErrDenied
		}
		return nil
	}
	var ne net.Error
	var ue *url.Error
	var oe *net.OpError
	if errors.As(err, &ue) {
		// A request fails as a *url.Error also when its body could not
		// be read: a local blob that no longer matches its digest is the
		// store's damage, not the network's.
		if errors.As(ue.Err, &oe) || errors.As(ue.Err, &ne) || ue.Timeout() ||
			errors.Is(ue.Err, io.EOF) || errors.Is(ue.Err, io.ErrUnexpectedEOF) || errors.Is(ue.Err, syscall.ECONNRESET) {
			return ErrUnreachable
		}
		return nil
	}
	if errors.As(err, &oe) || errors.As(err, &ne) {
		return ErrUnreachable
	}
	return nil
}
