package dockerfile

import (
	"maps"
	"runtime"
	"slices"
	"strings"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// defaultPath is the PATH BuildKit gives a stage whose base sets none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// historyComment marks the history entries BuildKit's Dockerfile frontend
// writes; we write the same so tools that look for it keep working.
const historyComment = "buildkit.dockerfile.v0"

// cloneImage deep-copies the parts of an image config that steps modify, so
// a stage never writes into its base's slices or maps.
func cloneImage(src dockerspec.DockerOCIImage) dockerspec.DockerOCIImage {
	img := src
	img.Config.Env = slices.Clone(src.Config.Env)
	img.Config.Cmd = slices.Clone(src.Config.Cmd)
	img.Config.Entrypoint = slices.Clone(src.Config.Entrypoint)
	img.Config.OnBuild = slices.Clone(src.Config.OnBuild)
	img.Config.Shell = slices.Clone(src.Config.Shell)
	img.Config.ExposedPorts = maps.Clone(src.Config.ExposedPorts)
	img.Config.Volumes = maps.Clone(src.Config.Volumes)
	img.Config.Labels = maps.Clone(src.Config.Labels)
	if src.Config.Healthcheck != nil {
		hc := *src.Config.Healthcheck
		hc.Test = slices.Clone(hc.Test)
		img.Config.Healthcheck = &hc
	}
	img.RootFS.DiffIDs = slices.Clone(src.RootFS.DiffIDs)
	img.History = slices.Clone(src.History)
	img.OSFeatures = slices.Clone(src.OSFeatures)
	return img
}

// emptyImage is the configuration of FROM scratch, as BuildKit makes it: the
// platform, a default PATH and "/" as working directory.
func emptyImage(p ocispec.Platform) dockerspec.DockerOCIImage {
	var img dockerspec.DockerOCIImage
	img.OS = p.OS
	img.Architecture = p.Architecture
	img.Variant = p.Variant
	img.RootFS.Type = "layers"
	img.Config.WorkingDir = "/"
	img.Config.Env = []string{"PATH=" + defaultPath}
	return img
}

// defaultPlatform is the build platform of this machine.
func defaultPlatform() ocispec.Platform {
	p := ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}
	if p.Architecture == "arm" {
		p.Variant = "v7"
	}
	return p
}

// formatPlatform formats p as os/arch[/variant], as BuildKit's
// BUILDPLATFORM and TARGETPLATFORM values are.
func formatPlatform(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// parsePlatform parses os[/arch[/variant]] or a bare architecture, with the
// usual architecture aliases. ok is false for anything else.
func parsePlatform(s string, def ocispec.Platform) (p ocispec.Platform, ok bool) {
	parts := strings.Split(strings.ToLower(s), "/")
	switch len(parts) {
	case 1:
		if parts[0] == "linux" {
			return ocispec.Platform{OS: "linux", Architecture: def.Architecture, Variant: def.Variant}, true
		}
		p = ocispec.Platform{OS: def.OS, Architecture: parts[0]}
	case 2:
		p = ocispec.Platform{OS: parts[0], Architecture: parts[1]}
	case 3:
		p = ocispec.Platform{OS: parts[0], Architecture: parts[1], Variant: parts[2]}
	default:
		return p, false
	}
	if p.OS == "" || p.Architecture == "" {
		return p, false
	}
	switch p.Architecture {
	case "x86_64", "x86-64":
		p.Architecture = "amd64"
	case "aarch64":
		p.Architecture = "arm64"
	case "i386":
		p.Architecture = "386"
	case "armhf":
		p.Architecture, p.Variant = "arm", "v7"
	case "armel":
		p.Architecture, p.Variant = "arm", "v6"
	}
	if p.Architecture == "arm64" && p.Variant == "v8" {
		p.Variant = ""
	}
	return p, true
}
