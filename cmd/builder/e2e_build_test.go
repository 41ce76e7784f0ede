package main

import (
	"archive/tar"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/builder-dev/builder/internal/testutil"
	"golang.org/x/sys/unix"
)

type inspectOut struct {
	ID     string `json:"Id"`
	Config struct {
		Env          []string
		Cmd          []string
		Entrypoint   []string
		WorkingDir   string
		User         string
		Labels       map[string]string
		ExposedPorts map[string]struct{}
		Volumes      map[string]struct{}
		StopSignal   string
	}
	History []struct {
		CreatedBy  string `json:"created_by"`
		EmptyLayer bool   `json:"empty_layer"`
	}
	RootFS struct {
		DiffIDs []string `json:"diff_ids"`
	}
}

func (h *harness) inspect(ref string) inspectOut {
	h.t.Helper()
	var out []inspectOut
	if err := json.Unmarshal([]byte(h.mustRun("inspect", ref)), &out); err != nil || len(out) != 1 {
		h.t.Fatalf("inspect %s: %v", ref, err)
	}
	return out[0]
}

func TestBuildEveryInstruction(t *testing.T) {
	h := newHarness(t)
	archive := testutil.Tar(t,
		testutil.TarEntry{Name: "pkg/", Type: tar.TypeDir, Mode: 0o755},
		testutil.TarEntry{Name: "pkg/a.txt", Mode: 0o600, Body: "from-tar\n"})
	dir := h.context(`# escape=`+"`"+`
ARG BASE=base/busybox:1
ARG GREETING=hello
FROM ${BASE} AS build
ARG GREETING
RUN echo "$GREETING from build" > /built.txt && mkdir -p /out && echo tool > /out/tool
RUN ["sh", "-c", "echo exec-form > /exec.txt"]

FROM build AS second
RUN echo second > /second.txt

FROM ${BASE}
MAINTAINER someone@example.com
LABEL a=1 "b c"="two words"
ENV APP=/app PORT=8080
EXPOSE ${PORT} 53/udp
WORKDIR $APP
COPY --from=build /built.txt ./
COPY --from=1 /second.txt ./
COPY --from=base/busybox:1 /etc/group /app/group.copy
COPY --chown=1234:5678 --chmod=0640 f.txt ./owned.txt
ADD archive.tar /unpacked/
ADD f.txt /added.txt
SHELL ["/bin/sh", "-e", "-c"]
RUN echo `+"`"+`
    continued > /app/cont.txt
VOLUME /data
STOPSIGNAL SIGUSR1
HEALTHCHECK --interval=5s --retries=2 CMD ["true"]
ONBUILD RUN echo triggered > /tmp/onbuild.txt
USER nobody
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /app/built.txt /app/second.txt /app/cont.txt; id -u; pwd"]
`, map[string]string{"f.txt": "file\n", "archive.tar": string(archive), "ignored.txt": "x", ".dockerignore": "ignored.txt\n"})
	h.build(dir, "every:1", "--build-arg", "GREETING=hi")
	got := h.runImage("every:1")
	want := "hi from build\nsecond\ncontinued\n65534\n/app\n"
	if got != want {
		t.Errorf("run output:\n%s\nwant:\n%s", got, want)
	}
	out := h.runImage("every:1", "ls -ln /app/owned.txt /unpacked/pkg/a.txt | awk '{print $1, $3, $4}'; cat /added.txt")
	if out != "-rw-r----- 1234 5678\n-rw------- 0 0\nfile\n" {
		t.Errorf("modes/owners: %q", out)
	}
	if out := h.mustRun("run", "--rm", "-u", "0", "every:1", "cat /unpacked/pkg/a.txt"); out != "from-tar\n" {
		t.Errorf("ADD of a local tar: %q", out)
	}
	cfg := h.inspect("every:1").Config
	if cfg.User != "nobody" || cfg.WorkingDir != "/app" || cfg.StopSignal != "SIGUSR1" {
		t.Errorf("config: %+v", cfg)
	}
	if cfg.Labels["a"] != "1" || cfg.Labels["b c"] != "two words" {
		t.Errorf("labels: %v", cfg.Labels)
	}
	if _, ok := cfg.ExposedPorts["8080/tcp"]; !ok {
		t.Errorf("exposed ports: %v", cfg.ExposedPorts)
	}
	if _, ok := cfg.ExposedPorts["53/udp"]; !ok {
		t.Errorf("exposed ports: %v", cfg.ExposedPorts)
	}
	if _, ok := cfg.Volumes["/data"]; !ok {
		t.Errorf("volumes: %v", cfg.Volumes)
	}
	if strings.Join(cfg.Env, " ") != "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin APP=/app PORT=8080" {
		t.Errorf("env: %v", cfg.Env)
	}
	// GREETING is a build arg: in RUN's environment, never in the image's.
	if strings.Contains(strings.Join(cfg.Env, " "), "GREETING") {
		t.Errorf("build arg leaked into config env: %v", cfg.Env)
	}
	if out := h.runImage("every:1", "ls /app"); strings.Contains(out, "ignored.txt") {
		t.Errorf(".dockerignore not applied: %s", out)
	}

	// ONBUILD triggers run in the build that uses the image as a base.
	child := h.context("FROM every:1\nRUN test -f /tmp/onbuild.txt\n", map[string]string{})
	h.build(child, "child:1")
	if out := h.runImage("child:1", "cat /tmp/onbuild.txt"); out != "triggered\n" {
		t.Errorf("onbuild: %q", out)
	}
}

