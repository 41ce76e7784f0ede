package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	units "github.com/docker/go-units"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/builder-dev/builder/exporter"
	"github.com/builder-dev/builder/frontend/dockerfile"
	"github.com/builder-dev/builder/images"
	"github.com/builder-dev/builder/source"
	"github.com/builder-dev/builder/store"
)

func imageID(ctx context.Context, e *env, manifest ocispec.Descriptor) (string, error) {
	m, _, err := e.store.Content().LoadImage(ctx, manifest)
	if err != nil {
		return "", err
	}
	return m.Config.Digest.String(), nil
}

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// humanSize is a size in decimal units with three significant digits, as
// docker's SIZE columns and df print it ("12.3MB").
func humanSize(n int64) string {
	return units.HumanSizeWithPrecision(float64(n), 3)
}

// ago is how long ago t was, as docker's CREATED columns say it.
func ago(t time.Time) string {
	return agoAt(t, time.Now())
}

func newImagesCmd(g *globalOptions) *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:   "images",
		Short: "List images in the store",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := g.open(cmd.Context())
			if err != nil {
				return err
			}
			imgs, err := e.store.Content().Images(cmd.Context())
			if err != nil {
				return err
			}
			// A damaged image is left out of the list and reported: its
			// config cannot be trusted for any column.
			var damaged []error
			sizes := make([]int64, 0, len(imgs))
			imgs = slices.DeleteFunc(imgs, func(im store.Image) bool {
				if im.Err == nil && !quiet {
					n, err := e.store.ContentSize(cmd.Context(), im.Layers)
					im.Err = err
					if err == nil {
						sizes = append(sizes, n)
					}
				}
				if im.Err != nil {
					damaged = append(damaged, fmt.Errorf("%s: %w", orNone(im.Name), im.Err))
				}
				return im.Err != nil
			})
			if quiet {
				for _, im := range imgs {
					fmt.Println(shortID(im.Config.Digest.String()))
				}
				return errors.Join(damaged...)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 8, 3, ' ', 0)
			fmt.Fprintln(tw, "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE")
			for i, im := range imgs {
				repo, tag := splitName(im.Name)
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", repo, tag, shortID(im.Config.Digest.String()), ago(im.Created), humanSize(sizes[i]))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			return errors.Join(damaged...)
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "only image IDs")
	return cmd
}

// orNone is an image's name, or <none> for an untagged one.
func orNone(name string) string {
	if name == "" {
		return "<none>"
	}
	return name
}

// splitName splits "repo:tag" at the tag's colon (not a registry port's).
func splitName(name string) (string, string) {
	if name == "" {
		return "<none>", "<none>"
	}
	i := strings.LastIndex(name, ":")
	if i < 0 || strings.Contains(name[i:], "/") {
		return name, "<none>"
	}
	return name[:i], name[i+1:]
}

func newInspectCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect IMAGE...",
		Short: "Show images' configuration and manifest as JSON",
		Args:  minArgs(1),
		RunE: g.withStore(func(ctx context.Context, e *env, args []string) error {
			type inspected struct {
				ID           string                          `json:"Id"`
				RepoTags     []string                        `json:"RepoTags"`
				Digest       string                          `json:"Digest"`
				Created      *time.Time                      `json:"Created,omitempty"`
				Author       string                          `json:"Author"`
				Architecture string                          `json:"Architecture"`
				Os           string                          `json:"Os"`
				Size         int64                           `json:"Size"`
				Config       dockerspec.DockerOCIImageConfig `json:"Config"`
				RootFS       ocispec.RootFS                  `json:"RootFS"`
				History      []ocispec.History               `json:"History"`
				Manifest     ocispec.Manifest                `json:"Manifest"`
			}
			var out []inspected
			imgs, err := e.store.Content().Images(ctx)
			if err != nil {
				return err
			}
			for _, ref := range args {
				img, err := source.Lookup(ctx, e.store, ref)
				if err != nil {
					return err
				}
				desc, m, cfg := img.Descriptor, img.Manifest, img.Config
				it := inspected{ID: m.Config.Digest.String(), RepoTags: []string{}, Digest: desc.Digest.String(), Created: cfg.Created,
					Author: cfg.Author, Architecture: cfg.Architecture, Os: cfg.OS, Config: cfg.Config, RootFS: cfg.RootFS, History: cfg.History, Manifest: m}
				if it.Size, err = e.store.ContentSize(ctx, m.Layers); err != nil {
					return fmt.Errorf("image %s: %w", ref, err)
				}
				for _, im := range imgs {
					if im.Manifest.Digest == desc.Digest {
						it.RepoTags = append(it.RepoTags, im.Name)
					}
				}
				out = append(out, it)
			}
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "    ")
			return enc.Encode(out)
		}),
	}
}

