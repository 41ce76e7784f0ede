package runner

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"time"
)

// InitBinaryName is the lean container init installed next to the builder
// (cmd/builder-init). Every RUN starts an init, and a Go binary's start-up
// grows with what it links: the builder's own packages and their
// dependencies (the Dockerfile parser, registry client, protobuf) cost about
// 10 ms of package initialisation and page faults per start on a small VM,
// the init alone a third of that. Without it, Run re-executes the current
// binary, which works the same, only slower.
const InitBinaryName = "builder-init"

// initBinary is the program Start executes as the container's init.
// One built well before the builder (the builder rebuilt alone) is passed
// over: it may speak the same protocol (see protocol) with older code.
var initBinary = sync.OnceValue(func() string {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), InitBinaryName)
		fi, err := os.Stat(p)
		self, serr := os.Stat(exe)
		if err == nil && serr == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 &&
			!fi.ModTime().Before(self.ModTime().Add(-staleInit)) {
			return p
		}
	}
	return "/proc/self/exe"
})

// staleInit is how much older than the builder its init may be: one build
// (`make build`) writes both within moments.
const staleInit = time.Minute

// protocol names the shape of what Start and the init exchange (initConfig
// and status, field by field): an init from another build of the builder,
// whose messages would be misread, refuses to run instead.
var protocol = sync.OnceValue(func() string {
	var b strings.Builder
	describe(&b, reflect.TypeOf(initConfig{}))
	describe(&b, reflect.TypeOf(status{}))
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:8])
})

// describe writes t's structure: kinds, field names and tags, recursively.
func describe(b *strings.Builder, t reflect.Type) {
	switch t.Kind() {
	case reflect.Struct:
		b.WriteString("{")
		for i := range t.NumField() {
			f := t.Field(i)
			fmt.Fprintf(b, "%s %q ", f.Name, f.Tag)
			describe(b, f.Type)
			b.WriteString(";")
		}
		b.WriteString("}")
	case reflect.Pointer, reflect.Slice:
		fmt.Fprintf(b, "%s ", t.Kind())
		describe(b, t.Elem())
	case reflect.Map:
		b.WriteString("map[")
		describe(b, t.Key())
		b.WriteString("]")
		describe(b, t.Elem())
	default:
		b.WriteString(t.Kind().String())
	}
}
