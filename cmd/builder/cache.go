package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	units "github.com/docker/go-units"
	digest "github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"

	"github.com/builder-dev/builder/container"
	"github.com/builder-dev/builder/gc"
)

func newCacheCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cache COMMAND",
		Short: "List, measure and prune the build cache",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())}
			}
			return usageError{fmt.Errorf("%s needs a command: ls, du or prune", cmd.CommandPath())}
		},
	}
	cmd.AddCommand(newCacheLsCmd(g), newCacheDuCmd(g), newCachePruneCmd(g))
	return cmd
}

func (e *env) collector() *gc.Collector {
	return &gc.Collector{Store: e.store, Snap: e.snap, Roots: e.containerRoots,
		// The parent of any container's directory.
		Containers: e.containersOwn, ContainersDir: filepath.Dir(e.runtime().Dir("id"))}
}

// containersOwn are the writable layers and directories containers own;
// any other is a killed build's or container creation's.
func (e *env) containersOwn(ctx context.Context) (gc.Owned, error) {
	list, err := container.List(ctx, e.store.Meta())
	if err != nil {
		return gc.Owned{}, err
	}
	var o gc.Owned
	for _, c := range list {
		o.Snapshots = append(o.Snapshots, c.SnapshotID)
		o.IDs = append(o.IDs, c.ID)
	}
	return o, nil
}

// containerRoots keeps the images of containers: their writable layers sit
// on those layers, and a removed image's container still runs and commits.
func (e *env) containerRoots(ctx context.Context) (gc.Roots, error) {
	blobs, chains, err := container.Held(ctx, e.store.Meta())
	return gc.Roots{Blobs: blobs, Chains: chains}, err
}

// checkFormat accepts the --format values the cache commands know.
func checkFormat(f string) error {
	if f != "table" && f != "json" {
		return usageError{fmt.Errorf("invalid --format %q: want table or json", f)}
	}
	return nil
}

// cacheEntryJSON is one record in `cache ls --format json`.
type cacheEntryJSON struct {
	Key        digest.Digest `json:"key"`
	Dockerfile string        `json:"dockerfile,omitempty"`
	Stage      string        `json:"stage,omitempty"`
	Line       int           `json:"line,omitempty"`
	Step       string        `json:"step"`
	Kind       string        `json:"kind"`
	Parent     digest.Digest `json:"parent,omitempty"`
	Layer      digest.Digest `json:"layer"`
	DiffID     digest.Digest `json:"diffID"`
	Size       int64         `json:"size"`
	Created    time.Time     `json:"created"`
	LastUsed   time.Time     `json:"lastUsed"`
	Images     []string      `json:"images"`
	Missing    bool          `json:"missing,omitempty"`
}

func newCacheLsCmd(g *globalOptions) *cobra.Command {
	var format string
	var noTrunc bool
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List cache records: the step that made each, its size, when it was made and used, and which images use its layer",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			ctx := cmd.Context()
			e, err := g.open(ctx)
			if err != nil {
				return err
			}
			entries, err := e.collector().List(ctx)
			if err != nil {
				return err
			}
			if format == "json" {
				out := make([]cacheEntryJSON, 0, len(entries))
				for _, en := range entries {
					out = append(out, cacheEntryJSON{
						Key: en.Key, Dockerfile: en.Step.Dockerfile, Stage: en.Step.Stage, Line: en.Step.Line,
						Step: en.Step.Text, Kind: en.Step.Kind, Parent: en.Step.Parent,
						Layer: en.Layer.Digest, DiffID: en.DiffID, Size: en.Size,
						Created: en.Created, LastUsed: en.LastUsed, Images: append([]string{}, en.Images...), Missing: en.Missing,
					})
				}
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			return printCacheTable(os.Stdout, entries, noTrunc)
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "output format: table or json")
	cmd.Flags().BoolVar(&noTrunc, "no-trunc", false, "do not truncate keys and steps")
	return cmd
}

func printCacheTable(w io.Writer, entries []gc.Entry, noTrunc bool) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "KEY\tSTEP\tSIZE\tCREATED\tLAST USED\tIMAGES")
	for _, en := range entries {
		key := en.Key.String()
		step := en.Step.Text
		if en.Step.Stage != "" {
			step = "[" + en.Step.Stage + "] " + step
		}
		// Tabs and newlines (heredocs) would break the table.
		step = strings.Join(strings.Fields(step), " ")
		if !noTrunc {
			key = shortID(key)
			step = truncate(step, 50)
		}
		size := humanSize(en.Size)
		if en.Missing {
			size = "missing"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", key, step, size, ago(en.Created), ago(en.LastUsed), strings.Join(en.Images, ", "))
	}
	return tw.Flush()
}

