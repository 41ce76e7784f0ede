package dockerfile

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// maxExposed bounds how many ports one EXPOSE may add, so that a range
// like 1-65535 in many instructions cannot blow up the config.
const maxExposed = 1 << 16

// dispatchExpose adds ports to the config as "port/proto". Its words are
// expanded and split like a shell's, so EXPOSE $PORTS may give several.
func (c *converter) dispatchExpose(s *stage, cmd *command, ic *instructions.ExposeCommand) error {
	var words []string
	for _, p := range ic.Ports {
		ws, err := c.processWords(p, s.env)
		if err != nil {
			return err
		}
		words = append(words, ws...)
	}
	ports, err := expose(&s.img.Config.ImageConfig, words)
	if err != nil {
		return err
	}
	// Docker 20.10's BuildKit printed the port set as a Go map.
	return c.configStep(s, cmd, fmt.Sprintf("EXPOSE %v", ports))
}

// expose adds the ports that EXPOSE's expanded words name to cfg, for a
// build and for commit's and import's --change alike, and returns them.
func expose(cfg *ocispec.ImageConfig, words []string) (map[string]struct{}, error) {
	ports := map[string]struct{}{}
	for _, w := range words {
		ps, err := parsePort(w)
		if err != nil {
			return nil, fmt.Errorf("invalid port %q: %w", w, err)
		}
		for _, p := range ps {
			ports[p] = struct{}{}
		}
	}
	if cfg.ExposedPorts == nil {
		cfg.ExposedPorts = map[string]struct{}{}
	}
	if len(cfg.ExposedPorts)+len(ports) > maxExposed {
		return nil, errors.New("too many exposed ports")
	}
	for p := range ports {
		cfg.ExposedPorts[p] = struct{}{}
	}
	return ports, nil
}

// parsePort parses [[ip:]hostport:]port[-port][/proto] as Docker does for
// EXPOSE; only the container side matters.
func parsePort(raw string) ([]string, error) {
	spec := raw
	if i := strings.LastIndex(spec, ":"); i >= 0 {
		spec = spec[i+1:]
	}
	port, proto, _ := strings.Cut(spec, "/")
	proto = strings.ToLower(proto)
	switch proto {
	case "":
		proto = "tcp"
	case "tcp", "udp", "sctp":
	default:
		return nil, fmt.Errorf("invalid proto: %s", proto)
	}
	if port == "" {
		return nil, errors.New("no port specified")
	}
	startS, endS, isRange := strings.Cut(port, "-")
	start, err := portNumber(startS)
	if err != nil {
		return nil, err
	}
	end := start
	if isRange && endS != startS {
		if end, err = portNumber(endS); err != nil {
			return nil, err
		}
		if end < start {
			return nil, fmt.Errorf("invalid port range: %s", port)
		}
	}
	out := make([]string, 0, end-start+1)
	for p := start; p <= end; p++ {
		out = append(out, strconv.Itoa(p)+"/"+proto)
	}
	return out, nil
}

func portNumber(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 65535 {
		return 0, fmt.Errorf("invalid port number %q", s)
	}
	return n, nil
}
