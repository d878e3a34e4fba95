package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
)

// The command's directory holds code (bin/az, bin/azd) and a file people
// source (env.sh), so another local user must not be able to plant or swap
// anything in it. The rules:
//
//   - the dir and its bin/ must be owned by this user and writable by no one
//     else, and the dir must not be a symbolic link (whoever owns the link
//     could point it elsewhere after the check);
//   - the dir is opened once (os.Root) and every file is created through
//     it exclusively: openat with O_CREAT|O_EXCL|O_NOFOLLOW, so a symlink or
//     file planted at a name is never followed or overwritten;
//   - any of its names already present makes it refuse to start;
//   - at exit it removes only what it created, recognised by identity
//     (os.SameFile): a file the user put in place of one of its own, or
//     added to a dir it created, stays.

// madeFile is something the command created, relative to its dir.
type madeFile struct {
	rel string
	fi  os.FileInfo
}

// makeDir creates (or adopts) the directory the files go to, checks it and
// its bin/, and opens it.
func (inst *instance) makeDir(dir string) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "pgentra-emulator-") // 0700
		if err != nil {
			return fmt.Errorf("creating a temp dir: %w", err)
		}
		inst.dir = d
		if inst.ownDir, err = os.Lstat(d); err != nil {
			return fmt.Errorf("-dir %s: %w", d, err)
		}
	} else {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return fmt.Errorf("-dir %q: %w", dir, err)
		}
		inst.dir = abs
		err = os.Mkdir(abs, 0o700)
		if errors.Is(err, os.ErrNotExist) {
			if err = os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
				return fmt.Errorf("-dir %s: creating its parent: %w", abs, err)
			}
			err = os.Mkdir(abs, 0o700)
		}
		switch {
		case err == nil:
			if inst.ownDir, err = os.Lstat(abs); err != nil {
				return fmt.Errorf("-dir %s: %w", abs, err)
			}
		case !errors.Is(err, os.ErrExist):
			return fmt.Errorf("-dir %s: %w", abs, err)
		}
	}

	fi, err := os.Lstat(inst.dir)
	switch {
	case err != nil:
		return fmt.Errorf("-dir %s: %w", inst.dir, err)
	case fi.Mode()&os.ModeSymlink != 0:
		return fmt.Errorf("-dir %s is a symbolic link: give the directory itself (whoever owns the link could point it elsewhere once checked)", inst.dir)
	case !fi.IsDir():
		return fmt.Errorf("-dir %s is not a directory (it is %s): want a directory of your own, e.g. -dir \"$(mktemp -d)\"", inst.dir, fi.Mode().Type())
	}
	root, err := os.OpenRoot(inst.dir)
	if err != nil {
		return fmt.Errorf("-dir %s: %w", inst.dir, err)
	}
	inst.root = root
	opened, err := root.Stat(".")
	if err != nil {
		return fmt.Errorf("-dir %s: %w", inst.dir, err)
	}
	if !os.SameFile(fi, opened) {
		return fmt.Errorf("-dir %s was replaced while being opened", inst.dir)
	}
	if err := checkPrivate("-dir", inst.dir, opened); err != nil {
		return err
	}

	binPath := filepath.Join(inst.dir, binDir)
	switch err := root.Mkdir(binDir, 0o700); {
	case err == nil:
		bfi, err := root.Lstat(binDir)
		if err != nil {
			return fmt.Errorf("%s: %w", binPath, err)
		}
		inst.made = append(inst.made, madeFile{binDir, bfi})
	case !errors.Is(err, os.ErrExist):
		return fmt.Errorf("creating %s: %w", binPath, err)
	}
	bfi, err := root.Lstat(binDir)
	switch {
	case err != nil:
		return fmt.Errorf("%s: %w", binPath, err)
	case !bfi.IsDir(): // a symlink too
		return fmt.Errorf("%s is not a directory (it is %s): move it away; the emulator creates bin/ itself", binPath, bfi.Mode().Type())
	}
	return checkPrivate("its bin/", binPath, bfi)
}

// checkPrivate refuses a directory owned by someone else or writable by
// group or others.
func checkPrivate(what, path string, fi os.FileInfo) error {
	me := os.Geteuid()
	uid, known := fileOwner(fi)
	if (known && uid != me) || fi.Mode().Perm()&0o022 != 0 {
		owner := "?"
		if known {
			owner = userName(uid)
		}
		return fmt.Errorf("%s %s is owned by %s with mode %s: want a directory owned by you (%s), writable by no one else: chmod go-w it, or use a new one, e.g. -dir \"$(mktemp -d)\"",
			what, path, owner, fi.Mode(), userName(me))
	}
	return nil
}

// userName is uid's login name, or the number.
func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return "uid " + strconv.Itoa(uid)
}

// refuseExisting fails if any of names (relative to the dir) exists, as a
// file, directory or symlink, dangling or not.
func (inst *instance) refuseExisting(names []string) error {
	for _, name := range names {
		switch _, err := inst.root.Lstat(name); {
		case err == nil:
			return fmt.Errorf("%s already exists: the emulator writes only files it creates and removes only those; move it away, or use a new -dir", filepath.Join(inst.dir, name))
		case !errors.Is(err, os.ErrNotExist):
			return fmt.Errorf("checking %s: %w", filepath.Join(inst.dir, name), err)
		}
	}
	return nil
}

