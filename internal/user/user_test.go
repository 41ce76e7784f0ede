package user

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func writeRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	passwd := "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:App:/home/app:/bin/sh\n"
	group := "root:x:0:\ngrp:x:1001:\nextra:x:2000:app,other\nother:x:3000:\n"
	for name, body := range map[string]string{"passwd": passwd, "group": group} {
		if err := os.WriteFile(filepath.Join(root, "etc", name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestResolve(t *testing.T) {
	root := writeRoot(t)
	tests := []struct {
		spec    string
		want    User
		wantErr bool
	}{
		{spec: "", want: User{Name: "root", Home: "/root"}},
		{spec: "app", want: User{Name: "app", UID: 1000, GID: 1001, Groups: []int{2000}, Home: "/home/app"}},
		{spec: "1000", want: User{Name: "app", UID: 1000, GID: 1001, Groups: []int{2000}, Home: "/home/app"}},
		{spec: "app:3000", want: User{Name: "app", UID: 1000, GID: 3000, Groups: []int{2000}, Home: "/home/app"}},
		{spec: "app:grp", want: User{Name: "app", UID: 1000, GID: 1001, Groups: []int{2000}, Home: "/home/app"}},
		{spec: "4242", want: User{UID: 4242, Home: "/"}},
		{spec: "4242:7", want: User{UID: 4242, GID: 7, Home: "/"}},
		{spec: "nosuch", wantErr: true},
		{spec: "app:nosuch", wantErr: true},
		// Out of range: -1 and 4294967295 would leave the process
		// root, 2^32+5 would be cut to 5.
		{spec: "-1", wantErr: true},
		{spec: "4294967295", wantErr: true},
		{spec: "4294967301", wantErr: true},
		{spec: "99999999999999999999999", wantErr: true},
		{spec: "0:-1", wantErr: true},
		{spec: "0:99999999999", wantErr: true},
		{spec: "2147483647", want: User{UID: 2147483647, Home: "/"}},
		{spec: "+5", want: User{UID: 5, Home: "/"}},
	}
	for _, tt := range tests {
		got, err := Resolve(root, tt.spec)
		if (err != nil) != tt.wantErr {
			t.Errorf("Resolve(%q) error = %v, wantErr %v", tt.spec, err, tt.wantErr)
			continue
		}
		if !tt.wantErr && !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Resolve(%q) = %+v, want %+v", tt.spec, got, tt.want)
		}
	}
}

func TestResolveChown(t *testing.T) {
	root := writeRoot(t)
	tests := []struct {
		spec     string
		uid, gid int
		wantErr  bool
	}{
		{spec: "app:grp", uid: 1000, gid: 1001},
		{spec: "1000:3000", uid: 1000, gid: 3000},
		{spec: "1000", uid: 1000, gid: 1000},
		{spec: "app", uid: 1000, gid: 1001},
		{spec: "app:3000", uid: 1000, gid: 3000},
		{spec: "55:other", uid: 55, gid: 3000},
		{spec: "ghost", uid: 0, gid: 0},
		{spec: "ghost:grp", uid: 0, gid: 1001},
		{spec: "app:nosuch", uid: 1000, gid: 1001},
		{spec: ":7", uid: 0, gid: 7},
		{spec: "-1", wantErr: true},
		{spec: "4294967295", wantErr: true},
		{spec: "1099511627776:1", wantErr: true},
		{spec: "1:-5", wantErr: true},
		{spec: "99999999999999999999999", wantErr: true},
		{spec: "ghost:4294967296", wantErr: true},
	}
	for _, tt := range tests {
		uid, gid, err := ResolveChown(root, tt.spec)
		if (err != nil) != tt.wantErr {
			t.Errorf("ResolveChown(%q) error = %v, wantErr %v", tt.spec, err, tt.wantErr)
			continue
		}
		if !tt.wantErr && (uid != tt.uid || gid != tt.gid) {
			t.Errorf("ResolveChown(%q) = %d:%d, want %d:%d", tt.spec, uid, gid, tt.uid, tt.gid)
		}
	}
}

// A passwd symlinked to the host's file must be read inside the root.
func TestResolveStaysInRoot(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(root, "etc", "passwd")); err != nil {
		t.Fatal(err)
	}
	if _, err := Resolve(root, "root"); err == nil {
		t.Fatal("resolved a user through a symlink to the host's passwd")
	}
}
