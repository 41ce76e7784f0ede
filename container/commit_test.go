package container

import (
	"reflect"
	"testing"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestImageConfig(t *testing.T) {
	base := dockerspec.DockerOCIImageConfig{ImageConfig: ocispec.ImageConfig{
		Entrypoint: []string{"/ep"}, Cmd: []string{"c"}, Env: []string{"A=1"},
		Labels: map[string]string{"k": "v"}, WorkingDir: "/", User: "u",
	}}
	base.Healthcheck = &dockerspec.HealthcheckConfig{Test: []string{"NONE"}}
	c := &Container{Config: Config{Cmd: []string{"x"}, Env: []string{"A=1", "B=2"}, WorkingDir: "/w", User: "0"}}
	got := imageConfig(base, c)
	if got.Entrypoint != nil || !reflect.DeepEqual(got.Cmd, []string{"x"}) || !reflect.DeepEqual(got.Env, c.Config.Env) ||
		got.WorkingDir != "/w" || got.User != "0" || got.Labels["k"] != "v" || got.Healthcheck == nil {
		t.Errorf("imageConfig = %+v", got)
	}
	got.Labels["k"] = "changed"
	if base.Labels["k"] != "v" {
		t.Error("imageConfig shares the base's maps")
	}
}
