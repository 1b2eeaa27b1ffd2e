package leanauth_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	leanauth "github.com/leanauth/leanauth/clients/go"
)

// The integration harness: the stand-in Lean and brokerage APIs
// (tests/standin/standin.py) and the real leanauthd on ephemeral loopback
// ports, with canary secrets that must never reach leanauthd's log. Every
// wait has a deadline.

const (
	canaryAPIToken     = "CANARY-APITOKEN-go-41c2"
	canaryRefreshToken = "CANARY-REFRESH-go-9e07"
	canaryAccessPrefix = "CANARY-ACCESS-"
	canaryAny          = "CANARY-"
)

// leanauthdBin returns the daemon to test: $LEANAUTHD_BIN, else the build
// tree's.
func leanauthdBin() string {
	if p := os.Getenv("LEANAUTHD_BIN"); p != "" {
		return p
	}
	return "../../build/server/leanauthd"
}

var standinPy = filepath.Join("..", "..", "tests", "standin", "standin.py")

type env struct {
	t          *testing.T
	dir        string
	standin    *exec.Cmd
	leanURL    string
	brokerURL  string
	daemon     *exec.Cmd
	daemonDone chan error
	rpcURL     string
	eventsURL  string
	httpAddr   string
	logPath    string
	cfg        map[string]any
}

// integration skips under -short and otherwise fails (never skips) when
// leanauthd or python3 is missing.
func integration(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test (skipped with -short)")
	}
	bin := leanauthdBin()
	if st, err := os.Stat(bin); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		t.Fatalf("leanauthd not found at %s (set LEANAUTHD_BIN, build it with "+
			"`cmake --build build`, or run with -short to skip integration tests)", bin)
	}
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatal("python3 is needed for the stand-in (tests/standin/standin.py)")
	}
}

// newEnv starts the stand-in and builds the default config: one profile
// "schwab" (CharlesSchwab, account A1), 3 retries 50 ms apart, Send allowed
// under {brokerage}api/. Start leanauthd with e.start() after editing e.cfg.
func newEnv(t *testing.T) *env {
	t.Helper()
	integration(t)
	e := &env{t: t, dir: t.TempDir()}
	e.logPath = filepath.Join(e.dir, "leanauthd.log")
	t.Cleanup(e.teardown)
	e.startStandin()
	e.cfg = map[string]any{
		"listen":    map[string]any{"rpc": "tcp://127.0.0.1:0", "events": "tcp://127.0.0.1:0", "http": "127.0.0.1:0"},
		"workers":   4,
		"log_level": "debug",
		"lean_api": map[string]any{"url": e.leanURL, "user_id": "4242",
			"api_token": canaryAPIToken, "timeout_ms": 5000},
		"profiles": []any{map[string]any{
			"name": "schwab", "brokerage": "CharlesSchwab", "account_id": "A1",
			"refresh_token": canaryRefreshToken, "max_retry_count": 3, "retry_interval_ms": 50,
			"send": map[string]any{"allowed_urls": []any{e.brokerURL + "api/"},
				"timeout_ms": 5000, "max_body_bytes": 65536},
		}},
	}
	return e
}

func (e *env) profile(i int) map[string]any {
	return e.cfg["profiles"].([]any)[i].(map[string]any)
}

