package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestParseReferenceDockerHub(t *testing.T) {
	o := &Options{}
	for in, want := range map[string]string{
		"busybox":                 "index.docker.io/library/busybox:latest",
		"docker.io/library/app:1": "index.docker.io/library/app:1",
		"user/app":                "index.docker.io/user/app:latest",
		"127.0.0.1:5000/x/y:2":    "127.0.0.1:5000/x/y:2",
		"reg.example/app@sha256:" + strings.Repeat("a", 64): "reg.example/app@sha256:" + strings.Repeat("a", 64),
	} {
		r, err := o.ParseReference(in)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if r.Name() != want {
			t.Errorf("%s: got %s, want %s", in, r.Name(), want)
		}
	}
	if _, err := o.ParseReference("UPPER/Case"); err == nil {
		t.Error("an invalid reference parsed")
	}
}

func TestInsecure(t *testing.T) {
	o := &Options{Config: Config{InsecureRegistries: []string{"reg.lan:5000", "http://other.lan"}}}
	for host, want := range map[string]bool{
		"localhost:5000":   true,
		"127.0.0.1:41234":  true,
		"[::1]:5000":       true,
		"reg.lan:5000":     true,
		"other.lan":        true,
		"other.lan:443":    true,
		"reg.lan:6000":     false,
		"registry.example": false,
		"index.docker.io":  false,
	} {
		if got := o.Insecure(host); got != want {
			t.Errorf("Insecure(%s) = %v, want %v", host, got, want)
		}
	}
	// Loopback may be plain HTTP, but its TLS is still checked.
	if o.listedInsecure("127.0.0.1:5000") {
		t.Error("loopback skips TLS verification")
	}
	r, _ := o.ParseReference("reg.lan:5000/app")
	if r.Context().Scheme() != "http" {
		t.Errorf("listed insecure host has scheme %s", r.Context().Scheme())
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "registries.json")
	os.WriteFile(p, []byte(`{"insecure-registries":["a:1"],"ca-files":["ca.pem","/abs.pem"],"mirrors":{"docker.io":["mirror.lan:5000"]}}`), 0o644)
	c, err := LoadConfig(p, true)
	if err != nil {
		t.Fatal(err)
	}
	if c.InsecureRegistries[0] != "a:1" || c.CAFiles[0] != filepath.Join(dir, "ca.pem") || c.CAFiles[1] != "/abs.pem" || c.Mirrors["docker.io"][0] != "mirror.lan:5000" {
		t.Errorf("config %+v", c)
	}
	if _, err := LoadConfig(filepath.Join(dir, "missing.json"), false); err != nil {
		t.Errorf("a missing default config: %v", err)
	}
	if _, err := LoadConfig(filepath.Join(dir, "missing.json"), true); err == nil {
		t.Error("a missing given config is no error")
	}
	t.Setenv("BUILDER_REGISTRY_CONFIG", p)
	if DefaultConfigPath() != p {
		t.Errorf("DefaultConfigPath ignores $BUILDER_REGISTRY_CONFIG: %s", DefaultConfigPath())
	}
}

func TestCandidatesMirrors(t *testing.T) {
	o := &Options{Config: Config{Mirrors: map[string][]string{"docker.io": {"mirror.lan:5000"}}}}
	r, _ := o.ParseReference("busybox:1")
	got := o.Candidates(r)
	if len(got) != 2 || got[0].Name() != "mirror.lan:5000/library/busybox:1" || got[1].Name() != r.Name() {
		t.Errorf("candidates %v", got)
	}
	r, _ = o.ParseReference("quay.io/x/y:1")
	if got := o.Candidates(r); len(got) != 1 {
		t.Errorf("a registry without mirrors has candidates %v", got)
	}
}