// write creates one of the command's files (relative to the dir): never
// through a symlink, never over an existing file.
func (inst *instance) write(rel string, data []byte, perm os.FileMode) error {
	path := filepath.Join(inst.dir, rel)
	// os.Root opens with O_NOFOLLOW on top of these flags.
	f, err := inst.root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("creating %s: it appeared after the start-up checks; the emulator writes only files it creates: %w", path, err)
		}
		return fmt.Errorf("creating %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		_ = inst.root.Remove(rel)
		return fmt.Errorf("creating %s: %w", path, err)
	}
	inst.mu.Lock()
	inst.made = append(inst.made, madeFile{rel, fi})
	inst.mu.Unlock()
	_, werr := f.Write(data)
	if werr == nil {
		// As written: size and mtime tell it from a file put in its place
		// later under a recycled inode number.
		if after, err := f.Stat(); err == nil {
			inst.mu.Lock()
			for i := len(inst.made) - 1; i >= 0; i-- {
				if inst.made[i].rel == rel {
					inst.made[i].fi = after
					break
				}
			}
			inst.mu.Unlock()
		}
	}
	if err := errors.Join(werr, f.Close()); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// sameFile reports whether cur is still the file made (same inode, and for
// files also the same size and mtime: inode numbers are reused at once).
func sameFile(made, cur os.FileInfo) bool {
	return os.SameFile(made, cur) && (made.IsDir() || made.Size() == cur.Size() && made.ModTime().Equal(cur.ModTime()))
}

// replace swaps the content of a file the command created (rel) for data:
// written to tmp first, then renamed over rel, as the kubelet rotates a
// projected token. A file that is no longer the command's is left alone.
func (inst *instance) replace(rel, tmp string, data []byte, perm os.FileMode) error {
	path := filepath.Join(inst.dir, rel)
	if !inst.isMine(rel) {
		return fmt.Errorf("not rotating %s: it is no longer the file the emulator wrote", path)
	}
	if err := inst.write(tmp, data, perm); err != nil {
		inst.forget(tmp)
		_ = inst.root.Remove(tmp)
		return err
	}
	if err := inst.root.Rename(tmp, rel); err != nil {
		return fmt.Errorf("replacing %s: %w", path, err)
	}
	inst.mu.Lock()
	defer inst.mu.Unlock()
	for i := range inst.made {
		if inst.made[i].rel == tmp {
			inst.made[i].rel = rel
		}
	}
	// The old entry for rel now names a file that is gone.
	for i := range inst.made {
		if inst.made[i].rel == rel {
			inst.made = append(inst.made[:i], inst.made[i+1:]...)
			break
		}
	}
	return nil
}

// isMine reports whether rel is still the file the command created there.
func (inst *instance) isMine(rel string) bool {
	inst.mu.Lock()
	defer inst.mu.Unlock()
	cur, err := inst.root.Lstat(rel)
	if err != nil {
		return false
	}
	for i := len(inst.made) - 1; i >= 0; i-- {
		if inst.made[i].rel == rel {
			return sameFile(inst.made[i].fi, cur)
		}
	}
	return false
}

// forget drops rel from the files to remove.
func (inst *instance) forget(rel string) {
	inst.mu.Lock()
	defer inst.mu.Unlock()
	for i := range inst.made {
		if inst.made[i].rel == rel {
			inst.made = append(inst.made[:i], inst.made[i+1:]...)
			return
		}
	}
}

// removeMade removes what the command created, newest first, and the dir
// when it created that; what it did not create stays and is named on warn.
func (inst *instance) removeMade(warn io.Writer) error {
	var errs []error
	var left []string
	if inst.root != nil {
		inst.mu.Lock()
		made := inst.made
		inst.made = nil
		inst.mu.Unlock()
		for i := len(made) - 1; i >= 0; i-- {
			m := made[i]
			path := filepath.Join(inst.dir, m.rel)
			cur, err := inst.root.Lstat(m.rel)
			switch {
			case errors.Is(err, os.ErrNotExist):
				continue
			case err != nil:
				errs = append(errs, err)
				continue
			case !sameFile(m.fi, cur):
				left = append(left, path+" (not the file the emulator wrote)")
				continue
			}
			if m.fi.IsDir() {
				if n := entries(inst.root, m.rel); n > 0 {
					left = append(left, path+" (holds files the emulator did not write)")
					continue
				}
			}
			if err := inst.root.Remove(m.rel); err != nil {
				errs = append(errs, fmt.Errorf("removing %s: %w", path, err))
			}
		}
		errs = append(errs, inst.root.Close())
		inst.root = nil
	}
	if inst.ownDir != nil {
		cur, err := os.Lstat(inst.dir)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			errs = append(errs, err)
		case !os.SameFile(cur, inst.ownDir):
			left = append(left, inst.dir+" (not the directory the emulator created)")
		default:
			if des, err := os.ReadDir(inst.dir); err == nil && len(des) > 0 {
				left = append(left, inst.dir+" (holds files the emulator did not write)")
			} else if err := os.Remove(inst.dir); err != nil {
				errs = append(errs, fmt.Errorf("removing %s: %w", inst.dir, err))
			}
		}
		inst.ownDir = nil
	}
	if len(left) > 0 && warn != nil {
		fmt.Fprintf(warn, "emulator: left in place: %s\n", strings.Join(left, "; "))
	}
	return errors.Join(errs...)
}

// entries counts the entries of the directory rel in root (0 on error).
func entries(root *os.Root, rel string) int {
	d, err := root.Open(rel)
	if err != nil {
		return 0
	}
	defer d.Close()
	names, _ := d.Readdirnames(1)
	return len(names)
}