func newHistoryCmd(g *globalOptions) *cobra.Command {
	var noTrunc bool
	cmd := &cobra.Command{
		Use:   "history IMAGE",
		Short: "Show the history of an image",
		Args:  exactArgs(1),
		RunE: g.withStore(func(ctx context.Context, e *env, args []string) error {
			desc, err := e.store.Content().Resolve(ctx, args[0])
			if err != nil {
				return fmt.Errorf("no such image: %s: %w", args[0], err)
			}
			m, cfg, err := e.store.Content().LoadImage(ctx, desc)
			if err != nil {
				return err
			}
			digests := make([]digest.Digest, len(m.Layers))
			for i, l := range m.Layers {
				digests[i] = l.Digest
			}
			sizes, err := e.store.LayerInfos(ctx, digests)
			if err != nil {
				return fmt.Errorf("image %s: %w", args[0], err)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 8, 3, ' ', 0)
			fmt.Fprintln(tw, "CREATED\tCREATED BY\tSIZE\tCOMMENT")
			layer := len(m.Layers) - 1
			for i := len(cfg.History) - 1; i >= 0; i-- {
				h := cfg.History[i]
				size := "0B"
				if !h.EmptyLayer && layer >= 0 {
					size = humanSize(sizes[m.Layers[layer].Digest].Size)
					layer--
				}
				by := h.CreatedBy
				if !noTrunc && len(by) > 45 {
					by = by[:44] + "…"
				}
				var created time.Time
				if h.Created != nil {
					created = *h.Created
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", ago(created), by, size, h.Comment)
			}
			return tw.Flush()
		}),
	}
	cmd.Flags().BoolVar(&noTrunc, "no-trunc", false, "do not truncate output")
	return cmd
}

func newTagCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "tag SOURCE TARGET",
		Short: "Give an image another name",
		Args:  exactArgs(2),
		RunE: g.withStore(func(ctx context.Context, e *env, args []string) error {
			if err := checkTagTarget(args[1]); err != nil {
				return err
			}
			desc, err := e.store.Content().Resolve(ctx, args[0])
			if err != nil {
				return fmt.Errorf("no such image: %s: %w", args[0], err)
			}
			return e.store.Content().Tag(ctx, args[1], desc)
		}),
	}
}

func newRmiCmd(g *globalOptions) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "rmi [-f] IMAGE...",
		Short: "Remove images: a name is untagged, and an image no name refers to any more is deleted",
		Args:  minArgs(1),
		RunE: g.withStore(func(ctx context.Context, e *env, args []string) error {
			for _, ref := range args {
				err := images.Remove(ctx, e.store, ref, images.RemoveOptions{
					Force:    force,
					Untagged: func(n string) { fmt.Println("Untagged:", n) },
					Deleted:  func(d digest.Digest) { fmt.Println("Deleted:", d) },
				})
				if err != nil {
					return err
				}
			}
			return nil
		}),
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "remove an image even when several names refer to it or a container uses it")
	return cmd
}

