package testutil

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// RegistryBinary is Debian's docker-registry (distribution 2.8), which
// Makefile's deps target installs.
const RegistryBinary = "/usr/bin/docker-registry"

// RegistryOptions says how StartRegistry's registry is served. The zero
// value is plain HTTP without auth.
type RegistryOptions struct {
	// TLS serves HTTPS with a server certificate for 127.0.0.1 and
	// localhost signed by a CA the harness makes; Registry.CAFile is that
	// CA, for `--registry-ca`.
	TLS bool
	// User and Password, when User is set, require basic auth (an
	// htpasswd file with this one account).
	User, Password string
}

// Registry is a docker-registry process on 127.0.0.1 at a port the kernel
// picked, its storage and config in the test's temp dir. It is killed
// when the test ends. Subtests may share it: Requests and RepoLayers
// report trouble with Errorf on the test that started it, never FailNow
// from another goroutine.
type Registry struct {
	t    testing.TB
	opts RegistryOptions
	// Storage is the registry's filesystem storage root.
	Storage string
	// CAFile is the CA certificate that signed the server's (TLS only).
	CAFile string

	config string
	host   string
	client *http.Client

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	stderr  bytes.Buffer
	reqs    Requests
	stopOn  *regexp.Regexp
	stopped bool
	syncs   int
}

// Request is one request from the registry's access log (2.8 writes
// Apache's combined format on stdout: method, URI, status, bytes written).
type Request struct {
	Method string
	Path   string
	Query  url.Values
	Status int
	// Bytes is the size of the response body the registry wrote.
	Bytes int64
}

func (q Request) String() string {
	u := q.Path
	if len(q.Query) > 0 {
		u += "?" + q.Query.Encode()
	}
	return fmt.Sprintf("%s %s %d %d", q.Method, u, q.Status, q.Bytes)
}

// StartRegistry starts a registry as opts say and waits until /v2/
// answers. Without the binary the test is skipped (failed under CI=1, so
// that CI never passes by skipping).
func StartRegistry(t testing.TB, opts RegistryOptions) *Registry {
	t.Helper()
	if _, err := os.Stat(RegistryBinary); err != nil {
		msg := "docker-registry not installed (make deps, or apt-get install -y docker-registry)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	r := &Registry{t: t, opts: opts, Storage: filepath.Join(dir, "storage"), client: &http.Client{Timeout: 5 * time.Second}}
	r.host = FreePort(t)

	var cfg strings.Builder
	fmt.Fprintf(&cfg, `version: 0.1
log:
  level: warn
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
  secret: builder-test
`, r.Storage, r.host)
	if opts.TLS {
		cert, key, pool := r.writeCerts(dir)
		fmt.Fprintf(&cfg, "  tls:\n    certificate: %s\n    key: %s\n", cert, key)
		r.client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	}
	if opts.User != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(opts.Password), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		// MinCost: the registry checks the hash on every request.
		htpasswd := WriteFile(t, dir, "htpasswd", []byte(opts.User+":"+string(hash)+"\n"))
		fmt.Fprintf(&cfg, "auth:\n  htpasswd:\n    realm: builder-test\n    path: %s\n", htpasswd)
	}
	r.config = WriteFile(t, dir, "config.yml", []byte(cfg.String()))
	r.start()
	t.Cleanup(func() {
		r.Stop()
		if t.Failed() {
			r.mu.Lock()
			t.Logf("registry %s stderr:\n%s", r.host, r.stderr.String())
			r.mu.Unlock()
		}
	})
	return r
}

// FreePort is "127.0.0.1:PORT" with a port the kernel picked and nothing
// listens on (until something takes it).
func FreePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// writeCerts makes a CA and a server certificate for 127.0.0.1 and
// localhost, writes the CA to CAFile and returns the server's cert and key
// paths and a pool with the CA.
func (r *Registry) writeCerts(dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t := r.t
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	now := time.Now()
	caKey, srvKey := newKey(), newKey()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "builder test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	pemOf := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }
	r.CAFile = WriteFile(t, dir, "ca.pem", pemOf("CERTIFICATE", caDER))
	certFile = WriteFile(t, dir, "server.pem", pemOf("CERTIFICATE", srvDER))
	keyFile = WriteFile(t, dir, "server-key.pem", pemOf("EC PRIVATE KEY", keyDER))
	pool = x509.NewCertPool()
	pool.AddCert(ca)
	return certFile, keyFile, pool
}

