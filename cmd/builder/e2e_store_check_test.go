package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/store"
	"github.com/builder-dev/builder/store/cache"
)

// storeCheck looks at one aspect of the store under root and returns what
// is wrong, one sentence each.
type storeCheck struct {
	name string
	run  func(root string) []string
}

// storeChecks are what checkStoreConsistent verifies: the layout read
// directly, and the builder's own `store verify`.
var storeChecks = []storeCheck{
	{"content layout", checkContentLayout},
	{"blobs", checkBlobs},
	{"index", checkIndex},
	{"cache records", checkRecords},
	{"store verify", checkStoreVerify},
}

// checkStoreVerify runs `builder store verify`, which must find nothing.
func checkStoreVerify(root string) []string {
	out, err := exec.Command(builderBin, "--root", root, "store", "verify").CombinedOutput()
	if err != nil {
		return []string{fmt.Sprintf("store verify: %v\n%s", err, out)}
	}
	return nil
}

// litterChecks find what a killed process may leave for the next one to
// clean up (mounts, temporary files, a build's writable layers): never
// wrong, only waste.
var litterChecks = []storeCheck{
	{"mounts", checkMounts},
	{"litter", checkLitter},
}

// checkStoreConsistent verifies the store under root by reading it
// directly, not through the builder: every blob matches its name, index.json
// parses and every image it lists has its manifest, config and layers,
// every cache record's layer blob exists, nothing is mounted under the root,
// and no temporary file or half-written entry is left. Run it when no
// builder process works on root.
func checkStoreConsistent(t *testing.T, root string) {
	t.Helper()
	runStoreChecks(t, root, storeChecks, t.Errorf)
	runStoreChecks(t, root, litterChecks, t.Errorf)
}

// checkStoreAfterCrash is checkStoreConsistent right after a process was
// killed: the store must be consistent, while litter (see litterChecks) is
// only logged, for the next command to clean up.
func checkStoreAfterCrash(t *testing.T, root string) {
	t.Helper()
	runStoreChecks(t, root, storeChecks, t.Errorf)
	runStoreChecks(t, root, litterChecks, t.Logf)
}

func runStoreChecks(t *testing.T, root string, checks []storeCheck, report func(string, ...any)) {
	t.Helper()
	for _, c := range checks {
		for _, p := range c.run(root) {
			report("store %s: %s: %s", root, c.name, p)
		}
	}
}

// checkContentLayout: content/ holds oci-layout, index.json and
// blobs/sha256/<hex> only; anything else is a temporary or half-written
// file.
func checkContentLayout(root string) []string {
	var out []string
	content := filepath.Join(root, "content")
	err := filepath.WalkDir(content, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(content, p)
		switch {
		case rel == "." || rel == "blobs" || rel == "blobs/sha256":
			if !d.IsDir() {
				out = append(out, rel+" is not a directory")
			}
		case rel == ocispec.ImageLayoutFile || rel == ocispec.ImageIndexFile:
			if !d.Type().IsRegular() {
				out = append(out, rel+" is not a regular file")
			}
		case filepath.Dir(rel) == "blobs/sha256" && digest.NewDigestFromEncoded(digest.SHA256, d.Name()).Validate() == nil:
			if !d.Type().IsRegular() {
				out = append(out, rel+" is not a regular file")
			}
		default:
			out = append(out, "unexpected entry "+rel)
			if d.IsDir() {
				return filepath.SkipDir
			}
		}
		return nil
	})
	if err != nil {
		out = append(out, err.Error())
	}
	return out
}

// checkBlobs rehashes every blob: a half-written one does not match its
// name.
func checkBlobs(root string) []string {
	var out []string
	dir := filepath.Join(root, "content", "blobs", "sha256")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return []string{err.Error()}
	}
	for _, e := range entries {
		want := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		if want.Validate() != nil {
			continue // checkContentLayout reports it
		}
		got, err := fileDigest(filepath.Join(dir, e.Name()))
		if err != nil {
			out = append(out, err.Error())
		} else if got != want {
			out = append(out, fmt.Sprintf("blob %s holds content of digest %s", want, got))
		}
	}
	return out
}

func fileDigest(p string) (digest.Digest, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	d := digest.Canonical.Digester()
	if _, err := io.Copy(d.Hash(), f); err != nil {
		return "", fmt.Errorf("read %s: %w", p, err)
	}
	return d.Digest(), nil
}

