package testenv

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// CaddyConfig is a Caddy process for StartCaddy to run.
type CaddyConfig struct {
	// Caddyfile is the config. Its admin endpoint must be Admin (or off).
	Caddyfile string
	// Admin is the host:port of the admin endpoint; "" for `admin off`,
	// which leaves Reload and CLI without a target.
	Admin string
	// Site is a host:port the config listens on; StartCaddy returns once it
	// accepts connections ("" waits for Admin only).
	Site string
	// Dir is the working directory, for relative paths in the config; ""
	// is the directory StartCaddy writes the Caddyfile to.
	Dir string
	// Env is added to the environment (after HOME and XDG_* pointing into
	// a scratch directory, which it may override).
	Env []string
	// Log is the path of Caddy's combined output; "" puts it next to the
	// Caddyfile.
	Log string
}

// Caddy is a running `caddy run` of the product's binary.
type Caddy struct {
	*Process
	// Admin is the host:port of the admin endpoint ("" when off).
	Admin string
	// ConfigDir holds the Caddyfile and the configs written by WriteConfig.
	ConfigDir string

	t   testing.TB
	bin string
	dir string
	env []string
}

// startTimeout bounds a start: a cold CI machine shared with other suites
// is slow.
const startTimeout = 60 * time.Second

// StartCaddy builds the product's Caddy once per test process, runs it on
// c.Caddyfile and waits until its admin endpoint and site answer. It is
// stopped, by its PID, when the test ends.
func StartCaddy(t testing.TB, c CaddyConfig) *Caddy {
	t.Helper()
	p, err := TryStartCaddy(t, c)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TryStartCaddy is StartCaddy returning an error when Caddy does not come
// up (a port taken meanwhile, say), so that a caller can retry on other
// ports; the process is stopped by then.
func TryStartCaddy(t testing.TB, c CaddyConfig) (*Caddy, error) {
	t.Helper()
	bin := CaddyBinary(t)
	tmp := t.TempDir()
	p := &Caddy{Admin: c.Admin, ConfigDir: tmp, t: t, bin: bin, dir: c.Dir}
	if p.dir == "" {
		p.dir = tmp
	}
	p.env = append([]string{
		"HOME=" + tmp,
		"XDG_DATA_HOME=" + filepath.Join(tmp, "data"),
		"XDG_CONFIG_HOME=" + filepath.Join(tmp, "config"),
	}, c.Env...)
	cfg := p.WriteConfig("Caddyfile", c.Caddyfile)
	log := c.Log
	if log == "" {
		log = filepath.Join(tmp, "caddy.log")
	}
	p.Process = Start(t, "caddy", log, p.dir, p.env, bin, "run", "--config", cfg, "--adapter", "caddyfile")
	if err := p.waitReady(c.Site); err != nil {
		p.Kill()
		return nil, fmt.Errorf("caddy did not start: %v\n%s", err, Indent(p.LogTail(40)))
	}
	return p, nil
}

// waitReady polls until the admin endpoint (if any) answers and site (if
// any) accepts connections.
func (p *Caddy) waitReady(site string) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(startTimeout)
	var last error
	for {
		if p.Exited() {
			return fmt.Errorf("it exited (code %d)", p.ExitCode())
		}
		if last = p.ready(client, site); last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %v", startTimeout, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *Caddy) ready(client *http.Client, site string) error {
	if p.Admin != "" {
		resp, err := client.Get("http://" + p.Admin + "/config/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("admin endpoint: %s", resp.Status)
		}
	}
	if site != "" {
		conn, err := net.DialTimeout("tcp", site, time.Second)
		if err != nil {
			return err
		}
		conn.Close()
	}
	return nil
}

// WriteConfig writes a file into ConfigDir and returns its path.
func (p *Caddy) WriteConfig(name, content string) string {
	p.t.Helper()
	path := filepath.Join(p.ConfigDir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		p.t.Fatal(err)
	}
	return path
}

// CLI runs a caddy subcommand (with this process's environment and
// working directory) and returns its combined output and duration.
func (p *Caddy) CLI(args ...string) (string, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.bin, args...)
	cmd.Dir = p.dir
	cmd.Env = append(os.Environ(), p.env...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	return string(out), time.Since(start), err
}

// Reload runs `caddy reload` with caddyfile against the admin endpoint,
// fails the test if it fails, and returns how long the command took.
func (p *Caddy) Reload(caddyfile string) time.Duration {
	p.t.Helper()
	out, took, err := p.TryReload(caddyfile)
	if err != nil {
		p.t.Fatalf("caddy reload: %v\n%s\n%s", err, out, Indent(p.LogTail(30)))
	}
	return took
}

// TryReload is Reload returning the command's output and error.
func (p *Caddy) TryReload(caddyfile string) (string, time.Duration, error) {
	path := p.WriteConfig(fmt.Sprintf("Caddyfile.reload.%d", time.Now().UnixNano()), caddyfile)
	return p.CLI("reload", "--config", path, "--adapter", "caddyfile", "--address", p.Admin)
}

// Stop runs `caddy stop` against the admin endpoint and fails the test if
// the command fails; it returns how long the command took.
func (p *Caddy) Stop() time.Duration {
	p.t.Helper()
	out, took, err := p.CLI("stop", "--address", p.Admin)
	if err != nil {
		p.t.Fatalf("caddy stop: %v\n%s", err, out)
	}
	return took
}

// AdminURL is the URL of path on the admin endpoint.
func (p *Caddy) AdminURL(path string) string { return "http://" + p.Admin + path }
