package main

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgentra/pgentra/internal/pgtest"
)

// childrenOf returns the pids whose parent is ppid (from /proc).
func childrenOf(ppid int) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so cut at the last ')'.
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) > 1 && fields[1] == strconv.Itoa(ppid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(fields) > 0 && fields[0] != "Z"
}

// TestGoRunSIGTERM: `go run ./emulator` stopped with SIGTERM to go run's own
// process (what `kill $!` does in a script) takes the emulator and its
// PostgreSQL down with it and removes its files. go run forwards no signal
// to the program it runs.
func TestGoRunSIGTERM(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the parent-death signal is Linux's")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go not on PATH: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "emu")
	errFile, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer errFile.Close()
	stderr := func() string { b, _ := os.ReadFile(errFile.Name()); return string(b) }
	cmd := exec.Command(goTool, "run", ".", "-dir", dir, "-v")
	cmd.Env = cleanEnv()
	// A file, not a buffer: the emulator keeps go run's stderr open, and
	// Wait must not wait for it.
	cmd.Stderr = errFile
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	goPid := cmd.Process.Pid
	emuPid := 0
	t.Cleanup(func() {
		// On failure, stop what is left: the emulator first (it stops its
		// PostgreSQL), then go run.
		if emuPid != 0 && alive(emuPid) {
			_ = syscall.Kill(emuPid, syscall.SIGTERM)
			for i := 0; i < 600 && alive(emuPid); i++ {
				time.Sleep(100 * time.Millisecond)
			}
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "ready" {
				ready <- true
				return
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			if strings.Contains(stderr(), pgtest.ErrNoPostgres.Error()) {
				unavailable(t, "no PostgreSQL server: %s", stderr())
			}
			t.Fatalf("go run ./emulator ended before ready:\n%s", stderr())
		}
	case <-time.After(4 * time.Minute): // go run compiles first
		t.Fatalf("go run ./emulator not ready after 4 min:\n%s", stderr())
	}
	kids := childrenOf(goPid)
	if len(kids) != 1 {
		t.Fatalf("go run (pid %d) has children %v; want the emulator alone", goPid, kids)
	}
	emuPid = kids[0]
	m := regexp.MustCompile(`socket (\S*pgentra-pg-\d+)`).FindStringSubmatch(stderr())
	if m == nil {
		t.Fatalf("no cluster dir in the -v log:\n%s", stderr())
	}
	clusterDir := m[1]
	if pids := processesUsing(clusterDir); len(pids) == 0 {
		t.Fatalf("no PostgreSQL process found for %s while running", clusterDir)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait() // go run itself dies of the signal
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) && (alive(emuPid) || len(processesUsing(clusterDir)) > 0) {
		time.Sleep(200 * time.Millisecond)
	}
	if alive(emuPid) {
		t.Errorf("the emulator (pid %d) still runs 90 s after go run got SIGTERM:\n%s", emuPid, stderr())
	}
	if pids := processesUsing(clusterDir); len(pids) > 0 {
		t.Errorf("its PostgreSQL still runs: pids %v", pids)
	}
	for _, d := range []string{dir, clusterDir} {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind (stat: %v)", d, err)
		}
	}
	if !strings.Contains(stderr(), "emulator: stopped") {
		t.Errorf("no 'stopped' line:\n%s", stderr())
	}
}
