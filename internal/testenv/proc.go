package testenv

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Proc is a background process of a test (a worker, fake-llm, a Python
// worker) whose output goes to a log file. The test's cleanup stops it
// with SIGTERM, fails the test if it exits badly, logs a data race or a
// panic, and prints its log when the test failed.
type Proc struct {
	Name    string
	Cmd     *exec.Cmd
	LogPath string

	t       testing.TB
	done    chan struct{}
	exitErr error // set before done is closed
	stopped sync.Once
	killed  bool // by Kill: a non-zero exit is expected
}

// StartProc starts argv in dir with environ.
func StartProc(t testing.TB, name, dir string, environ []string, argv ...string) *Proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir, cmd.Env = dir, environ
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &Proc{Name: name, Cmd: cmd, LogPath: logPath, t: t, done: make(chan struct{})}
	go func() {
		p.exitErr = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		if err := p.Stop(60 * time.Second); err != nil && !p.killed {
			t.Errorf("%s exited with %v", p.Name, err)
		}
		if log := p.Log(); strings.Contains(log, "WARNING: DATA RACE") || strings.Contains(log, "panic: ") {
			t.Errorf("%s logged a data race or a panic", p.Name)
		}
		if t.Failed() {
			t.Logf("---- log of %s (%s) ----\n%s---- end of %s ----", p.Name, strings.Join(argv, " "), p.Log(), p.Name)
		}
	})
	return p
}

// Stop sends SIGTERM (a warm shutdown) and waits for the process to exit;
// after timeout it is killed and the test fails. It returns the exit error
// (nil for exit status 0).
func (p *Proc) Stop(timeout time.Duration) error {
	p.Signal(syscall.SIGTERM)
	return p.Wait(timeout)
}

// Wait waits for the process to exit (after signals sent with Signal);
// after timeout it is killed and the test fails.
func (p *Proc) Wait(timeout time.Duration) error {
	p.stopped.Do(func() {
		select {
		case <-p.done:
		case <-time.After(timeout):
			p.t.Errorf("%s did not exit within %s; killing it", p.Name, timeout)
			_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	})
	<-p.done
	return p.exitErr
}

// Signal sends sig without waiting (e.g. a second SIGTERM: cold shutdown).
func (p *Proc) Signal(sig syscall.Signal) {
	if !p.Exited() {
		_ = p.Cmd.Process.Signal(sig)
	}
}

// Kill SIGKILLs the process group (a crash) and waits for it.
func (p *Proc) Kill() {
	p.stopped.Do(func() {
		p.killed = true
		_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	})
	<-p.done
}

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Log returns what the process has written so far.
func (p *Proc) Log() string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)\n", err)
	}
	return string(b)
}

// WaitLog waits until a line of the log contains s and returns that line;
// it fails the test if the process exits first or after timeout.
func (p *Proc) WaitLog(t testing.TB, s string, timeout time.Duration) string {
	t.Helper()
	var line string
	WaitFor(t, timeout, fmt.Sprintf("%q in the log of %s", s, p.Name), func() bool {
		exited := p.Exited() // before reading: a last line is not missed
		sc := bufio.NewScanner(strings.NewReader(p.Log()))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if strings.Contains(sc.Text(), s) {
				line = sc.Text()
				return true
			}
		}
		if exited {
			t.Fatalf("%s exited (%v) before logging %q:\n%s", p.Name, p.exitErr, s, p.Log())
		}
		return false
	})
	return line
}

// WaitFor polls until cond holds, failing the test after timeout.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// MainWithQagen is the TestMain of packages that run the qagen binary: it
// builds ./cmd/qagen into a temporary directory (with the race detector
// when race is set), sets -test.parallel to parallel unless given (such
// tests mostly wait for processes), runs the tests and returns the exit
// code. setup receives the binary and the module root.
func MainWithQagen(m *testing.M, name string, parallel int, race bool, setup func(bin, root string)) int {
	flag.Parse()
	parallelSet := false
	flag.Visit(func(f *flag.Flag) { parallelSet = parallelSet || f.Name == "test.parallel" })
	if !parallelSet {
		_ = flag.Set("test.parallel", fmt.Sprint(parallel))
	}
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		return 1
	}
	root := filepath.Clean(filepath.Join(wd, "..", ".."))
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		fmt.Fprintf(os.Stderr, "%s: module root not found from %s: %v\n", name, wd, err)
		return 1
	}
	tmp, err := os.MkdirTemp("", "qagen-"+name+"-")
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "qagen")
	args := []string{"build", "-o", bin}
	if race {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "./cmd/qagen")...)
	build.Dir = root
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "%s: go build ./cmd/qagen: %v\n", name, err)
		return 1
	}
	setup(bin, root)
	return m.Run()
}
