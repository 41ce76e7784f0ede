package dockerfile

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/builder-dev/builder/internal/user"
	"github.com/builder-dev/builder/solver/graph"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

// copyArgs is what COPY and ADD have in common.
type copyArgs struct {
	name  string // "COPY" or "ADD"
	sd    instructions.SourcesAndDest
	from  graph.CopySource
	chown string
	chmod string
	link  bool
	add   bool
}

func (c *converter) dispatchCopy(s *stage, cmd *command, ic *instructions.CopyCommand) error {
	if ic.Parents {
		return errors.New("COPY --parents is not supported")
	}
	if len(ic.ExcludePatterns) > 0 {
		return errors.New("COPY --exclude is not supported")
	}
	from := graph.CopySource{Context: true, Stage: -1}
	switch {
	case cmd.fromStage >= 0:
		// Stages convert in order, so an earlier needed stage is done;
		// a later one, or this one, is not.
		if cmd.fromStage >= s.index {
			return fmt.Errorf("cannot copy from stage %q, it needs to be defined before current stage %q", ic.From, s.label())
		}
		from = graph.CopySource{Stage: cmd.fromStage}
	case cmd.fromImage != "":
		from = graph.CopySource{Stage: -1, Image: cmd.fromImage}
	}
	for _, src := range ic.SourcePaths {
		if isURL(src) {
			return errors.New("source can't be a URL for COPY")
		}
	}
	return c.copyStep(s, cmd, copyArgs{
		name: "COPY", sd: ic.SourcesAndDest, from: from,
		chown: ic.Chown, chmod: ic.Chmod, link: ic.Link,
	})
}

func (c *converter) dispatchAdd(s *stage, cmd *command, ic *instructions.AddCommand) error {
	if len(ic.ExcludePatterns) > 0 {
		return errors.New("ADD --exclude is not supported")
	}
	for _, src := range ic.SourcePaths {
		if isURL(src) || strings.HasPrefix(src, "git@") {
			return fmt.Errorf("ADD from a URL or Git repository is not supported: %s", src)
		}
	}
	if ic.Checksum != "" {
		return errors.New("checksum requires HTTP(S) or Git sources")
	}
	// Local archives are extracted unless --unpack=false.
	unpack := ic.Unpack == nil || *ic.Unpack
	return c.copyStep(s, cmd, copyArgs{
		name: "ADD", sd: ic.SourcesAndDest, from: graph.CopySource{Context: true, Stage: -1},
		chown: ic.Chown, chmod: ic.Chmod, link: ic.Link, add: unpack,
	})
}

// copyStep emits the Copy op of COPY or ADD.
//
// --link is accepted and copies as a plain COPY would: the files that land
// are the same, only BuildKit's layer reuse differs.
func (c *converter) copyStep(s *stage, cmd *command, a copyArgs) error {
	if len(a.sd.SourceContents) > 0 {
		return fmt.Errorf("%s with a here-document source is not supported", a.name)
	}
	if a.chown != "" && a.link && chownByName(a.chown) {
		return fmt.Errorf("--chown=%s: user and group names can't be resolved when used with --link, use numeric uid[:gid] instead", a.chown)
	}
	for _, part := range strings.SplitN(a.chown, ":", 2) {
		// Out-of-range numbers are refused here, with the line, rather
		// than when the files are copied (see user.ParseID).
		if _, _, err := user.ParseID(part); err != nil {
			return fmt.Errorf("--chown=%s: %w", a.chown, err)
		}
	}
	if a.chmod != "" {
		if m, err := strconv.ParseUint(a.chmod, 8, 32); err != nil || m > 0o7777 {
			return fmt.Errorf("invalid chmod parameter: '%v'. it should be octal string and between 0 and 07777", a.chmod)
		}
	}
	op := &graph.Copy{
		From:    a.from,
		Sources: slices.Clone(a.sd.SourcePaths),
		Dest:    copyDest(workdir(s.img), a.sd.DestPath),
		Chown:   a.chown,
		Chmod:   a.chmod,
		Add:     a.add,
	}
	// Docker 20.10's BuildKit writes neither --from nor --chown/--chmod
	// into the history.
	createdBy := a.name + " " + strings.Join(append(slices.Clone(a.sd.SourcePaths), a.sd.DestPath), " ") + " # buildkit"
	c.addStep(s, cmd, createdBy, op, true)
	return nil
}

// copyDest makes a COPY destination absolute against the working
// directory. A trailing "/" (also "." and "/.") means "into this
// directory" and is kept as "/". Relative paths are joined and cleaned as
// BuildKit does; absolute ones stay as written, since ".." after a symlink
// must resolve inside the image, not lexically.
func copyDest(wd, p string) string {
	intoDir := p == "" || p == "." || strings.HasSuffix(p, "/") || strings.HasSuffix(p, "/.")
	if strings.HasSuffix(p, "/.") {
		p = strings.TrimSuffix(p, ".")
	}
	if !path.IsAbs(p) {
		p = path.Join(wd, p)
	}
	if intoDir && !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return p
}

func isURL(src string) bool {
	for _, scheme := range []string{"http://", "https://", "git://", "ssh://"} {
		if strings.HasPrefix(src, scheme) {
			return true
		}
	}
	return false
}

// chownByName reports whether a --chown spec names a user or group rather
// than giving numbers.
func chownByName(spec string) bool {
	for _, part := range strings.SplitN(spec, ":", 2) {
		if _, err := strconv.Atoi(part); err != nil && part != "" {
			return true
		}
	}
	return false
}
