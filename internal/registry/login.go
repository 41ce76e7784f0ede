package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// dockerHubKey is the key docker keeps Docker Hub's credentials under.
const dockerHubKey = "https://index.docker.io/v1/"

// CheckLogin asks the registry host whether user and password are good:
// a ping, the token or basic handshake it asks for, then GET /v2/.
func (o *Options) CheckLogin(ctx context.Context, host, user, password string) error {
	reg, err := o.registry(host)
	if err != nil {
		return err
	}
	wrap := func(err error) error { return Wrap("login", user+"@"+reg.RegistryStr(), reg.RegistryStr(), err) }
	t, err := o.transport(reg.RegistryStr())
	if err != nil {
		return err
	}
	auth := authn.FromConfig(authn.AuthConfig{Username: user, Password: password})
	rt, err := transport.NewWithContext(ctx, reg, auth, t, []string{reg.Scope(transport.PullScope)})
	if err != nil {
		return wrap(err)
	}
	scheme := reg.Scheme()
	ch, err := transport.Ping(ctx, reg, t)
	if err == nil && ch.Insecure {
		scheme = "http"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+reg.RegistryStr()+"/v2/", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return wrap(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return wrap(&transport.Error{StatusCode: resp.StatusCode, Request: req})
	}
	return nil
}

func (o *Options) registry(host string) (name.Registry, error) {
	if host == "" || host == "docker.io" || host == dockerHubKey {
		host = name.DefaultRegistry
	}
	opts := []name.Option{}
	if o.Insecure(host) {
		opts = append(opts, name.Insecure)
	}
	reg, err := name.NewRegistry(host, opts...)
	if err != nil {
		return name.Registry{}, fmt.Errorf("registry %q: %w", host, err)
	}
	return reg, nil
}

// DockerConfigPath is docker's config.json: in $DOCKER_CONFIG, else
// ~/.docker.
func DockerConfigPath() (string, error) {
	dir := os.Getenv("DOCKER_CONFIG")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("docker config: %w", err)
		}
		dir = filepath.Join(home, ".docker")
	}
	return filepath.Join(dir, "config.json"), nil
}

// ErrCredentialHelper is a config.json whose credentials for the host
// are kept by a credential helper, which login cannot write to yet.
var ErrCredentialHelper = errors.New("credentials are kept by a credential helper (credsStore/credHelpers), which builder login does not support yet: use the helper's own login (docker login)")

// authKey is the key of host in config.json's auths.
func authKey(host string) string {
	if host == "" || host == "docker.io" || host == name.DefaultRegistry || host == "registry-1.docker.io" {
		return dockerHubKey
	}
	return host
}

// SaveLogin writes user and password for host into config.json's auths
// (base64 "user:password", as docker does), keeping every other field of
// the file. The file is written 0600 through a temporary file and rename.
func SaveLogin(path, host, user, password string) error {
	return editAuths(path, host, func(auths map[string]json.RawMessage, key string) error {
		entry, err := json.Marshal(map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + password))})
		if err != nil {
			return err
		}
		auths[key] = entry
		return nil
	})
}

// RemoveLogin removes host's entry from config.json's auths; ErrNotFound
// if it has none.
func RemoveLogin(path, host string) error {
	return editAuths(path, host, func(auths map[string]json.RawMessage, key string) error {
		if _, ok := auths[key]; !ok {
			return fmt.Errorf("no login for %s in %s: %w", host, path, ErrNotFound)
		}
		delete(auths, key)
		return nil
	})
}

func editAuths(path, host string, edit func(auths map[string]json.RawMessage, key string) error) error {
	file := map[string]json.RawMessage{}
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read docker config: %w", err)
	}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &file); err != nil {
			return fmt.Errorf("read docker config %s: %w", path, err)
		}
	}
	key := authKey(host)
	var helpers map[string]string
	var store string
	_ = json.Unmarshal(file["credHelpers"], &helpers)
	_ = json.Unmarshal(file["credsStore"], &store)
	if helpers[key] != "" || helpers[host] != "" || store != "" {
		return fmt.Errorf("%s in %s: %w", host, path, ErrCredentialHelper)
	}
	auths := map[string]json.RawMessage{}
	if raw, ok := file["auths"]; ok {
		if err := json.Unmarshal(raw, &auths); err != nil {
			return fmt.Errorf("read docker config %s: auths: %w", path, err)
		}
	}
	if err := edit(auths, key); err != nil {
		return err
	}
	if file["auths"], err = json.Marshal(auths); err != nil {
		return err
	}
	out, err := json.MarshalIndent(file, "", "\t")
	if err != nil {
		return err
	}
	return writeFile0600(path, append(out, '\n'))
}

func writeFile0600(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write docker config: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".config.json.*")
	if err != nil {
		return fmt.Errorf("write docker config: %w", err)
	}
	defer os.Remove(f.Name()) // no-op once renamed
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write docker config %s: %w", path, err)
	}
	return nil
}