func (e *env) startStandin() {
	t := e.t
	errf, err := os.Create(filepath.Join(e.dir, "standin.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer errf.Close()
	cmd := exec.Command("python3", standinPy, "--user-id", "4242", "--api-token", canaryAPIToken,
		"--token-prefix", canaryAccessPrefix)
	cmd.Stderr = errf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start stand-in: %v", err)
	}
	e.standin = cmd
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(out).ReadString('\n')
		line <- s
		io.Copy(io.Discard, out)
	}()
	var ready struct {
		LeanURL   string `json:"lean_url"`
		BrokerURL string `json:"brokerage_url"`
	}
	select {
	case s := <-line:
		if err := json.Unmarshal([]byte(s), &ready); err != nil || ready.LeanURL == "" {
			t.Fatalf("stand-in ready line %q: %v", s, err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("stand-in did not report ready within 15s")
	}
	e.leanURL, e.brokerURL = ready.LeanURL, ready.BrokerURL
}

// start writes e.cfg and starts leanauthd; it returns once the "ready" log
// line names the bound addresses.
func (e *env) start() {
	t := e.t
	b, _ := json.MarshalIndent(e.cfg, "", "  ")
	cfgPath := filepath.Join(e.dir, "leanauthd.json")
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(e.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(leanauthdBin(), "--config", cfgPath)
	cmd.Stderr = logf
	cmd.Stdout = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start leanauthd: %v", err)
	}
	e.daemon = cmd
	e.daemonDone = make(chan error, 1)
	go func() { e.daemonDone <- cmd.Wait() }()
	until := time.Now().Add(15 * time.Second)
	for {
		if ready, ok := e.readyLine(); ok {
			e.rpcURL, e.eventsURL, e.httpAddr = ready.RPC, ready.Events, ready.HTTP
			return
		}
		select {
		case err := <-e.daemonDone:
			e.daemon = nil
			log, _ := os.ReadFile(e.logPath)
			t.Fatalf("leanauthd exited during startup (%v):\n%s", err, log)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(until) {
			t.Fatal("leanauthd did not log ready within 15s")
		}
	}
}

type readyLine struct {
	Msg    string `json:"msg"`
	RPC    string `json:"rpc"`
	Events string `json:"events"`
	HTTP   string `json:"http"`
}

func (e *env) readyLine() (readyLine, bool) {
	log, _ := os.ReadFile(e.logPath)
	for _, l := range strings.Split(string(log), "\n") {
		var r readyLine
		if json.Unmarshal([]byte(l), &r) == nil && r.Msg == "ready" && r.RPC != "" {
			return r, true
		}
	}
	return readyLine{}, false
}

// stopDaemon sends sig and waits up to d for leanauthd to exit.
func (e *env) stopDaemon(sig syscall.Signal, d time.Duration) error {
	if e.daemon == nil {
		return nil
	}
	e.daemon.Process.Signal(sig)
	select {
	case err := <-e.daemonDone:
		e.daemon = nil
		return err
	case <-time.After(d):
		return fmt.Errorf("leanauthd did not exit within %v", d)
	}
}

func (e *env) teardown() {
	if e.daemon != nil {
		e.daemon.Process.Kill()
		select {
		case <-e.daemonDone:
		case <-time.After(5 * time.Second):
		}
	}
	if e.standin != nil {
		e.standin.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { e.standin.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			e.standin.Process.Kill()
			<-done
		}
	}
	if log, err := os.ReadFile(e.logPath); err == nil && bytes.Contains(log, []byte(canaryAny)) {
		keep := filepath.Join(os.TempDir(), "leanauthd-canary-"+filepath.Base(e.dir)+".log")
		os.WriteFile(keep, log, 0o600)
		e.t.Errorf("a canary secret reached leanauthd's log (kept in %s)", keep)
	}
}

// client dials leanauthd (connected on return).
func (e *env) client(opts ...leanauth.Option) *leanauth.Client {
	e.t.Helper()
	c, err := leanauth.Dial(e.rpcURL, append([]leanauth.Option{
		leanauth.WithTimeout(10 * time.Second), leanauth.WithConnectTimeout(5 * time.Second)}, opts...)...)
	if err != nil {
		e.t.Fatalf("Dial: %v", err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// controlJSON calls a stand-in control endpoint (GET when body is nil).
func controlJSON(t *testing.T, base, path string, body any) map[string]any {
	t.Helper()
	cl := &http.Client{Timeout: 130 * time.Second, Transport: &http.Transport{Proxy: nil}}
	var resp *http.Response
	var err error
	if body == nil {
		resp, err = cl.Get(base + path)
	} else {
		b, _ := json.Marshal(body)
		resp, err = cl.Post(base+path, "application/json", bytes.NewReader(b))
	}
	if err != nil {
		t.Fatalf("stand-in %s: %v", path, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("stand-in %s: HTTP %d %v", path, resp.StatusCode, err)
	}
	return out
}

func (e *env) lean(path string, body any) map[string]any {
	return controlJSON(e.t, e.leanURL, path, body)
}

func (e *env) broker(path string, body any) map[string]any {
	return controlJSON(e.t, e.brokerURL, path, body)
}

func (e *env) leanStat(key string) int {
	e.t.Helper()
	v, ok := e.lean("_control/stats", nil)[key].(float64)
	if !ok {
		e.t.Fatalf("lean stats have no number %q", key)
	}
	return int(v)
}

func (e *env) brokerStat(key string) int {
	e.t.Helper()
	v, ok := e.broker("_control/stats", nil)[key].(float64)
	if !ok {
		e.t.Fatalf("brokerage stats have no number %q", key)
	}
	return int(v)
}

// plan sets account's plan and default mode on the Lean stand-in.
func (e *env) plan(account string, plan []string, dflt string) {
	if plan == nil {
		plan = []string{}
	}
	e.lean("_control/plan", map[string]any{"account_id": account, "plan": plan, "default": dflt})
}

// leanWait blocks (stand-in side) until query holds, e.g. "calls=3".
func (e *env) leanWait(query string, timeout time.Duration) bool {
	r := e.lean(fmt.Sprintf("_control/wait?%s&timeout_ms=%d", query, timeout.Milliseconds()), nil)
	return r["reached"] == true
}