func TestTargetSkipsLaterStages(t *testing.T) {
	h := newHarness(t)
	dir := h.context(`FROM base/busybox:1 AS a
RUN echo a > /a
FROM base/busybox:1 AS broken
RUN exit 3
FROM a AS final
RUN echo final > /final
`, map[string]string{})
	h.build(dir, "t:a", "--target", "a")
	if out := h.runImage("t:a", "cat", "/a"); out != "a\n" {
		t.Errorf("target a: %q", out)
	}
	_, errOut, code := h.run("build", "--target", "nope", dir)
	if code == 0 || !strings.Contains(errOut, "nope") {
		t.Errorf("unknown target: exit %d, %s", code, errOut)
	}
}

func TestWhiteoutsAndMetadata(t *testing.T) {
	h := newHarness(t)
	dir := h.context(`FROM base/busybox:1
RUN mkdir -p /x/inner /y /opq/old && echo i > /x/inner/f && echo y > /y/f && echo o > /opq/old/f && echo gone > /gone
RUN rm /gone && rm -rf /x && echo now-a-file > /x && rm -rf /y && mkdir /y && echo new > /y/g \
 && rm -rf /opq && mkdir -p /opq/new && echo n > /opq/new/f
RUN rm /x && mkdir /x && echo back > /x/again
RUN mkdir /meta && echo s > /meta/suid && chown 12:34 /meta/suid && chmod 4755 /meta/suid \
 && ln -s suid /meta/link && ln /meta/suid /meta/hard && mkfifo /meta/fifo && mknod /meta/null c 1 3 \
 && mkdir -m 1777 /meta/sticky
COPY xattr.txt /meta/
`, map[string]string{"xattr.txt": "x\n"})
	if err := unix.Setxattr(filepath.Join(dir, "xattr.txt"), "user.builder.test", []byte("v1"), 0); err != nil {
		t.Skipf("context file system has no user xattrs: %v", err)
	}
	h.build(dir, "wh:1")
	out := h.runImage("wh:1", "sh", "-c", "ls /gone 2>&1; cat /x/again; ls /y; ls /opq; ls /opq/new")
	want := "ls: /gone: No such file or directory\nback\ng\nnew\nf\n"
	if out != want {
		t.Errorf("whiteouts:\n%s\nwant:\n%s", out, want)
	}
	dest := t.TempDir()
	h.build(dir, "wh:1", "-o", "type=local,dest="+dest)
	st := func(p string) *syscall.Stat_t {
		fi, err := os.Lstat(filepath.Join(dest, p))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t)
	}
	if s := st("meta/suid"); s.Mode&0o7777 != 0o4755 || s.Uid != 12 || s.Gid != 34 {
		t.Errorf("suid file: mode %o owner %d:%d", s.Mode&0o7777, s.Uid, s.Gid)
	}
	if st("meta/suid").Ino != st("meta/hard").Ino {
		t.Error("hardlink not kept")
	}
	if target, _ := os.Readlink(filepath.Join(dest, "meta/link")); target != "suid" {
		t.Errorf("symlink target %q", target)
	}
	if s := st("meta/fifo"); s.Mode&syscall.S_IFMT != syscall.S_IFIFO {
		t.Error("fifo not kept")
	}
	if s := st("meta/null"); s.Mode&syscall.S_IFMT != syscall.S_IFCHR || s.Rdev != unix.Mkdev(1, 3) {
		t.Error("char device not kept")
	}
	if s := st("meta/sticky"); s.Mode&0o7777 != 0o1777 {
		t.Errorf("sticky dir mode %o", s.Mode&0o7777)
	}
	buf := make([]byte, 16)
	n, err := unix.Lgetxattr(filepath.Join(dest, "meta/xattr.txt"), "user.builder.test", buf)
	if err != nil || string(buf[:n]) != "v1" {
		t.Errorf("xattr: %q %v", buf[:n], err)
	}
	for _, p := range []string{"gone", "x/inner", "opq/old", "etc/resolv.conf", "etc/hosts"} {
		if _, err := os.Lstat(filepath.Join(dest, p)); err == nil {
			t.Errorf("%s should not exist in the result", p)
		}
	}
}

