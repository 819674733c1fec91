package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestTURNStatusProcess: the real binary as a public node shows its TURN
// relay in `status`: UDP, TCP and TLS URLs, the certificate pin members
// check, what is in use and the limits. --turn-* without --public is a
// usage error.
func TestTURNStatusProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("process test: builds and runs the binary")
	}
	dir := filepath.Join(t.TempDir(), "hub")
	up(t, dir, nil, append([]string{"--public"}, loopback...)...)
	out, errOut, code := cli(t, "status", "--data", dir)
	if code != 0 {
		t.Fatalf("status: exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"?transport=udp\n", "?transport=tcp\n", "turn           turns:127.0.0.1:",
		"turn tls pin   sha256 ", "turn in use    0 of 4096 allocations, 0 TCP/TLS connections\n",
		"turn limits    32 allocations per member device, 256 per IP; an unrefreshed allocation ends after 10m0s\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}

	_, errOut, code = cli(t, "up", "--data", filepath.Join(t.TempDir(), "x"), "--turn-tls", "off")
	if code == 0 || !strings.Contains(errOut, "need --public") {
		t.Errorf("--turn-tls without --public: exit %d, %q", code, errOut)
	}
}
