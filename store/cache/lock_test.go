package cache

import (
	"context"
	"testing"
)

// TryLockGC gets the lock only when no build and no other collector holds
// it, and never waits.
func TestTryLockGC(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	build, err := LockBuild(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	if l, err := TryLockGC(root); err != nil || l != nil {
		t.Fatalf("with a build running: %v, %v", l, err)
	}
	build.Release()
	gc, err := TryLockGC(root)
	if err != nil || gc == nil {
		t.Fatalf("with nothing running: %v, %v", gc, err)
	}
	if l, err := TryLockGC(root); err != nil || l != nil {
		t.Fatalf("with a collector running: %v, %v", l, err)
	}
	gc.Release()
}