func storeSnapshot(t *testing.T, h *harness) string {
	t.Helper()
	idx, err := os.ReadFile(filepath.Join(h.root, "content", "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	return string(idx) + h.mustRun("images")
}

func TestFailingRun(t *testing.T) {
	h := newHarness(t)
	dir := h.context("FROM base/busybox:1\nRUN echo before\nRUN sh -c 'exit 7'\nRUN echo never\n", map[string]string{})
	before := storeSnapshot(t, h)
	_, errOut, code := h.run("build", "-t", "fail:1", dir)
	if code == 0 {
		t.Fatal("build with a failing RUN succeeded")
	}
	if !strings.Contains(errOut, "Dockerfile:3") || !strings.Contains(errOut, "exit code: 7") {
		t.Errorf("error should name Dockerfile:3 and the exit code:\n%s", errOut)
	}
	if after := storeSnapshot(t, h); after != before {
		t.Errorf("store changed by a failed build:\n%s\n---\n%s", before, after)
	}
}

func TestBadDockerfile(t *testing.T) {
	h := newHarness(t)
	before := storeSnapshot(t, h)
	for name, df := range map[string]string{
		"unknown instruction": "FROM base/busybox:1\nRUN true\nFROBNICATE now\n",
		"bad json shell":      "FROM base/busybox:1\n\nSHELL not-json\n",
		"missing stage":       "FROM base/busybox:1\nCOPY --from=nowhere /a /b\n",
		"no such image":       "FROM no/such:image\n",
	} {
		dir := h.context(df, map[string]string{})
		_, errOut, code := h.run("build", "-t", "bad:1", dir)
		if code == 0 {
			t.Errorf("%s: build succeeded", name)
			continue
		}
		if !strings.Contains(errOut, filepath.Join(dir, "Dockerfile")+":") {
			t.Errorf("%s: error does not name the Dockerfile and line:\n%s", name, errOut)
		}
		if strings.Contains(errOut, "panic") {
			t.Errorf("%s: panicked:\n%s", name, errOut)
		}
	}
	if after := storeSnapshot(t, h); after != before {
		t.Errorf("store changed by bad Dockerfiles")
	}
}

func TestNetworkNone(t *testing.T) {
	h := newHarness(t)
	dir := h.context("FROM base/busybox:1\nRUN cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' ' > /ifaces && hostname > /host\n", map[string]string{})
	h.build(dir, "net:1", "--network", "none")
	if out := h.runImage("net:1", "cat", "/ifaces", "/host"); out != "lo\nbuildkitsandbox\n" {
		t.Errorf("network none: %q", out)
	}
}

// Real consumers must accept what the store and the exporters write.
func TestArchivesAcceptedBySkopeoAndUmoci(t *testing.T) {
	h := newHarness(t)
	for _, tool := range []string{"skopeo", "umoci"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s missing: apt-get install -y %s", tool, tool)
		}
	}
	dir := h.context("FROM base/busybox:1\nRUN echo hi > /hi\n", map[string]string{})
	h.build(dir, "consumer:1")
	tmp := t.TempDir()
	run := func(name string, args ...string) string {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return string(out)
	}
	run("skopeo", "inspect", "oci:"+filepath.Join(h.root, "content")+":consumer:1")
	h.mustRun("save", "-o", filepath.Join(tmp, "d.tar"), "consumer:1")
	h.mustRun("save", "--format", "oci", "-o", filepath.Join(tmp, "o.tar"), "consumer:1")
	run("skopeo", "inspect", "docker-archive:"+filepath.Join(tmp, "d.tar"))
	run("skopeo", "inspect", "oci-archive:"+filepath.Join(tmp, "o.tar"))
	run("skopeo", "copy", "docker-archive:"+filepath.Join(tmp, "d.tar"), "oci:"+filepath.Join(tmp, "layout")+":copied")
	run("skopeo", "copy", "oci-archive:"+filepath.Join(tmp, "o.tar"), "oci:"+filepath.Join(tmp, "layout")+":copied2")
	run("umoci", "unpack", "--image", filepath.Join(tmp, "layout")+":copied", filepath.Join(tmp, "bundle"))
	if b, err := os.ReadFile(filepath.Join(tmp, "bundle", "rootfs", "hi")); err != nil || string(b) != "hi\n" {
		t.Errorf("unpacked image lacks /hi: %q %v", b, err)
	}
	// Round trip: a saved archive loads into another store and runs.
	h2 := &harness{t: t, root: t.TempDir()}
	h2.mustRun("load", "-i", filepath.Join(tmp, "d.tar"))
	if out := h2.runImage("consumer:1", "cat", "/hi"); out != "hi\n" {
		t.Errorf("loaded image: %q", out)
	}
	h3 := &harness{t: t, root: t.TempDir()}
	h3.mustRun("load", "-i", filepath.Join(tmp, "o.tar"))
	if out := h3.runImage("consumer:1", "cat", "/hi"); out != "hi\n" {
		t.Errorf("loaded oci image: %q", out)
	}
}

func TestBuildOutputsAndIIDFile(t *testing.T) {
	h := newHarness(t)
	dir := h.context("FROM base/busybox:1\nRUN echo out > /out.txt\n", map[string]string{})
	tmp := t.TempDir()
	iid := filepath.Join(tmp, "iid")
	h.build(dir, "outs:1", "--iidfile", iid,
		"-o", "type=oci,dest="+filepath.Join(tmp, "img.oci.tar"),
		"-o", "type=docker,dest="+filepath.Join(tmp, "img.docker.tar"),
		"-o", "type=tar,dest="+filepath.Join(tmp, "rootfs.tar"),
		"-o", "type=local,dest="+filepath.Join(tmp, "rootfs"))
	id, err := os.ReadFile(iid)
	if err != nil || !strings.HasPrefix(string(id), "sha256:") {
		t.Fatalf("iidfile: %q %v", id, err)
	}
	if got := h.inspect("outs:1").ID; got != string(id) {
		t.Errorf("iidfile %s, inspect says %s", id, got)
	}
	// A cached rebuild writes the same image.
	iid2 := filepath.Join(tmp, "iid2")
	h.build(dir, "outs:1", "--iidfile", iid2)
	if id2, _ := os.ReadFile(iid2); string(id2) != string(id) {
		t.Errorf("cached rebuild changed the image ID: %s -> %s", id, id2)
	}
	// -q, as docker build's: the image ID alone on stdout.
	if out, errOut, code := h.run("build", "-q", "-t", "outs:1", dir); code != 0 || out != string(id)+"\n" || errOut != "" {
		t.Errorf("build -q: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if b, err := os.ReadFile(filepath.Join(tmp, "rootfs", "out.txt")); err != nil || string(b) != "out\n" {
		t.Errorf("local output: %q %v", b, err)
	}
	f, err := os.Open(filepath.Join(tmp, "rootfs.tar"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	found := false
	tr := tar.NewReader(f)
	for {
		hd, err := tr.Next()
		if err != nil {
			break
		}
		found = found || hd.Name == "out.txt"
	}
	if !found {
		t.Error("tar output lacks out.txt")
	}
	for _, a := range []string{"oci-archive:" + filepath.Join(tmp, "img.oci.tar"), "docker-archive:" + filepath.Join(tmp, "img.docker.tar")} {
		if out, err := exec.Command("skopeo", "inspect", a).CombinedOutput(); err != nil {
			t.Errorf("skopeo inspect %s: %v\n%s", a, err, out)
		}
	}
}

// WORKDIR through a dangling symlink makes the link's target, parents and
// all, inside the image (BuildKit does too); a link pointing out of the
// root with ../ still lands inside it.
func TestWorkdirThroughDanglingSymlink(t *testing.T) {
	h := newHarness(t)
	outside := filepath.Join(t.TempDir(), "host-side")
	dir := h.context("FROM base/busybox:1\nRUN ln -s /data/app /app && ln -s ../../../../.."+outside+" /esc\nWORKDIR /app\nRUN pwd > /pwd\nWORKDIR /esc/x\n", map[string]string{})
	h.build(dir, "wd:1")
	if got := h.runImage("wd:1", "sh", "-c", "cat /pwd; ls -d /data/app "+outside+"/x"); got != "/data/app\n/data/app\n"+outside+"/x\n" {
		t.Errorf("image has %q", got)
	}
	if _, err := os.Stat(outside); !os.IsNotExist(err) {
		t.Errorf("WORKDIR through a link made %s on the host: %v", outside, err)
	}
}
