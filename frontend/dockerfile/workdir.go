package dockerfile

import (
	"path"

	"github.com/builder-dev/builder/solver/graph"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
)

// dispatchWorkdir sets the working directory and creates it. BuildKit makes
// a layer for every WORKDIR but "/", even when the directory exists, and
// creates missing directories owned by the USER in effect.
func (c *converter) dispatchWorkdir(s *stage, cmd *command, ic *instructions.WorkdirCommand) error {
	wd := normalizeWorkdir(s.img.Config.WorkingDir, ic.Path)
	s.img.Config.WorkingDir = wd
	var op graph.Op
	if wd != "/" {
		op = &graph.Mkdir{Path: path.Clean(wd), User: s.img.Config.User}
	}
	c.addStep(s, cmd, "WORKDIR "+wd, op, op != nil)
	return nil
}

// normalizeWorkdir resolves p against the current working directory.
// Like BuildKit, it joins and cleans relative paths but leaves absolute
// ones as written: the config and history show "/tmp/" for WORKDIR /tmp/.
func normalizeWorkdir(current, p string) string {
	if current == "" {
		current = "/"
	}
	if !path.IsAbs(current) {
		current = path.Join("/", current)
	}
	switch {
	case p == "":
		return current
	case path.IsAbs(p):
		return p
	default:
		return path.Join(current, p)
	}
}

// workdir is where a RUN starts.
func workdir(img dockerspec.DockerOCIImage) string {
	if img.Config.WorkingDir == "" {
		return "/"
	}
	return img.Config.WorkingDir
}

// dispatchUser sets the user of later RUNs, WORKDIRs and the container. It
// is resolved against the image's /etc/passwd when used, not here.
func (c *converter) dispatchUser(s *stage, cmd *command, ic *instructions.UserCommand) error {
	s.img.Config.User = ic.User
	return c.configStep(s, cmd, "USER "+ic.User)
}