// start runs the registry and waits until /v2/ answers (401 counts: the
// registry is up, it wants credentials).
func (r *Registry) start() {
	t := r.t
	t.Helper()
	cmd := exec.Command(RegistryBinary, "serve", r.config)
	cmd.Stdout = &logWriter{r: r}
	cmd.Stderr = &lockedWriter{mu: &r.mu, w: &r.stderr}
	// The registry dies with the test binary even when it is killed
	// before its cleanups run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", RegistryBinary, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	r.mu.Lock()
	r.cmd, r.done, r.stopped = cmd, done, false
	r.mu.Unlock()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := r.client.Get(r.URL("/v2/"))
		if err == nil {
			resp.Body.Close()
			return
		}
		select {
		case <-done:
			r.mu.Lock()
			defer r.mu.Unlock()
			t.Fatalf("docker-registry exited at start:\n%s", r.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			r.Stop()
			t.Fatalf("docker-registry on %s did not answer /v2/: %v", r.host, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Host is the registry's "127.0.0.1:PORT", the host part of references.
func (r *Registry) Host() string { return r.host }

// URL is the registry's URL for path.
func (r *Registry) URL(path string) string {
	scheme := "http"
	if r.opts.TLS {
		scheme = "https"
	}
	return scheme + "://" + r.host + path
}

// Stop kills the registry and waits for it: a registry that vanished.
// Its storage stays for Restart.
func (r *Registry) Stop() {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.stopped = true
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-done
}

// Restart starts a stopped registry again on the same port and storage.
func (r *Registry) Restart() {
	r.t.Helper()
	r.Stop()
	r.start()
}

// StopOn kills the registry as soon as its log shows a request whose
// "METHOD PATH" matches pattern (a regexp), while the requests after it
// are still in flight: a registry vanishing mid-push.
func (r *Registry) StopOn(pattern string) {
	re := regexp.MustCompile(pattern)
	r.mu.Lock()
	r.stopOn = re
	r.mu.Unlock()
}

// StopOnUpload kills the registry as soon as a blob upload in progress
// has at least n bytes in its storage: a registry vanishing in the middle
// of a layer. It watches the upload sessions' data files (the log shows a
// request only once it is over).
func (r *Registry) StopOnUpload(n int64) {
	r.mu.Lock()
	done := r.done
	r.mu.Unlock()
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(2 * time.Millisecond):
			}
			if r.uploadReached(n) {
				r.mu.Lock()
				r.stopped = true
				r.cmd.Process.Kill()
				r.mu.Unlock()
				return
			}
		}
	}()
}

// uploadReached reports whether an upload session's data file (under
// repositories/NAME/_uploads/ID/data) holds n bytes or more.
func (r *Registry) uploadReached(n int64) bool {
	found := false
	filepath.WalkDir(filepath.Join(r.Storage, "docker/registry/v2/repositories"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || found {
			return nil
		}
		if d.IsDir() && (d.Name() == "_layers" || d.Name() == "_manifests") {
			return filepath.SkipDir
		}
		if d.Name() == "data" && filepath.Base(filepath.Dir(filepath.Dir(p))) == "_uploads" {
			if fi, err := d.Info(); err == nil && fi.Size() >= n {
				found = true
			}
		}
		return nil
	})
	return found
}

// Stopped reports whether the registry was stopped (by Stop or StopOn).
func (r *Registry) Stopped() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stopped
}

// Requests is every request the registry logged so far, across restarts.
// It first makes a request of its own and waits for its log line, so that
// the lines of requests answered before the call are all in.
func (r *Registry) Requests() Requests {
	r.t.Helper()
	r.mu.Lock()
	r.syncs++
	n := strconv.Itoa(r.syncs)
	alive := !r.stopped
	r.mu.Unlock()
	if alive {
		resp, err := r.client.Get(r.URL("/v2/?harness-sync=" + n))
		if err != nil {
			r.t.Errorf("registry %s: %v", r.host, err)
		} else {
			resp.Body.Close()
		}
		for deadline := time.Now().Add(10 * time.Second); err == nil && !r.logged(n); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				r.t.Errorf("registry %s: the access log never showed request harness-sync=%s", r.host, n)
				break
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var out Requests
	for _, q := range r.reqs {
		if !q.Query.Has("harness-sync") {
			out = append(out, q)
		}
	}
	return out
}

// logged reports whether the sync request n is in the log.
func (r *Registry) logged(n string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.reqs) - 1; i >= 0; i-- {
		if r.reqs[i].Query.Get("harness-sync") == n {
			return true
		}
	}
	return false
}

// accessLine is one line of the combined log format:
// 127.0.0.1 - - [date] "GET /v2/ HTTP/1.1" 200 2 "referer" "agent"
var accessLine = regexp.MustCompile(`"([A-Z]+) (\S+) [^"]*" (\d{3}) (\d+|-)`)

// logWriter parses the registry's stdout (its access log) line by line.
type logWriter struct {
	r    *Registry
	part []byte
}

func (w *logWriter) Write(b []byte) (int, error) {
	w.part = append(w.part, b...)
	for {
		i := bytes.IndexByte(w.part, '\n')
		if i < 0 {
			return len(b), nil
		}
		w.r.logLine(string(w.part[:i]))
		w.part = w.part[i+1:]
	}
}

