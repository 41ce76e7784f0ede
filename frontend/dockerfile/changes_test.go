package dockerfile

import (
	"reflect"
	"strings"
	"testing"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestApplyChanges(t *testing.T) {
	cfg := dockerspec.DockerOCIImageConfig{ImageConfig: ocispec.ImageConfig{
		Env:        []string{"PATH=/bin", "A=1"},
		WorkingDir: "/srv",
		Cmd:        []string{"old"},
	}}
	err := ApplyChanges(&cfg, []string{
		`CMD ["run", "it"]`,
		`ENTRYPOINT echo hi`,
		`ENV A=2 B="two words"`,
		`ENV C 3`,
		`ENV D=$A-${B}`,
		`LABEL x=y "a b"=c`,
		`EXPOSE 80 53/udp 8000-8001`,
		`USER app:grp`,
		`VOLUME ["/data", "/logs"]`,
		`WORKDIR sub`,
		`STOPSIGNAL SIGINT`,
		`ONBUILD RUN true`,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := dockerspec.DockerOCIImageConfig{ImageConfig: ocispec.ImageConfig{
		Cmd:          []string{"run", "it"},
		Entrypoint:   []string{"/bin/sh", "-c", "echo hi"},
		Env:          []string{"PATH=/bin", "A=2", "B=two words", "C=3", "D=2-two words"},
		Labels:       map[string]string{"x": "y", "a b": "c"},
		ExposedPorts: map[string]struct{}{"80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}},
		User:         "app:grp",
		Volumes:      map[string]struct{}{"/data": {}, "/logs": {}},
		WorkingDir:   "/srv/sub",
		StopSignal:   "SIGINT",
	}}
	want.OnBuild = []string{"RUN true"}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("ApplyChanges:\n got %+v\nwant %+v", cfg, want)
	}
	for _, bad := range []string{"RUN true", "FROM x", "STOPSIGNAL NOPE", "EXPOSE 80/xyz", "CMD a\nCMD b", "EXPOSE 9-1"} {
		if err := ApplyChanges(&cfg, []string{bad}); err == nil {
			t.Errorf("ApplyChanges(%q) accepted", bad)
		}
	}
	// SHELL of the image makes shell forms.
	cfg = dockerspec.DockerOCIImageConfig{}
	cfg.Shell = []string{"/bin/bash", "-c"}
	if err := ApplyChanges(&cfg, []string{"CMD ls -l"}); err != nil || strings.Join(cfg.Cmd, "|") != "/bin/bash|-c|ls -l" {
		t.Errorf("shell form with SHELL: %v, %v", cfg.Cmd, err)
	}
}
