//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// stopWithGoRun asks the kernel for SIGTERM when this process's parent
// dies, if that parent is `go run`: go run forwards no signal to the
// program it runs, so `kill $!` of go run would leave the emulator and its
// PostgreSQL running. A built binary keeps a life of its own (nohup, a
// supervisor). The signal takes the same path as a SIGTERM sent by hand.
func stopWithGoRun() error {
	ppid := os.Getppid()
	comm, _ := os.ReadFile("/proc/" + strconv.Itoa(ppid) + "/comm")
	// go run's parent is the go command (possibly renamed, go1.26…), and
	// the program it runs lives in its temp build dir, …/go-build…/…/exe/.
	exe, _ := os.Executable()
	built := strings.Contains(exe, "/go-build") && filepath.Base(filepath.Dir(exe)) == "exe"
	if name := strings.TrimSpace(string(comm)); name != "go" && !(built && strings.HasPrefix(name, "go")) {
		return nil
	}
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0); errno != 0 {
		return fmt.Errorf("asking to stop with go run (prctl PR_SET_PDEATHSIG): %w", errno)
	}
	// go run may have died before the prctl, which then never fires.
	if os.Getppid() != ppid {
		return syscall.Kill(os.Getpid(), syscall.SIGTERM)
	}
	return nil
}
