package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Config is the registries config file: JSON at $BUILDER_REGISTRY_CONFIG,
// else /etc/builder/registries.json for root, else
// $XDG_CONFIG_HOME/builder/registries.json.
type Config struct {
	// InsecureRegistries are hosts (host or host:port) reached over plain
	// HTTP, or over TLS without checking the certificate.
	InsecureRegistries []string `json:"insecure-registries,omitempty"`
	// CAFiles are PEM files of certificate authorities trusted in
	// addition to the system's.
	CAFiles []string `json:"ca-files,omitempty"`
	// Mirrors maps a registry (only "docker.io" is used) to mirrors tried
	// in order before it, each host[:port].
	Mirrors map[string][]string `json:"mirrors,omitempty"`
}

// DefaultConfigPath is where the config file is looked for when no path
// is given.
func DefaultConfigPath() string {
	if p := os.Getenv("BUILDER_REGISTRY_CONFIG"); p != "" {
		return p
	}
	if os.Geteuid() == 0 {
		return "/etc/builder/registries.json"
	}
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "builder", "registries.json")
}

// LoadConfig reads the config file at path. A missing file is an empty
// config unless required (a path the user gave).
func LoadConfig(path string, required bool) (Config, error) {
	var c Config
	if path == "" {
		return c, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && !required {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("read registries config: %w", err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("read registries config %s: %w", path, err)
	}
	// CA files relative to the config file's directory, as a config
	// file is written next to its certificates.
	for i, f := range c.CAFiles {
		if !filepath.IsAbs(f) {
			c.CAFiles[i] = filepath.Join(filepath.Dir(path), f)
		}
	}
	return c, nil
}
