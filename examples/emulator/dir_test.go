package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pgentra/pgentra/internal/emulator"
	"github.com/pgentra/pgentra/internal/pgtest"
)

// refusedBeforeStart runs the command with args and a start that must not
// be reached: the -dir checks come before anything is started. It returns
// stderr.
func refusedBeforeStart(t *testing.T, args ...string) string {
	t.Helper()
	started := false
	start := func(context.Context, emulator.Options) (*emulator.Env, error) {
		started = true
		return nil, fmt.Errorf("pgentra: pgtest: %w: (test) not started", pgtest.ErrNoPostgres)
	}
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut, start)
	if code != 1 || out.Len() != 0 {
		t.Errorf("%q: exit %d, stdout %q; want 1 and nothing", args, code, out.String())
	}
	if started {
		t.Errorf("%q: the emulator was started; want a refusal before anything starts:\n%s", args, errOut.String())
	}
	return errOut.String()
}

// wantAll reports the wanted fragments stderr lacks.
func wantAll(t *testing.T, what, stderr string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(stderr, w) {
			t.Errorf("%s: stderr lacks %q:\n%s", what, w, stderr)
		}
	}
}

// otherOwned returns a directory owned by another user than this process:
// as root a new dir chowned to nobody, else "/" (root's).
func otherOwned(t *testing.T) (dir, owner string) {
	t.Helper()
	if os.Geteuid() != 0 {
		return "/", "root"
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Fatalf("running as root, the test needs the user nobody: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dir = filepath.Join(t.TempDir(), "theirs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	return dir, "nobody"
}

// TestDirNotPrivateRefused: a -dir (or its bin/) owned by another user or
// writable by group or others is refused before anything starts, naming
// the path, its owner and mode, and what is accepted; nothing is written.
func TestDirNotPrivateRefused(t *testing.T) {
	me := userName(os.Geteuid())
	accepted := "want a directory owned by you (" + me + "), writable by no one else"

	theirs, owner := otherOwned(t)
	msg := refusedBeforeStart(t, "-dir", theirs)
	wantAll(t, "-dir owned by "+owner, msg, theirs, "owned by "+owner, accepted)

	shared := filepath.Join(t.TempDir(), "shared")
	if err := os.Mkdir(shared, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o770); err != nil {
		t.Fatal(err)
	}
	msg = refusedBeforeStart(t, "-dir", shared)
	wantAll(t, "group-writable -dir", msg, shared, "mode drwxrwx---", accepted)
	if err := os.Chmod(shared, 0o707); err != nil {
		t.Fatal(err)
	}
	msg = refusedBeforeStart(t, "-dir", shared)
	wantAll(t, "world-writable -dir", msg, shared, "mode drwx---rwx", accepted)

	// bin/ inside a private -dir: group-writable, then another user's.
	private := t.TempDir()
	bin := filepath.Join(private, binDir)
	if err := os.Mkdir(bin, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(bin, 0o775); err != nil {
		t.Fatal(err)
	}
	msg = refusedBeforeStart(t, "-dir", private)
	wantAll(t, "group-writable bin/", msg, bin, "mode drwxrwxr-x", accepted)
	if os.Geteuid() == 0 {
		if err := os.Chmod(bin, 0o755); err != nil {
			t.Fatal(err)
		}
		u, _ := user.Lookup("nobody")
		uid, _ := strconv.Atoi(u.Uid)
		if err := os.Chown(bin, uid, -1); err != nil {
			t.Fatal(err)
		}
		msg = refusedBeforeStart(t, "-dir", private)
		wantAll(t, "bin/ owned by nobody", msg, bin, "owned by nobody", accepted)
	}

	// A -dir that is a symbolic link (to a private dir) is refused too:
	// whoever owns the link could point it elsewhere after the check.
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(t.TempDir(), link); err != nil {
		t.Fatal(err)
	}
	msg = refusedBeforeStart(t, "-dir", link)
	wantAll(t, "-dir symlink", msg, link, "symbolic link")

	// Nothing was written into any of them ("/" has entries of its own).
	dirs := []string{shared, private, bin}
	if theirs != "/" {
		dirs = append(dirs, theirs)
	}
	for _, d := range dirs {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			if d == private && e.Name() == binDir {
				continue
			}
			t.Errorf("%s: %s written although refused", d, e.Name())
		}
	}
}

// TestDirExistingFilesRefused: a file (or symlink) already at one of the
// names the command writes makes it refuse to start, naming it; the file,
// the link and the link's target are left as they were.
func TestDirExistingFilesRefused(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(target, []byte("private"), 0o600); err != nil {
		t.Fatal(err)
	}
	envSh := filepath.Join(dir, envFile)
	if err := os.Symlink(target, envSh); err != nil {
		t.Fatal(err)
	}
	msg := refusedBeforeStart(t, "-dir", dir)
	wantAll(t, "symlink at env.sh", msg, envSh, "already exists")
	if fi, err := os.Lstat(envSh); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("env.sh symlink: %v, %v; want it left in place", fi, err)
	}
	if b, err := os.ReadFile(target); err != nil || string(b) != "private" {
		t.Errorf("symlink target: %q, %v; want untouched", b, err)
	}
	if fi, err := os.Stat(target); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("symlink target mode: %v, %v; want 0600", fi, err)
	}
	if err := os.Remove(envSh); err != nil {
		t.Fatal(err)
	}

	for _, name := range []string{identitiesFile, caFile, filepath.Join(binDir, "az")} {
		t.Run(strings.ReplaceAll(name, "/", "_"), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, name)
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte("mine"), 0o600); err != nil {
				t.Fatal(err)
			}
			msg := refusedBeforeStart(t, "-dir", dir)
			wantAll(t, name, msg, path, "already exists")
			if b, err := os.ReadFile(path); err != nil || string(b) != "mine" {
				t.Errorf("%s: %q, %v; want it left as it was", path, b, err)
			}
		})
	}
}

