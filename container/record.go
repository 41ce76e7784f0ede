package container

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/builder-dev/builder/store/meta"
)

// Errors, to check with errors.Is.
var (
	// ErrNotFound: no container has that ID, ID prefix or name.
	ErrNotFound = errors.New("no such container")
	// ErrNameInUse: another container has the name already.
	ErrNameInUse = errors.New("container name already in use")
	// ErrRunning: the operation needs a stopped container.
	ErrRunning = errors.New("container is running")
	// ErrAmbiguous: an ID prefix matches several containers.
	ErrAmbiguous = errors.New("ambiguous container ID prefix")
)

var (
	recordsBucket = []byte("containers.v1")       // id -> Container
	namesBucket   = []byte("containers.names.v1") // name -> id
)

// Status is a container's recorded state.
type Status string

// Statuses a record goes through: created -> running -> exited (-> running
// again on start), and removing while rm deletes its files.
const (
	Created  Status = "created"
	Running  Status = "running"
	Exited   Status = "exited"
	Removing Status = "removing"
)

// Container is one container's record.
type Container struct {
	ID      string    `json:"id"` // 64 hex digits
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	Image   Image     `json:"image"`
	// Config is the image's config with run's overrides applied: what the
	// container runs, and what commit carries into a new image.
	Config Config     `json:"config"`
	Host   HostConfig `json:"host"`
	// SnapshotID names the writable layer (snapshot.OpenActive).
	SnapshotID string `json:"snapshotID"`
	State      State  `json:"state"`
}

// Image is the image a container was made from. Its blobs and unpacked
// layers stay in the store while the container exists (see Held), even if
// the image itself is removed.
type Image struct {
	Ref      string               `json:"ref"` // as given to run
	ID       digest.Digest        `json:"id"`  // config digest
	Manifest ocispec.Descriptor   `json:"manifest"`
	Layers   []ocispec.Descriptor `json:"layers"`
	DiffIDs  []digest.Digest      `json:"diffIDs"`
}

// Chain returns the chain IDs of the image's layers, bottom first.
func (im Image) Chain() []digest.Digest {
	// ChainIDs rewrites its argument in place.
	return identity.ChainIDs(append([]digest.Digest(nil), im.DiffIDs...))
}

// Config is what the container runs, as Docker's container config: the
// image's, with --entrypoint, arguments, -e/--env-file, -w and -u applied.
type Config struct {
	Entrypoint []string `json:"entrypoint,omitempty"`
	Cmd        []string `json:"cmd,omitempty"`
	Env        []string `json:"env,omitempty"`
	WorkingDir string   `json:"workingDir,omitempty"`
	User       string   `json:"user,omitempty"`
	StopSignal string   `json:"stopSignal,omitempty"`
	// Volumes are the image's VOLUME paths, clean and sorted: each gets
	// an anonymous volume (volume.go).
	Volumes []string `json:"volumes,omitempty"`
}

// Argv is the command line: ENTRYPOINT then CMD.
func (c Config) Argv() []string {
	return append(append([]string(nil), c.Entrypoint...), c.Cmd...)
}

// HostConfig are the settings of how the container runs, which no image
// carries.
type HostConfig struct {
	Hostname   string     `json:"hostname"`
	Network    string     `json:"network,omitempty"` // host or none
	Mounts     []Mount    `json:"mounts,omitempty"`
	ReadOnly   bool       `json:"readOnly,omitempty"`
	Tty        bool       `json:"tty,omitempty"`
	OpenStdin  bool       `json:"openStdin,omitempty"`
	AutoRemove bool       `json:"autoRemove,omitempty"`
	Resources  *Resources `json:"resources,omitempty"`
	// NoNewPrivileges is --security-opt no-new-privileges.
	NoNewPrivileges bool `json:"noNewPrivileges,omitempty"`
}

