package container

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func str(s string) *string { return &s }

func TestMakeConfig(t *testing.T) {
	img := ocispec.ImageConfig{
		Entrypoint: []string{"/ep"},
		Cmd:        []string{"c1", "c2"},
		Env:        []string{"PATH=/bin", "A=1", "B=2"},
		WorkingDir: "/srv",
		User:       "app",
		StopSignal: "SIGUSR1",
	}
	lookup := func(k string) (string, bool) {
		if k == "HOSTVAR" {
			return "h", true
		}
		return "", false
	}
	for _, tc := range []struct {
		name    string
		img     ocispec.ImageConfig
		o       Overrides
		ep, cmd []string
		env     []string
		wd, usr string
		err     string
	}{
		{name: "image", img: img, ep: []string{"/ep"}, cmd: []string{"c1", "c2"}, env: img.Env, wd: "/srv", usr: "app"},
		{name: "args replace cmd", img: img, o: Overrides{Args: []string{"x"}}, ep: []string{"/ep"}, cmd: []string{"x"}, env: img.Env, wd: "/srv", usr: "app"},
		{name: "entrypoint drops cmd", img: img, o: Overrides{Entrypoint: str("/other")}, ep: []string{"/other"}, env: img.Env, wd: "/srv", usr: "app"},
		{name: "entrypoint and args", img: img, o: Overrides{Entrypoint: str("/other"), Args: []string{"a"}}, ep: []string{"/other"}, cmd: []string{"a"}, env: img.Env, wd: "/srv", usr: "app"},
		{name: "empty entrypoint", img: img, o: Overrides{Entrypoint: str(""), Args: []string{"sh"}}, cmd: []string{"sh"}, env: img.Env, wd: "/srv", usr: "app"},
		{name: "empty entrypoint alone", img: img, o: Overrides{Entrypoint: str("")}, err: "no command"},
		{name: "nothing to run", img: ocispec.ImageConfig{}, err: "no command"},
		{name: "env, workdir, user", img: img,
			o:  Overrides{Env: []string{"A=x", "C=3", "HOSTVAR", "B", "MISSING"}, WorkingDir: "/w/../x/", User: "1:2"},
			ep: []string{"/ep"}, cmd: []string{"c1", "c2"}, env: []string{"PATH=/bin", "A=x", "C=3", "HOSTVAR=h"}, wd: "/x", usr: "1:2"},
		{name: "relative workdir", img: img, o: Overrides{WorkingDir: "rel"}, err: "absolute"},
	} {
		c, err := MakeConfig(tc.img, tc.o, lookup)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !slices.Equal(c.Entrypoint, tc.ep) || !slices.Equal(c.Cmd, tc.cmd) ||
			!reflect.DeepEqual(c.Env, tc.env) || c.WorkingDir != tc.wd || c.User != tc.usr || c.StopSignal != "SIGUSR1" {
			t.Errorf("%s: got %+v", tc.name, c)
		}
	}
	// The image's slices are not shared.
	c, _ := MakeConfig(img, Overrides{}, nil)
	c.Cmd[0] = "changed"
	if img.Cmd[0] != "c1" {
		t.Error("MakeConfig shares the image's CMD")
	}
}

func TestMergeEnv(t *testing.T) {
	got := MergeEnv([]string{"A=1", "B=2"}, []string{"B=3", "C=4", "A", "C=5", "D"}, nil)
	if want := []string{"B=3", "C=5"}; !reflect.DeepEqual(got, want) {
		t.Errorf("MergeEnv = %v, want %v", got, want)
	}
}

func TestParseEnvFile(t *testing.T) {
	env, err := ParseEnvFile(strings.NewReader("\uFEFF# comment\n\n  A=1\nB= spaced value \nC\nD=x=y\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"A=1", "B= spaced value ", "C", "D=x=y"}; !reflect.DeepEqual(env, want) {
		t.Errorf("ParseEnvFile = %q, want %q", env, want)
	}
	for _, bad := range []string{"=x\n", "A B=1\n"} {
		if _, err := ParseEnvFile(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseEnvFile(%q) accepted", bad)
		}
	}
}

func TestParseMounts(t *testing.T) {
	for spec, want := range map[string]Mount{
		"/a:/b":        {Type: "bind", Source: "/a", Dest: "/b"},
		"/a/:/b/c/:ro": {Type: "bind", Source: "/a", Dest: "/b/c", ReadOnly: true},
		"/a:/b:rw":     {Type: "bind", Source: "/a", Dest: "/b"},
	} {
		if got, err := ParseVolume(spec); err != nil || got != want {
			t.Errorf("ParseVolume(%q) = %+v, %v", spec, got, err)
		}
	}
	for _, bad := range []string{"name:/b", "/a:b", "/a:/", "/a", "/a:/b:xx", "/a:/b:ro:x"} {
		if _, err := ParseVolume(bad); err == nil {
			t.Errorf("ParseVolume(%q) accepted", bad)
		}
	}
	if got, err := ParseTmpfs("/t:ro"); err != nil || got != (Mount{Type: "tmpfs", Dest: "/t", ReadOnly: true}) {
		t.Errorf("ParseTmpfs = %+v, %v", got, err)
	}
	for _, bad := range []string{"t", "/", "/t:size=1m"} {
		if _, err := ParseTmpfs(bad); err == nil {
			t.Errorf("ParseTmpfs(%q) accepted", bad)
		}
	}
}

func TestRuntimeEnv(t *testing.T) {
	c := &Container{Config: Config{Env: []string{"PATH=/x", "HOSTNAME=mine"}}, Host: HostConfig{Hostname: "h", Tty: true}}
	if got, want := RuntimeEnv(c), []string{"HOSTNAME=mine", "TERM=xterm", "PATH=/x"}; !reflect.DeepEqual(got, want) {
		t.Errorf("RuntimeEnv = %v, want %v", got, want)
	}
	c = &Container{Host: HostConfig{Hostname: "h"}}
	if got, want := RuntimeEnv(c), []string{"HOSTNAME=h"}; !reflect.DeepEqual(got, want) {
		t.Errorf("RuntimeEnv = %v, want %v", got, want)
	}
}

func TestStubPaths(t *testing.T) {
	c := &Container{Host: HostConfig{Mounts: []Mount{{Dest: "/data/in"}}}}
	got := stubPaths(c)
	for _, p := range []string{"etc/resolv.conf", "proc", "data/in", "data"} {
		if !strings.Contains(" "+strings.Join(got, " ")+" ", " "+p+" ") {
			t.Errorf("stubPaths = %v, missing %s", got, p)
		}
	}
}

func TestParseSecurityOpts(t *testing.T) {
	for _, tt := range []struct {
		opts    []string
		want    bool
		wantErr bool
	}{
		{nil, false, false},
		{[]string{"no-new-privileges"}, true, false},
		{[]string{"no-new-privileges:true"}, true, false},
		{[]string{"no-new-privileges=true"}, true, false},
		{[]string{"no-new-privileges=false"}, false, false},
		{[]string{"no-new-privileges", "no-new-privileges:false"}, false, false},
		{[]string{"no-new-privileges=maybe"}, false, true},
		{[]string{"seccomp=unconfined"}, false, true},
		{[]string{"apparmor=unconfined"}, false, true},
		{[]string{""}, false, true},
	} {
		got, err := ParseSecurityOpts(tt.opts)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseSecurityOpts(%q) = %v, %v", tt.opts, got, err)
		}
	}
}
