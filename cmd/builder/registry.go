package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/builder-dev/builder/exporter"
	"github.com/builder-dev/builder/internal/registry"
	"github.com/builder-dev/builder/source"
	"github.com/builder-dev/builder/store"
)

// registryFlags are the global flags of every command that talks to a
// registry.
type registryFlags struct {
	insecure []string
	caFiles  []string
	config   string
}

func (r *registryFlags) add(f *pflag.FlagSet) {
	f.StringArrayVar(&r.insecure, "insecure-registry", nil, "registry HOST[:PORT] reached over plain HTTP or unchecked TLS (repeatable)")
	f.StringArrayVar(&r.caFiles, "registry-ca", nil, "PEM file of a CA trusted for registries besides the system's (repeatable)")
	f.StringVar(&r.config, "registry-config", "", "registries config file (default $BUILDER_REGISTRY_CONFIG, /etc/builder/registries.json as root)")
}

// options reads the config file and adds the flags to it.
func (r *registryFlags) options() (*registry.Options, error) {
	path, required := r.config, r.config != ""
	if path == "" {
		path = registry.DefaultConfigPath()
	}
	cfg, err := registry.LoadConfig(path, required)
	if err != nil {
		return nil, err
	}
	cfg.InsecureRegistries = append(cfg.InsecureRegistries, r.insecure...)
	cfg.CAFiles = append(cfg.CAFiles, r.caFiles...)
	return &registry.Options{Config: cfg, UserAgent: "builder/" + version()}, nil
}

// version is the module version the binary was built from.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// puller is a source.Puller for platform ("" for the host's) that logs
// to stderr.
func (g *globalOptions) puller(platform string, quiet bool) (*source.Puller, error) {
	opts, err := g.registry.options()
	if err != nil {
		return nil, err
	}
	p := &source.Puller{Registry: opts}
	if platform != "" {
		if p.Platform, err = source.ParsePlatform(platform); err != nil {
			return nil, usageError{err}
		}
	}
	if !quiet {
		p.Log = func(s string) { fmt.Fprintln(os.Stderr, s) }
	}
	return p, nil
}

func newPullCmd(g *globalOptions) *cobra.Command {
	var platform string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "pull [OPTIONS] NAME[:TAG|@DIGEST]",
		Short: "Download an image from a registry into the store",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if err := checkReferenceArg(args[0]); err != nil {
				return err
			}
			p, err := g.puller(platform, quiet)
			if err != nil {
				return err
			}
			e, release, err := g.openForWrites(ctx)
			if err != nil {
				return err
			}
			defer release()
			img, err := p.Pull(ctx, e.store, args[0])
			if err != nil {
				return err
			}
			fmt.Println(img.ID())
			return nil
		},
	}
	cmd.Flags().StringVar(&platform, "platform", "", "platform os/arch[/variant] to pick from an index (default the host's)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the image ID")
	return cmd
}

func newPushCmd(g *globalOptions) *cobra.Command {
	var metadataFile string
	cmd := &cobra.Command{
		Use:   "push [OPTIONS] NAME[:TAG]",
		Short: "Upload an image of the store to a registry",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if err := checkReferenceArg(args[0]); err != nil {
				return err
			}
			opts, err := g.registry.options()
			if err != nil {
				return err
			}
			e, release, err := g.openForWrites(ctx)
			if err != nil {
				return err
			}
			defer release()
			desc, err := e.store.Content().Resolve(ctx, args[0])
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("push %s: no such image in the store (tag one with builder tag, or build with -t)", args[0])
			}
			if err != nil {
				return fmt.Errorf("push %s: %w", args[0], err)
			}
			p, err := pushImage(ctx, e.store, desc, args[0], opts)
			if err != nil {
				return err
			}
			return writeMetadata(metadataFile, exporter.Metadata(p, []string{p.Ref}))
		},
	}
	cmd.Flags().StringVar(&metadataFile, "metadata-file", "", "write the pushed digest as JSON to this file (as buildx)")
	return cmd
}

// pushImage pushes and prints what docker push prints last.
func pushImage(ctx context.Context, st *store.Store, desc ocispec.Descriptor, ref string, opts *registry.Options) (exporter.Pushed, error) {
	p, err := exporter.Push(ctx, st, desc, ref, opts)
	if err != nil {
		return p, err
	}
	tag := ref
	if r, err := name.ParseReference(ref); err == nil {
		tag = r.Identifier()
	}
	fmt.Printf("%s: digest: %s size: %d\n", tag, p.Manifest.Digest, p.Manifest.Size)
	return p, nil
}

// writeMetadata writes m as JSON to path; "" writes nothing.
func writeMetadata(path string, m map[string]any) error {
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write metadata file: %w", err)
	}
	return nil
}

func newLoginCmd(g *globalOptions) *cobra.Command {
	var user, password string
	var stdin bool
	cmd := &cobra.Command{
		Use:   "login [OPTIONS] [SERVER]",
		Short: "Check credentials with a registry and keep them in docker's config.json",
		Args:  rangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			host := "docker.io"
			if len(args) == 1 {
				host = args[0]
			}
			if stdin {
				if password != "" {
					return usageError{errors.New("--password and --password-stdin do not go together")}
				}
				b, err := io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
				if err != nil {
					return fmt.Errorf("read password: %w", err)
				}
				password = strings.TrimRight(string(b), "\r\n")
			}
			if user == "" || password == "" {
				return usageError{errors.New("login needs -u USER and -p PASSWORD or --password-stdin")}
			}
			opts, err := g.registry.options()
			if err != nil {
				return err
			}
			path, err := registry.DockerConfigPath()
			if err != nil {
				return err
			}
			if err := opts.CheckLogin(cmd.Context(), host, user, password); err != nil {
				return err
			}
			if err := registry.SaveLogin(path, host, user, password); err != nil {
				return err
			}
			fmt.Println("Login Succeeded")
			return nil
		},
	}
	cmd.Flags().StringVarP(&user, "username", "u", "", "user name")
	cmd.Flags().StringVarP(&password, "password", "p", "", "password (prefer --password-stdin)")
	cmd.Flags().BoolVar(&stdin, "password-stdin", false, "read the password from stdin")
	return cmd
}

func newLogoutCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "logout [SERVER]",
		Short: "Remove a registry's credentials from docker's config.json",
		Args:  rangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			host := "docker.io"
			if len(args) == 1 {
				host = args[0]
			}
			path, err := registry.DockerConfigPath()
			if err != nil {
				return err
			}
			err = registry.RemoveLogin(path, host)
			if errors.Is(err, registry.ErrNotFound) {
				// As docker: nothing to remove is not a failure.
				fmt.Printf("Not logged in to %s\n", host)
				return nil
			}
			if err != nil {
				return err
			}
			fmt.Printf("Removing login credentials for %s\n", host)
			return nil
		},
	}
}

// checkReferenceArg refuses, as a usage error, a NAME that is no image
// reference at all, before any store or registry is opened.
func checkReferenceArg(ref string) error {
	if _, err := name.ParseReference(ref); err != nil {
		return usageError{fmt.Errorf("invalid reference %q: %w", ref, err)}
	}
	return nil
}
