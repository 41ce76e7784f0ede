package testutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// The harness's log sees what a client does: uploads, a second push that
// uploads nothing, a cross-repository mount, blob downloads with their
// bytes; a corrupted blob fails its digest check; Stop and Restart keep
// the port and the storage.
func TestRegistryPlain(t *testing.T) {
	r := StartRegistry(t, RegistryOptions{})
	img, err := random.Image(1000, 2)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := name.ParseReference(r.Host() + "/a/img:1")
	b, _ := name.ParseReference(r.Host() + "/b/img:1")
	if err := remote.Write(a, img); err != nil {
		t.Fatal(err)
	}
	reqs := r.Requests()
	if n := len(reqs.BlobUploads()); n != 3 {
		t.Errorf("first push: %d blob uploads, want 3 (2 layers, config):\n%s", n, reqs)
	}
	mark := len(reqs)
	if err := remote.Write(a, img); err != nil {
		t.Fatal(err)
	}
	if again := r.Requests()[mark:]; len(again.BlobUploads()) != 0 {
		t.Errorf("second push uploaded blobs:\n%s", again)
	}
	mark = len(r.Requests())
	// An image read from a is mounted from there.
	fromA, err := remote.Image(a)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(b, fromA); err != nil {
		t.Fatal(err)
	}
	other := r.Requests()[mark:]
	if len(other.Mounts()) == 0 || len(other.BlobUploads()) != 0 {
		t.Errorf("push to another repository: want mounts and no upload:\n%s", other)
	}
	if got := r.RepoLayers("b/img"); len(got) != 3 {
		t.Errorf("b/img links %d blobs, want 3", len(got))
	}

	layers, _ := img.Layers()
	dgst, _ := layers[0].Digest()
	size, _ := layers[0].Size()
	mark = len(r.Requests())
	pulled, err := remote.Image(a)
	if err != nil {
		t.Fatal(err)
	}
	pl, _ := pulled.Layers()
	rc, err := pl[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, rc)
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	gets := r.Requests()[mark:].BlobGets()
	if len(gets) != 1 || gets.Bytes() != size || !strings.HasSuffix(gets[0].Path, dgst.String()) {
		t.Errorf("blob GETs %s, want one of %d bytes for %s", gets, size, dgst)
	}

	if !r.HasBlob(dgst.String()) {
		t.Fatalf("storage lacks %s", dgst)
	}
	r.CorruptBlob(dgst.String())
	rc, err = pl[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(io.Discard, rc)
	if err == nil {
		err = rc.Close()
	}
	if err == nil || !strings.Contains(err.Error(), dgst.Hex) {
		t.Errorf("reading the corrupted blob: %v, want a digest error naming it", err)
	}

	r.Stop()
	if _, err := remote.Head(a); err == nil {
		t.Error("stopped registry answered")
	}
	r.Restart()
	if _, err := remote.Head(a); err != nil {
		t.Errorf("restarted registry: %v", err)
	}
}

// StopOn kills the registry at the first completed upload: the rest of the
// push fails.
func TestRegistryStopOn(t *testing.T) {
	r := StartRegistry(t, RegistryOptions{})
	img, err := random.Image(1<<20, 3)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(r.Host() + "/a/img:1")
	r.StopOn(`^PUT /v2/.*/blobs/uploads/`)
	if err := remote.Write(ref, img); err == nil {
		t.Fatal("push to a registry that vanished succeeded")
	}
	if !r.Stopped() {
		t.Fatal("not stopped")
	}
	if n := len(r.RepoLayers("a/img")); n < 1 || n > 4 {
		t.Errorf("%d blobs linked", n)
	}
}

// StopOnUpload kills the registry while a layer is on its way.
func TestRegistryStopOnUpload(t *testing.T) {
	r := StartRegistry(t, RegistryOptions{})
	img, err := random.Image(32<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(r.Host() + "/a/img:1")
	r.StopOnUpload(1 << 20)
	if err := remote.Write(ref, img, remote.WithRetryBackoff(remote.Backoff{Steps: 1})); err == nil {
		t.Fatal("push to a registry that vanished succeeded")
	}
	if !r.Stopped() {
		t.Fatal("not stopped")
	}
	layers, _ := img.Layers()
	d, _ := layers[0].Digest()
	if r.HasBlob(d.String()) {
		t.Error("the layer cut off mid-upload is in the registry")
	}
}

// TLS with the harness's CA and basic auth: no credentials is a 401, the
// wrong CA a certificate error, the right ones work.
func TestRegistryTLSAuth(t *testing.T) {
	r := StartRegistry(t, RegistryOptions{TLS: true, User: "alice", Password: "s3cret"})
	pem, err := os.ReadFile(r.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("CA file holds no certificate")
	}
	tr := remote.WithTransport(&http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}})
	ref, _ := name.ParseReference(r.Host() + "/a/img:1")
	img, _ := random.Image(100, 1)

	err = remote.Write(ref, img, tr)
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusUnauthorized {
		t.Errorf("push without credentials: %v, want 401", err)
	}
	auth := remote.WithAuth(&authn.Basic{Username: "alice", Password: "s3cret"})
	var uerr x509.UnknownAuthorityError
	if err := remote.Write(ref, img, auth); !errors.As(err, &uerr) {
		t.Errorf("push without the CA: %v, want an unknown-authority error", err)
	}
	if err := remote.Write(ref, img, tr, auth); err != nil {
		t.Fatal(err)
	}
	if n := len(r.Requests().BlobUploads()); n != 2 {
		t.Errorf("%d uploads, want 2", n)
	}
}
