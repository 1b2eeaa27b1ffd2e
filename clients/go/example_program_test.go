package leanauth_test

import (
	"bufio"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	leanauth "github.com/leanauth/leanauth/clients/go"
)

// The example program, built and run end to end against leanauthd.

var (
	exampleOnce sync.Once
	exampleBin  string
	exampleErr  error
	exampleDir  string
)

func buildExample(t *testing.T) string {
	t.Helper()
	exampleOnce.Do(func() {
		dir, err := mkTemp()
		if err != nil {
			exampleErr = err
			return
		}
		exampleDir = dir
		exampleBin = filepath.Join(dir, "shutdown-on-auth-failure")
		out, err := exec.Command("go", "build", "-buildvcs=false", "-o", exampleBin, "./examples/shutdown-on-auth-failure").CombinedOutput()
		if err != nil {
			exampleErr = errors.New(string(out))
		}
	})
	if exampleErr != nil {
		t.Fatalf("go build example: %v", exampleErr)
	}
	return exampleBin
}

// program is a running example with its stdout lines on a channel.
type program struct {
	cmd   *exec.Cmd
	lines chan string
	done  chan error
	out   []string
}

func startExample(t *testing.T, e *env) *program {
	t.Helper()
	cmd := exec.Command(buildExample(t), "-rpc", e.rpcURL, "-events", e.eventsURL,
		"-profile", "schwab", "-every", "50ms")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &program{cmd: cmd, lines: make(chan string, 1000), done: make(chan error, 1)}
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			p.lines <- s.Text()
		}
		close(p.lines)
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
	})
	return p
}

// expect waits for a line containing want; it fails the test on timeout or
// if the program ends first.
func (p *program) expect(t *testing.T, want string, d time.Duration) string {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("program ended before %q; output:\n%s", want, strings.Join(p.out, "\n"))
			}
			p.out = append(p.out, l)
			if strings.Contains(l, canaryAny) {
				t.Fatalf("the example printed a secret: %s", l)
			}
			if strings.Contains(l, want) {
				return l
			}
		case <-timeout:
			t.Fatalf("no %q within %v; output:\n%s", want, d, strings.Join(p.out, "\n"))
		}
	}
}

// exit drains the output and returns the exit status. A program that does
// not exit in time gets SIGQUIT (a Go program then prints its goroutines),
// and the test fails with its output.
func (p *program) exit(t *testing.T, d time.Duration) int {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case l, ok := <-p.lines:
			if ok {
				p.out = append(p.out, l)
				continue
			}
			err := <-p.done
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return ee.ExitCode()
			}
			if err != nil {
				t.Fatal(err)
			}
			return 0
		case <-timeout:
			p.cmd.Process.Signal(syscall.SIGQUIT)
			quit := time.After(5 * time.Second)
		drain:
			for {
				select {
				case l, ok := <-p.lines:
					if !ok {
						break drain
					}
					p.out = append(p.out, l)
				case <-quit:
					break drain
				}
			}
			t.Fatalf("program did not exit within %v; output:\n%s", d, strings.Join(p.out, "\n"))
		}
	}
}

func TestExampleShutsDownOnAuthenticationFailed(t *testing.T) {
	e := newEnv(t)
	e.profile(0)["max_retry_count"] = 1
	e.start()
	p := startExample(t, e)
	p.expect(t, "ready", 20*time.Second)

	// Refresh until the example reports a TokenRefreshed: its subscription
	// is then live on leanauthd's side.
	c := e.client()
	live := false
	for i := 0; i < 50 && !live; i++ {
		if _, err := c.GetAccessToken(ctxTimeout(t, 5*time.Second), "", leanauth.ForceRefresh()); err != nil {
			t.Fatal(err)
		}
		timeout := time.After(100 * time.Millisecond)
	wait:
		for {
			select {
			case l := <-p.lines:
				p.out = append(p.out, l)
				if strings.Contains(l, "token refreshed") {
					live = true
					break wait
				}
			case <-timeout:
				break wait
			}
		}
	}
	if !live {
		t.Fatalf("the example saw no TokenRefreshed; output:\n%s", strings.Join(p.out, "\n"))
	}

	e.plan("A1", nil, "unauthorized")
	if _, err := c.GetAccessToken(ctxTimeout(t, 5*time.Second), "", leanauth.ForceRefresh()); !errors.Is(err, leanauth.ErrUnauthenticated) {
		t.Fatalf("forced refresh: %v", err)
	}
	l := p.expect(t, "authentication failed", 10*time.Second)
	for _, want := range []string{"profile schwab", "CharlesSchwab account A1", "after 2 attempts",
		"Invalid refresh token", "shutting down gracefully"} {
		if !strings.Contains(l, want) {
			t.Errorf("message %q lacks %q", l, want)
		}
	}
	if code := p.exit(t, 10*time.Second); code != 0 {
		t.Fatalf("exit status %d, want 0; output:\n%s", code, strings.Join(p.out, "\n"))
	}
}

func TestExampleShutsDownOnSIGTERM(t *testing.T) {
	e := newEnv(t)
	e.start()
	p := startExample(t, e)
	p.expect(t, "ready", 20*time.Second)
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.expect(t, "received a termination signal: shutting down gracefully", 10*time.Second)
	if code := p.exit(t, 10*time.Second); code != 0 {
		t.Fatalf("exit status %d, want 0", code)
	}
}