// Mount is a -v bind mount (Source is a host path) or a --tmpfs.
type Mount struct {
	Type     string `json:"type"` // bind or tmpfs
	Source   string `json:"source,omitempty"`
	Dest     string `json:"dest"`
	ReadOnly bool   `json:"readOnly,omitempty"`
}

// Resources are cgroup limits; zero fields are unlimited.
type Resources struct {
	Memory int64   `json:"memory,omitempty"` // bytes
	Pids   int64   `json:"pids,omitempty"`
	CPUs   float64 `json:"cpus,omitempty"`
}

// State is what the monitor last recorded.
type State struct {
	Status Status `json:"status"`
	// Pid is the container's init on the host (0 while starting), and
	// PidStart its start time in clock ticks since boot (/proc/<pid>/stat
	// field 22), which tells it from a later process that got the pid.
	Pid      int    `json:"pid,omitempty"`
	PidStart uint64 `json:"pidStart,omitempty"`
	// MonitorPid is the process that runs the container and records its
	// exit, with its start time.
	MonitorPid   int       `json:"monitorPid,omitempty"`
	MonitorStart uint64    `json:"monitorStart,omitempty"`
	StartedAt    time.Time `json:"startedAt,omitzero"`
	FinishedAt   time.Time `json:"finishedAt,omitzero"`
	ExitCode     int       `json:"exitCode"`
	OOMKilled    bool      `json:"oomKilled,omitempty"`
	// Error is why the last start failed, if it did.
	Error string `json:"error,omitempty"`
}

// ShortID is the 12-digit form of a container ID that ps shows.
func ShortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// NewID returns a random 64-hex-digit container ID.
func NewID() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b)
}

// ValidName is Docker's rule for container names: [a-zA-Z0-9][a-zA-Z0-9_.-]+.
func ValidName(n string) bool {
	if len(n) < 2 {
		return false
	}
	for i, r := range n {
		alnum := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !alnum && (i == 0 || r != '_' && r != '.' && r != '-') {
			return false
		}
	}
	return true
}

// insert adds c to the database; its name must be free. With an empty
// name, a free generated one is given.
func insert(ctx context.Context, db meta.DB, c *Container) error {
	if c.Name != "" && !ValidName(c.Name) {
		return fmt.Errorf("invalid container name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", c.Name)
	}
	return db.Update(ctx, func(tx *bolt.Tx) error {
		rb, err := tx.CreateBucketIfNotExists(recordsBucket)
		if err != nil {
			return err
		}
		nb, err := tx.CreateBucketIfNotExists(namesBucket)
		if err != nil {
			return err
		}
		if c.Name == "" {
			c.Name = generateName(func(n string) bool { return nb.Get([]byte(n)) != nil })
		}
		if owner := nb.Get([]byte(c.Name)); owner != nil {
			return fmt.Errorf("%w: the container name %q is already in use by container %q; remove (or rename) that container to be able to reuse that name",
				ErrNameInUse, "/"+c.Name, string(owner))
		}
		if rb.Get([]byte(c.ID)) != nil {
			return fmt.Errorf("container %s: %w", c.ID, errors.New("ID exists"))
		}
		if err := nb.Put([]byte(c.Name), []byte(c.ID)); err != nil {
			return err
		}
		return put(rb, c)
	})
}

func put(rb *bolt.Bucket, c *Container) error {
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode container %s: %w", c.ID, err)
	}
	return rb.Put([]byte(c.ID), b)
}

func decode(id, b []byte) (*Container, error) {
	var c Container
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("decode container %s: %w", id, err)
	}
	return &c, nil
}

// Get finds a container by full ID, name or unique ID prefix, as Docker
// does (an exact ID first, then a name, then a prefix).
func Get(ctx context.Context, db meta.Viewer, ref string) (*Container, error) {
	var c *Container
	err := db.View(ctx, func(tx *bolt.Tx) error {
		var err error
		c, err = lookup(tx, ref)
		return err
	})
	return c, err
}

