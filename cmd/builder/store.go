package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

func newStoreCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Check the store",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return usageError{fmt.Errorf("%s needs a command: verify", cmd.CommandPath())}
		},
	}
	cmd.AddCommand(newStoreVerifyCmd(g))
	return cmd
}

// errStoreDamaged is verify's exit status when it found damage it did not
// remove.
var errStoreDamaged = errors.New("the store is damaged: `builder store verify --remove` deletes what is corrupt and what depends on it")

func newStoreVerifyCmd(g *globalOptions) *cobra.Command {
	var remove bool
	cmd := &cobra.Command{
		Use:   "verify [--remove]",
		Short: "Rehash every blob of the store and report corrupt or missing ones",
		Long: `Rehash every blob of the store and report corrupt or missing ones, the
images that refer to them, the cache records whose layer blob is bad and
the unpacked layers made from a bad blob. Exits 1 when anything is wrong.

With --remove, delete the corrupt blobs and what depends on them: the
images referring to a corrupt or missing blob, those cache records (and
the records after them) and those unpacked layers. A build then makes
them again. A container whose image layers are removed may stop working.
An index.json that is no JSON is moved aside and rebuilt: the images the
blobs hold are listed again, without their names. A meta.db that is no
database is moved aside and a new one started: build cache records and
containers are lost.`,
		Args: exactArgs(0),
		RunE: g.withStore(func(ctx context.Context, e *env, args []string) error {
			dmg, err := e.collector().Check(ctx, remove)
			if err != nil {
				return err
			}
			if dmg.IndexMovedTo != "" {
				fmt.Printf("moved the damaged image index to %s; the new one lists the %d images found among the blobs, without their names\n", dmg.IndexMovedTo, dmg.IndexRecovered)
			}
			if dmg.MetaMovedTo != "" {
				fmt.Printf("moved the damaged metadata database to %s and started a new one: build cache records and containers are lost\n", dmg.MetaMovedTo)
			}
			verb := "found"
			if remove {
				verb = "removed"
			}
			for _, b := range dmg.Blobs {
				users := ""
				if len(b.Images) > 0 {
					users = " (used by " + strings.Join(b.Images, ", ") + ")"
				}
				switch {
				case b.Missing:
					fmt.Printf("missing blob %s%s\n", b.Digest, users)
				case remove:
					fmt.Printf("removed corrupt blob %s%s: %v\n", b.Digest, users, b.Err)
				default:
					fmt.Printf("corrupt blob %s%s: %v\n", b.Digest, users, b.Err)
				}
			}
			for _, m := range dmg.Images {
				fmt.Printf("%s image %s: it refers to a bad blob\n", verb, m)
			}
			for _, r := range dmg.Records {
				fmt.Printf("%s cache record %s (%s): its layer %s is bad or depends on one\n", verb, shortID(r.Key.String()), r.Step.Text, r.Layer.Digest)
			}
			for _, ch := range dmg.Chains {
				fmt.Printf("%s unpacked layer %s: made from a bad blob\n", verb, ch)
			}
			for _, ch := range dmg.NotLayers {
				fmt.Printf("%s unpacked layer %s: not a directory\n", verb, ch)
			}
			if dmg.Clean() {
				fmt.Println("the store is sound")
				return nil
			}
			if !remove {
				return errStoreDamaged
			}
			return nil
		}),
	}
	cmd.Flags().BoolVar(&remove, "remove", false, "delete corrupt blobs and what depends on them")
	return cmd
}