func (r *Registry) logLine(line string) {
	m := accessLine.FindStringSubmatch(line)
	if m == nil {
		return
	}
	u, err := url.ParseRequestURI(m[2])
	if err != nil {
		return
	}
	q := Request{Method: m[1], Path: u.Path, Query: u.Query()}
	q.Status, _ = strconv.Atoi(m[3])
	q.Bytes, _ = strconv.ParseInt(m[4], 10, 64)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, q)
	if r.stopOn != nil && r.stopOn.MatchString(q.Method+" "+q.Path) {
		r.stopOn = nil
		r.stopped = true
		// Only the signal: this runs in the goroutine cmd.Wait waits for.
		r.cmd.Process.Kill()
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(b)
}

// Requests is a list of logged requests, to filter and count.
type Requests []Request

// Match is the requests whose method is method ("" for any) and whose path
// matches the regexp pattern.
func (rs Requests) Match(method, pattern string) Requests {
	re := regexp.MustCompile(pattern)
	var out Requests
	for _, q := range rs {
		if (method == "" || q.Method == method) && re.MatchString(q.Path) {
			out = append(out, q)
		}
	}
	return out
}

// Status is the requests answered with code.
func (rs Requests) Status(code int) Requests {
	var out Requests
	for _, q := range rs {
		if q.Status == code {
			out = append(out, q)
		}
	}
	return out
}

// BlobUploads is the blob uploads that completed: the PUT closing an
// upload session with the blob's digest, answered 201.
func (rs Requests) BlobUploads() Requests {
	return rs.Match("PUT", `^/v2/.+/blobs/uploads/[^/]+$`).Status(http.StatusCreated)
}

// Mounts is the cross-repository mounts that succeeded: POST
// .../blobs/uploads/?mount=DIGEST&from=REPO answered 201 (a failed mount
// is answered 202 and starts an upload).
func (rs Requests) Mounts() Requests {
	var out Requests
	for _, q := range rs.Match("POST", `^/v2/.+/blobs/uploads/$`).Status(http.StatusCreated) {
		if q.Query.Has("mount") {
			out = append(out, q)
		}
	}
	return out
}

// BlobGets is the blob downloads (GET /v2/NAME/blobs/DIGEST).
func (rs Requests) BlobGets() Requests {
	return rs.Match("GET", `^/v2/.+/blobs/sha256:[0-9a-f]{64}$`)
}

// ManifestGets is the manifest downloads (GET /v2/NAME/manifests/REF).
func (rs Requests) ManifestGets() Requests {
	return rs.Match("GET", `^/v2/.+/manifests/[^/]+$`)
}

// Bytes is the response bytes the registry wrote for rs.
func (rs Requests) Bytes() int64 {
	var n int64
	for _, q := range rs {
		n += q.Bytes
	}
	return n
}

func (rs Requests) String() string {
	var b strings.Builder
	for _, q := range rs {
		b.WriteString(q.String() + "\n")
	}
	return b.String()
}

// blobData is where the filesystem storage keeps a blob's bytes.
func (r *Registry) blobData(dgst string) string {
	hex := strings.TrimPrefix(dgst, "sha256:")
	if len(hex) != 64 {
		r.t.Fatalf("not a sha256 digest: %q", dgst)
	}
	return filepath.Join(r.Storage, "docker/registry/v2/blobs/sha256", hex[:2], hex, "data")
}

// HasBlob reports whether the registry stores the blob dgst (in any
// repository).
func (r *Registry) HasBlob(dgst string) bool {
	_, err := os.Stat(r.blobData(dgst))
	return err == nil
}

// RepoLayers is the blobs (layers and configs) linked into repository
// repo: what a HEAD in that repository finds.
func (r *Registry) RepoLayers(repo string) []string {
	r.t.Helper()
	dir := filepath.Join(r.Storage, "docker/registry/v2/repositories", repo, "_layers/sha256")
	ents, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		r.t.Error(err)
	}
	var out []string
	for _, e := range ents {
		if _, err := os.Stat(filepath.Join(dir, e.Name(), "link")); err == nil {
			out = append(out, "sha256:"+e.Name())
		}
	}
	return out
}

// CorruptBlob flips one byte in the middle of the stored blob dgst, so the
// registry serves bytes that no longer match their digest (same size).
func (r *Registry) CorruptBlob(dgst string) {
	r.t.Helper()
	p := r.blobData(dgst)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		r.t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		r.t.Fatalf("corrupt %s: %v (size %d)", dgst, err, fi.Size())
	}
	b := []byte{0}
	off := fi.Size() / 2
	if _, err := f.ReadAt(b, off); err != nil {
		r.t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		r.t.Fatal(err)
	}
}
