package main

import (
	"encoding/csv"
	"fmt"
	"strconv"
	"strings"

	"github.com/builder-dev/builder/exporter"
)

// parseOutputs parses build's -o/--output flags, as buildx does: CSV
// key=value pairs (quote a value holding a comma), type one of oci,
// docker, local, tar (with dest), image (name, push) or registry (name;
// image with push=true). Package exporter writes them.
func parseOutputs(list []string) ([]exporter.Output, error) {
	var outs []exporter.Output
	for _, s := range list {
		fields, err := csv.NewReader(strings.NewReader(s)).Read()
		if err != nil {
			return nil, usageError{fmt.Errorf("invalid --output %q: %w", s, err)}
		}
		o := exporter.Output{}
		if len(fields) == 1 && !strings.Contains(fields[0], "=") {
			// docker's shorthand: -o DIR means a local export.
			o.Type, o.Dest = "local", s
			outs = append(outs, o)
			continue
		}
		for _, kv := range fields {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return nil, usageError{fmt.Errorf("invalid --output %q", s)}
			}
			switch k {
			case "type":
				o.Type = v
			case "dest":
				o.Dest = v
			case "name":
				for _, n := range strings.Split(v, ",") {
					if n = strings.TrimSpace(n); n != "" {
						o.Names = append(o.Names, n)
					}
				}
			case "push":
				b, err := strconv.ParseBool(v)
				if err != nil {
					return nil, usageError{fmt.Errorf("invalid --output %q: push=%q is not true or false", s, v)}
				}
				o.Push = b
			default:
				return nil, usageError{fmt.Errorf("invalid --output %q: unknown key %q", s, k)}
			}
		}
		switch o.Type {
		case "oci", "docker", "local", "tar":
			if o.Dest == "" {
				return nil, usageError{fmt.Errorf("invalid --output %q: dest is required", s)}
			}
			if len(o.Names) > 0 || o.Push {
				return nil, usageError{fmt.Errorf("invalid --output %q: name and push are for type=image or registry", s)}
			}
		case "image", "registry":
			if o.Dest != "" {
				return nil, usageError{fmt.Errorf("invalid --output %q: dest is not for type=%s", s, o.Type)}
			}
			if o.Type == "registry" {
				o.Push = true
			}
		default:
			return nil, usageError{fmt.Errorf("invalid --output %q: type must be oci, docker, local, tar, image or registry", s)}
		}
		outs = append(outs, o)
	}
	return outs, nil
}