func TestWrapKinds(t *testing.T) {
	srv := httptest.NewServer(ggcrregistry.New())
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	o := &Options{}
	r, _ := o.ParseReference(host + "/missing/app:1")
	opts, err := o.Remote(context.Background(), r.Context().Registry)
	if err != nil {
		t.Fatal(err)
	}
	_, err = remote.Get(r, opts...)
	err = Wrap("pull", r.String(), host, err)
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), host) || !strings.Contains(err.Error(), "missing/app") {
		t.Errorf("404: %v", err)
	}

	o.Backoff = remote.Backoff{Steps: 1}
	gone, _ := o.ParseReference("127.0.0.1:1/app:1")
	opts, _ = o.Remote(context.Background(), gone.Context().Registry)
	_, err = remote.Get(gone, opts...)
	err = Wrap("pull", gone.String(), "127.0.0.1:1", err)
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("unreachable: %v", err)
	}
	if Wrap("pull", "x", "y", context.Canceled) != context.Canceled {
		t.Error("a cancellation is wrapped")
	}
}

func TestSaveRemoveLogin(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(p, []byte(`{"auths":{"other:1":{"auth":"eDp5"}},"psFormat":"table","proxies":{"default":{"httpProxy":"p"}}}`), 0o644)
	if err := SaveLogin(p, "127.0.0.1:5000", "alice", "s3cret"); err != nil {
		t.Fatal(err)
	}
	if err := SaveLogin(p, "docker.io", "bob", "pw"); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
	var file map[string]json.RawMessage
	b, _ := os.ReadFile(p)
	if err := json.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	if string(file["psFormat"]) != `"table"` || file["proxies"] == nil {
		t.Errorf("other fields lost:\n%s", b)
	}
	var auths map[string]struct{ Auth string }
	json.Unmarshal(file["auths"], &auths)
	if got, _ := base64.StdEncoding.DecodeString(auths["127.0.0.1:5000"].Auth); string(got) != "alice:s3cret" {
		t.Errorf("auth %q", got)
	}
	if auths[dockerHubKey].Auth == "" || auths["other:1"].Auth != "eDp5" {
		t.Errorf("auths %+v", auths)
	}
	if err := RemoveLogin(p, "127.0.0.1:5000"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); strings.Contains(string(b), "127.0.0.1:5000") {
		t.Errorf("logout left the entry:\n%s", b)
	}
	if err := RemoveLogin(p, "127.0.0.1:5000"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second logout: %v", err)
	}

	helper := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(helper, []byte(`{"credsStore":"secretservice"}`), 0o600)
	if err := SaveLogin(helper, "reg:1", "a", "b"); !errors.Is(err, ErrCredentialHelper) {
		t.Errorf("login with a credsStore: %v", err)
	}
}

func TestCheckLogin(t *testing.T) {
	srv := httptest.NewServer(ggcrregistry.New())
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	// An open registry takes any credentials.
	if err := (&Options{}).CheckLogin(context.Background(), host, "u", "p"); err != nil {
		t.Errorf("login: %v", err)
	}
	err := (&Options{}).CheckLogin(context.Background(), "127.0.0.1:1", "u", "p")
	if !errors.Is(err, ErrUnreachable) {
		t.Errorf("login to nothing: %v", err)
	}
}

func TestRetriesServerErrors(t *testing.T) {
	var failed atomic.Int64
	h := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/manifests/") && failed.Add(1) <= 2 {
			code := http.StatusServiceUnavailable
			if failed.Load() == 2 {
				code = http.StatusTooManyRequests
			}
			w.WriteHeader(code)
			return
		}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	o := &Options{Backoff: remote.Backoff{Duration: time.Millisecond, Factor: 1, Steps: 4}}
	r, _ := o.ParseReference(host + "/app:1")
	opts, err := o.Remote(context.Background(), r.Context().Registry)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, empty.Image, opts...); err != nil {
		t.Fatal(err)
	}
	failed.Store(0)
	if _, err := remote.Get(r, opts...); err != nil {
		t.Errorf("a 503 then a 429 were not retried: %v", err)
	}
	if n := failed.Load(); n < 3 {
		t.Errorf("%d manifest requests, want the two failures and a retry", n)
	}
}