func lookup(tx *bolt.Tx, ref string) (*Container, error) {
	rb := tx.Bucket(recordsBucket)
	if rb == nil || ref == "" {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, ref)
	}
	ref = strings.TrimPrefix(ref, "/") // Docker shows names as /name
	if b := rb.Get([]byte(ref)); b != nil {
		return decode([]byte(ref), b)
	}
	if nb := tx.Bucket(namesBucket); nb != nil {
		if id := nb.Get([]byte(ref)); id != nil {
			if b := rb.Get(id); b != nil {
				return decode(id, b)
			}
		}
	}
	var found []byte
	cur := rb.Cursor()
	for k, _ := cur.Seek([]byte(ref)); k != nil && strings.HasPrefix(string(k), ref); k, _ = cur.Next() {
		if found != nil {
			return nil, fmt.Errorf("%w: %s", ErrAmbiguous, ref)
		}
		found = append([]byte(nil), k...)
	}
	if found == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, ref)
	}
	return decode(found, rb.Get(found))
}

// List returns every container record, newest first, as recorded (see
// Runtime.List for the state as it really is).
func List(ctx context.Context, db meta.Viewer) ([]*Container, error) {
	var out []*Container
	err := db.View(ctx, func(tx *bolt.Tx) error {
		rb := tx.Bucket(recordsBucket)
		if rb == nil {
			return nil
		}
		return rb.ForEach(func(k, v []byte) error {
			c, err := decode(k, v)
			if err != nil {
				return err
			}
			out = append(out, c)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, nil
}

// update changes the record id in one transaction: fn sees the current
// record and changes it; an error from fn changes nothing.
func update(ctx context.Context, db meta.DB, id string, fn func(c *Container) error) (*Container, error) {
	var c *Container
	err := db.Update(ctx, func(tx *bolt.Tx) error {
		rb := tx.Bucket(recordsBucket)
		if rb == nil {
			return fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		b := rb.Get([]byte(id))
		if b == nil {
			return fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		var err error
		if c, err = decode([]byte(id), b); err != nil {
			return err
		}
		if err := fn(c); err != nil {
			return err
		}
		return put(rb, c)
	})
	return c, err
}

// remove deletes the record id and frees its name.
func remove(ctx context.Context, db meta.DB, id string) error {
	return db.Update(ctx, func(tx *bolt.Tx) error {
		rb := tx.Bucket(recordsBucket)
		if rb == nil {
			return nil
		}
		b := rb.Get([]byte(id))
		if b == nil {
			return nil
		}
		c, err := decode([]byte(id), b)
		if err != nil {
			return err
		}
		if nb := tx.Bucket(namesBucket); nb != nil && string(nb.Get([]byte(c.Name))) == id {
			if err := nb.Delete([]byte(c.Name)); err != nil {
				return err
			}
		}
		return rb.Delete([]byte(id))
	})
}

// Held returns the blobs and unpacked layers (chain IDs) of every
// container's image: garbage collection must keep them while the
// container exists, even when no image lists them any more.
func Held(ctx context.Context, db meta.Viewer) (blobs, chains []digest.Digest, err error) {
	list, err := List(ctx, db)
	if err != nil {
		return nil, nil, err
	}
	for _, c := range list {
		blobs = append(blobs, c.Image.Manifest.Digest, c.Image.ID)
		for _, l := range c.Image.Layers {
			blobs = append(blobs, l.Digest)
		}
		chains = append(chains, c.Image.Chain()...)
	}
	return blobs, chains, nil
}

// Using returns the containers made from the image whose manifest is
// manifest or whose ID (config digest) is id.
func Using(ctx context.Context, db meta.Viewer, manifest, id digest.Digest) ([]*Container, error) {
	list, err := List(ctx, db)
	if err != nil {
		return nil, err
	}
	var out []*Container
	for _, c := range list {
		if c.Image.Manifest.Digest == manifest || (id != "" && c.Image.ID == id) {
			out = append(out, c)
		}
	}
	return out, nil
}