func newLoadCmd(g *globalOptions) *cobra.Command {
	var input string
	cmd := &cobra.Command{
		Use:   "load [-i FILE]",
		Short: "Load images from a docker-archive or oci-archive",
		Args:  exactArgs(0),
		RunE: g.withStore(func(ctx context.Context, e *env, args []string) error {
			var r io.Reader = os.Stdin
			if input != "" && input != "-" {
				f, err := os.Open(input)
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			}
			lock, err := e.lockWrites(ctx)
			if err != nil {
				return err
			}
			defer lock.Release()
			names, err := source.Load(ctx, e.store, r)
			if err != nil {
				return err
			}
			for _, n := range names {
				fmt.Println("Loaded image:", n)
			}
			return nil
		}),
	}
	cmd.Flags().StringVarP(&input, "input", "i", "", "archive to read (default stdin)")
	return cmd
}

func newSaveCmd(g *globalOptions) *cobra.Command {
	var out, format string
	cmd := &cobra.Command{
		Use:   "save [-o FILE] [--format docker|oci] IMAGE...",
		Short: "Write images to a docker-archive (default) or oci-archive",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if format != "docker" && format != "oci" {
				return usageError{fmt.Errorf("invalid --format %q: want docker or oci", format)}
			}
			if out == "" {
				out = "-"
			}
			e, err := g.open(ctx)
			if err != nil {
				return err
			}
			if format == "oci" {
				// An OCI archive may write the gzip form of a layer
				// kept uncompressed: a prune must wait until it is
				// written and remembered.
				lock, err := e.lockWrites(ctx)
				if err != nil {
					return err
				}
				defer lock.Release()
			}
			return exporter.WriteDest(out, func(w io.Writer) error {
				if format == "oci" {
					return exporter.SaveOCI(ctx, e.store, args, w)
				}
				return exporter.SaveDocker(ctx, e.store, args, w)
			})
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "file to write (default stdout)")
	cmd.Flags().StringVar(&format, "format", "docker", "archive format: docker or oci")
	return cmd
}

func newImportCmd(g *globalOptions) *cobra.Command {
	var changes []string
	cmd := &cobra.Command{
		Use:   "import FILE|DIR|- [REF]",
		Short: "Make a one-layer image from a root file system tar (- for stdin) or directory",
		Long: `Make a one-layer image from a root file system: a tar file (plain, gzip or
zstd), - to read that tar from stdin, or a directory. REF, if given, tags
the image. Prints the image ID, as images shows it in full.`,
		Args: rangeArgs(1, 2),
		RunE: g.withStore(func(ctx context.Context, e *env, args []string) error {
			var dcfg dockerspec.DockerOCIImageConfig
			dcfg.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
			for _, c := range changes {
				switch dockerfile.ChangeInstruction(c) {
				case "CMD", "ENV", "WORKDIR":
				default:
					return usageError{fmt.Errorf("unsupported --change %q (CMD, ENV, WORKDIR)", c)}
				}
			}
			if err := dockerfile.ApplyChanges(&dcfg, changes); err != nil {
				return usageError{err}
			}
			cfg := dcfg.ImageConfig
			lock, err := e.lockWrites(ctx)
			if err != nil {
				return err
			}
			defer lock.Release()
			name := ""
			if len(args) == 2 {
				name = args[1]
			}
			var desc ocispec.Descriptor
			if args[0] == "-" {
				desc, err = source.ImportReader(ctx, e.store, os.Stdin, "-", name, cfg)
			} else {
				desc, err = source.Import(ctx, e.store, args[0], name, cfg)
			}
			if err != nil {
				return err
			}
			// The image ID, as docker import prints it: what images and
			// inspect show, not the manifest digest.
			id, err := imageID(ctx, e, desc)
			if err != nil {
				return err
			}
			fmt.Println(id)
			return nil
		}),
	}
	cmd.Flags().StringArrayVarP(&changes, "change", "c", nil, "Dockerfile instruction for the config (CMD, ENV, WORKDIR)")
	return cmd
}
