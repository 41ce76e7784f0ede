package main

import (
	"fmt"
	"strings"

	"github.com/builder-dev/builder/exporter"
)

// parseOutputs parses build's -o/--output flags; package exporter writes
// them.
func parseOutputs(list []string) ([]exporter.Output, error) {
	var outs []exporter.Output
	for _, s := range list {
		o := exporter.Output{}
		for _, kv := range strings.Split(s, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				// docker's shorthand: -o DIR means a local export.
				if len(strings.Split(s, ",")) == 1 {
					o.Type, o.Dest = "local", s
					break
				}
				return nil, usageError{fmt.Errorf("invalid --output %q", s)}
			}
			switch k {
			case "type":
				o.Type = v
			case "dest":
				o.Dest = v
			default:
				return nil, usageError{fmt.Errorf("invalid --output %q: unknown key %q", s, k)}
			}
		}
		switch o.Type {
		case "oci", "docker", "local", "tar":
		default:
			return nil, usageError{fmt.Errorf("invalid --output %q: type must be oci, docker, local or tar", s)}
		}
		if o.Dest == "" {
			return nil, usageError{fmt.Errorf("invalid --output %q: dest is required", s)}
		}
		outs = append(outs, o)
	}
	return outs, nil
}