// truncate shortens s to n runes, marking the cut.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func newCacheDuCmd(g *globalOptions) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "du",
		Short: "Show the build cache's disk usage",
		Long: `Show the build cache's disk usage.

Total is what the cache records hold: their layer blobs (by size) and
their unpacked layers (by disk blocks, like du), each counted once however
many records hold it. Shared is the part of it images also use; no prune
frees it. Reclaimable (Total - Shared) is what 'cache prune --all' frees.
Unreferenced is what nothing holds (stray blobs and unpacked layers,
temporary files); any prune frees it.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			ctx := cmd.Context()
			e, err := g.open(ctx)
			if err != nil {
				return err
			}
			u, err := e.collector().DiskUsage(ctx)
			if err != nil {
				return err
			}
			if format == "json" {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(map[string]int64{
					"records": int64(u.Records), "total": u.Total, "shared": u.Shared,
					"reclaimable": u.Reclaimable, "unreferenced": u.Unreferenced,
				})
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 8, 2, ' ', 0)
			fmt.Fprintf(tw, "Records:\t%d\n", u.Records)
			fmt.Fprintf(tw, "Total:\t%s\n", humanSize(u.Total))
			fmt.Fprintf(tw, "Shared:\t%s\n", humanSize(u.Shared))
			fmt.Fprintf(tw, "Reclaimable:\t%s\n", humanSize(u.Reclaimable))
			fmt.Fprintf(tw, "Unreferenced:\t%s\n", humanSize(u.Unreferenced))
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "output format: table or json")
	return cmd
}

// pruneReportJSON is `cache prune --format json`.
type pruneReportJSON struct {
	Records   []digest.Digest `json:"records"`   // keys removed
	Reclaimed int64           `json:"reclaimed"` // bytes freed
}

func newCachePruneCmd(g *globalOptions) *cobra.Command {
	var (
		all         bool
		keepStorage string
		filters     []string
		format      string
	)
	cmd := &cobra.Command{
		Use:   "prune [--all] [--keep-storage SIZE] [--filter until=DURATION]",
		Short: "Remove build cache records and the data nothing uses any more",
		Long: `Remove build cache records, then every blob and unpacked layer that no
image, container and remaining record uses, and what killed builds left
(temporary files, writable layers). Images are never removed.

By default only records whose layers no image or container uses go.
--all removes every record, also those whose layers images keep (that
frees nothing but the cache), as 'docker builder prune -a'.

--keep-storage SIZE (1GB, 512MB, 100kB or bytes; k, m, g are powers of
1024, as docker) removes least recently used records until what the
cache alone holds (Reclaimable of 'cache du') is at most SIZE, and only
records whose removal frees space: a record whose layers an image, a
container or another record still holds stays, with --all too.

--filter until=DURATION (24h, 90m) or until=TIMESTAMP keeps records used
since then.

The report lists the records removed and the space freed: what
'cache du' Reclaimable plus Unreferenced went down by.

A prune waits for running builds to finish, and builds wait for it.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			opt := gc.PruneOptions{All: all, Now: time.Now()}
			if cmd.Flags().Changed("keep-storage") {
				n, err := parseSize(keepStorage)
				if err != nil {
					return usageError{fmt.Errorf("invalid --keep-storage: %w", err)}
				}
				opt.KeepStorage = n
			}
			for _, f := range filters {
				d, err := parseUntil(f, opt.Now)
				if err != nil {
					return usageError{fmt.Errorf("invalid --filter: %w", err)}
				}
				opt.Until = d
			}
			opt.Waiting = func() { fmt.Fprintln(os.Stderr, "waiting for running builds to finish") }
			ctx := cmd.Context()
			e, err := g.open(ctx)
			if err != nil {
				return err
			}
			rep, err := e.collector().Prune(ctx, opt)
			if err != nil {
				return err
			}
			if format == "json" {
				out := pruneReportJSON{Records: []digest.Digest{}, Reclaimed: rep.Reclaimed}
				for _, r := range rep.Records {
					out.Records = append(out.Records, r.Key)
				}
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			if len(rep.Records) > 0 {
				fmt.Println("Deleted build cache objects:")
				for _, r := range rep.Records {
					fmt.Println(shortID(r.Key.String()))
				}
				fmt.Println()
			}
			fmt.Printf("Records removed: %d\n", len(rep.Records))
			fmt.Printf("Total reclaimed space: %s\n", humanSize(rep.Reclaimed))
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&all, "all", "a", false, "remove every cache record, not only those no image or container uses")
	f.StringVar(&keepStorage, "keep-storage", "", "remove least recently used records that free space until the cache alone holds at most this much (e.g. 1GB)")
	f.StringArrayVar(&filters, "filter", nil, "only records last used before: until=DURATION or until=TIMESTAMP")
	f.StringVar(&format, "format", "table", "output format: table or json")
	// Accepted for docker compatibility: prune never asks.
	f.BoolP("force", "f", false, "do not prompt (prune never does)")
	return cmd
}

// parseSize reads a size as docker's --keep-storage does: a number with an
// optional unit k, m, g, t or p (with or without a trailing b or ib, any
// case), in powers of 1024.
func parseSize(s string) (int64, error) {
	n, err := units.RAMInBytes(strings.TrimSpace(s))
	if err != nil {
		return 0, err
	}
	if n < 0 {
		return 0, fmt.Errorf("negative size %q", s)
	}
	return n, nil
}

// parseUntil reads an until= filter: a duration back from now (Go syntax,
// "24h", "90m"), or a point in time (RFC 3339, "2006-01-02", or Unix
// seconds), turned into the duration from it to now.
func parseUntil(f string, now time.Time) (time.Duration, error) {
	k, v, ok := strings.Cut(f, "=")
	if !ok || strings.TrimSpace(k) != "until" {
		return 0, fmt.Errorf("%q: only until=DURATION is supported", f)
	}
	v = strings.TrimSpace(v)
	if d, err := time.ParseDuration(v); err == nil {
		if d <= 0 {
			return 0, fmt.Errorf("%q: the duration must be positive", f)
		}
		return d, nil
	}
	var t time.Time
	if sec, err := strconv.ParseInt(v, 10, 64); err == nil {
		t = time.Unix(sec, 0)
	} else if t, err = time.Parse(time.RFC3339Nano, v); err != nil {
		if t, err = time.ParseInLocation("2006-01-02", v, time.Local); err != nil {
			return 0, fmt.Errorf("%q: want a duration (24h) or a time (RFC 3339)", f)
		}
	}
	if !t.Before(now) {
		return 0, fmt.Errorf("%q is not in the past", f)
	}
	return now.Sub(t), nil
}