// TestWriteExclusive: the command creates its files exclusively and does
// not follow a symlink planted at a name after the start-up checks.
func TestWriteExclusive(t *testing.T) {
	dir := t.TempDir()
	inst := &instance{}
	if err := inst.makeDir(dir); err != nil {
		t.Fatal(err)
	}
	defer inst.Close()
	target := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(target, []byte("private"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, envFile)); err != nil {
		t.Fatal(err)
	}
	err := inst.write(envFile, []byte("export X=1\n"), 0o644)
	if err == nil || !errors.Is(err, os.ErrExist) {
		t.Errorf("write through a planted symlink: %v; want an exists error", err)
	}
	if b, _ := os.ReadFile(target); string(b) != "private" {
		t.Errorf("symlink target now %q; want untouched", b)
	}
	if fi, _ := os.Stat(target); fi.Mode().Perm() != 0o600 {
		t.Errorf("symlink target mode now %v; want 0600", fi.Mode())
	}
	// A plain file the command did not write is not overwritten either.
	other := filepath.Join(dir, identitiesFile)
	if err := os.WriteFile(other, []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := inst.write(identitiesFile, []byte("[]"), 0o644); err == nil {
		t.Errorf("write over an existing %s: no error", identitiesFile)
	}
	if b, _ := os.ReadFile(other); string(b) != "mine" {
		t.Errorf("%s now %q; want untouched", other, b)
	}
}

// TestCloseExistingDir: in a -dir that existed, Close removes only the
// files the command wrote (and bin/ when it created it), not the dir, what
// was there before, or a file the user put in place of one of its own.
func TestCloseExistingDir(t *testing.T) {
	dir := t.TempDir()
	notes := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notes, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	inst := &instance{}
	if err := inst.makeDir(dir); err != nil {
		t.Fatalf("makeDir: %v", err)
	}
	for _, name := range []string{envFile, identitiesFile, caFile, filepath.Join(binDir, "az")} {
		if err := inst.write(name, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The user replaces ca.pem with a file of their own while it runs.
	ca := filepath.Join(dir, caFile)
	if err := os.Remove(ca); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ca, []byte("users own"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := inst.Close(); err != nil {
		t.Fatal(err)
	}
	left, _ := os.ReadDir(dir)
	var names []string
	for _, e := range left {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "ca.pem,notes.txt" {
		t.Errorf("left in -dir: %v, want [ca.pem notes.txt] (the user's)", names)
	}
	if b, _ := os.ReadFile(ca); string(b) != "users own" {
		t.Errorf("the user's ca.pem now %q", b)
	}
}

// TestCloseCreatedDirKeepsForeignFiles: a -dir the command created is
// removed at exit only when it holds nothing but the command's files.
func TestCloseCreatedDirKeepsForeignFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "emu")
	inst := &instance{}
	if err := inst.makeDir(dir); err != nil {
		t.Fatal(err)
	}
	if err := inst.write(envFile, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	mine := filepath.Join(dir, "results.csv")
	if err := os.WriteFile(mine, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = inst.Close() // may say it left the dir
	if b, err := os.ReadFile(mine); err != nil || string(b) != "keep" {
		t.Errorf("the user's file in the created -dir: %q, %v; want kept", b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, envFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("env.sh left behind: %v", err)
	}
}

// TestReplaceRotates: a file the command created is replaced (the projected
// token's rotation) and still removed at exit; one the user swapped in is
// neither replaced nor removed.
func TestReplaceRotates(t *testing.T) {
	dir := t.TempDir()
	inst := &instance{}
	if err := inst.makeDir(dir); err != nil {
		t.Fatal(err)
	}
	const rel, tmp = "workload-api.token", ".workload-api.token.new"
	if err := inst.write(rel, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := inst.replace(rel, tmp, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, rel)
	if b, _ := os.ReadFile(path); string(b) != "two" {
		t.Errorf("after rotation: %q, want two", b)
	}
	if _, err := os.Lstat(filepath.Join(dir, tmp)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temp file left: %v", err)
	}
	// The user puts their own file there: no more rotation, and it stays.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("the user's"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := inst.replace(rel, tmp, []byte("three"), 0o600); err == nil {
		t.Error("rotating over the user's file: no error")
	}
	if err := inst.Close(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "the user's" {
		t.Errorf("the user's file now %q", b)
	}
	if _, err := os.Lstat(filepath.Join(dir, binDir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("bin/ left: %v", err)
	}
}