// checkIndex: index.json parses, names are unique, and every image it
// lists has its manifest, config and layers, of the sizes the descriptors
// say.
func checkIndex(root string) []string {
	var out []string
	content := filepath.Join(root, "content")
	var idx ocispec.Index
	if err := readJSONFile(filepath.Join(content, ocispec.ImageIndexFile), &idx); err != nil {
		return []string{err.Error()}
	}
	names := map[string]bool{}
	for _, e := range idx.Manifests {
		if n := e.Annotations[ocispec.AnnotationRefName]; n != "" {
			if names[n] {
				out = append(out, "tag "+n+" listed twice")
			}
			names[n] = true
		}
		what := fmt.Sprintf("image %s (%q)", e.Digest, e.Annotations[ocispec.AnnotationRefName])
		if p := checkBlobDesc(content, e); p != "" {
			out = append(out, what+": manifest: "+p)
			continue
		}
		var m ocispec.Manifest
		if err := readJSONFile(blobFile(content, e.Digest), &m); err != nil {
			out = append(out, what+": "+err.Error())
			continue
		}
		for _, d := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
			if p := checkBlobDesc(content, d); p != "" {
				out = append(out, what+": "+p)
			}
		}
		var cfg ocispec.Image
		if err := readJSONFile(blobFile(content, m.Config.Digest), &cfg); err != nil {
			out = append(out, what+": config: "+err.Error())
		} else if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
			out = append(out, fmt.Sprintf("%s: %d diff IDs for %d layers", what, len(cfg.RootFS.DiffIDs), len(m.Layers)))
		}
	}
	return out
}

// checkBlobDesc says what is wrong with the blob d, or "".
func checkBlobDesc(content string, d ocispec.Descriptor) string {
	if err := d.Digest.Validate(); err != nil {
		return fmt.Sprintf("digest %q: %v", d.Digest, err)
	}
	fi, err := os.Stat(blobFile(content, d.Digest))
	if errors.Is(err, os.ErrNotExist) {
		return "blob " + d.Digest.String() + " is missing"
	}
	if err != nil {
		return err.Error()
	}
	if fi.Size() != d.Size {
		return fmt.Sprintf("blob %s has %d bytes, its descriptor says %d", d.Digest, fi.Size(), d.Size)
	}
	return ""
}

func blobFile(content string, d digest.Digest) string {
	return filepath.Join(content, "blobs", d.Algorithm().String(), d.Encoded())
}

func readJSONFile(p string, v any) error {
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %s: %w", p, err)
	}
	return nil
}

// checkRecords: meta.db opens and every cache record's layer blob exists.
func checkRecords(root string) []string {
	ctx := context.Background()
	st, err := store.Open(ctx, root)
	if err != nil {
		return []string{err.Error()}
	}
	recs, err := cache.List(ctx, st.Meta())
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	for _, r := range recs {
		if p := checkBlobDesc(st.Content().ContentDir(), r.Layer); p != "" {
			out = append(out, fmt.Sprintf("record %s (%s): %s", r.Key, r.Step.Text, p))
		}
	}
	return out
}

// checkMounts: nothing is mounted at or under root in our mount namespace.
func checkMounts(root string) []string {
	var out []string
	for _, m := range mountPoints() {
		if m == root || strings.HasPrefix(m, root+"/") {
			out = append(out, "left mounted: "+m)
		}
	}
	return out
}

// mountPoints lists the mount points of this mount namespace.
func mountPoints() []string {
	mounts, err := mountinfo.GetMounts(nil)
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(mounts))
	for _, m := range mounts {
		out = append(out, m.Mountpoint)
	}
	return out
}

// checkLitter: no temporary file of the store, no layer being unpacked or
// removed, and no writable snapshot or directory of a container. Run it
// when no builder process works on root. The tests make no containers but
// `run --rm` ones, so every writable snapshot or container directory left
// is litter.
func checkLitter(root string) []string {
	var out []string
	for _, dir := range []string{"tmp", "snapshots/tmp", "snapshots/active", "containers"} {
		entries, err := os.ReadDir(filepath.Join(root, dir))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			out = append(out, err.Error())
		}
		for _, e := range entries {
			out = append(out, "left behind: "+filepath.Join(dir, e.Name()))
		}
	}
	return out
}
