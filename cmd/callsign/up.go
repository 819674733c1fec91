package main

import (
	"context"
	"fmt"
	"github.com/spf13/pflag"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/node"
	"github.com/callsign/callsign/web"
)

// listFlag is a comma-separated, repeatable flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Type() string   { return "list" }
func (l *listFlag) Set(s string) error {
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*l = append(*l, part)
		}
	}
	return nil
}

func upCommand() *command {
	var (
		listen, bootstrap, announce   listFlag
		mailboxes                     listFlag
		apiAddr, logLevel             string
		metricsAddr                   string
		turnListen, turnIP, turnPorts string
		turnTCP, turnTLS              string
		turnCert, turnKey             string
		public                        bool
		directAll                     bool
		join, bootFile, community     string
		restore                       string
		link, deviceName              string
		noMDNS                        bool
		fileLimitMiB                  int64
	)
	return &command{
		name:    "up",
		summary: "run a node with embedded defaults (the first run creates your identity)",
		flags: func(fs *pflag.FlagSet) {
			fs.Var(&listen, "listen", "listen for libp2p on `ADDRS`, comma-separated multiaddrs (default: all interfaces, ports kept across restarts; 4141 for --public)")
			fs.StringVar(&apiAddr, "api", "", "serve the local API and web app on `ADDR`, loopback only (default "+node.DefaultAPIAddr+"; 127.0.0.1:0 picks a free port)")
			fs.Var(&bootstrap, "bootstrap", "join through the nodes at `ADDRS`, comma-separated multiaddrs ending in /p2p/<peer>; remembered")
			fs.StringVar(&join, "join", "", "join the network through the community node of `INVITE` (from `callsign invite` on that node); remembered")
			fs.StringVar(&bootFile, "bootstrap-file", "", "read the community nodes to join through from `FILE`, one invite or multiaddr a line (default: bootstrap.txt in the data directory and next to the binary, if there)")
			fs.BoolVar(&noMDNS, "no-mdns", false, "don't look for nodes on the local network, nor announce this one there (mDNS)")
			fs.BoolVar(&public, "public", false, "run a community node: DHT server, relay and mailbox for others")
			fs.BoolVar(&directAll, "direct-from-everyone", false, "let anyone connect to this node directly and announce its IP address to everyone (default: strangers see only relay addresses; contacts learn the direct ones)")
			fs.Var(&mailboxes, "mailbox", "keep messages for this node while it is offline at the community nodes `ADDRS` (comma-separated multiaddrs ending in /p2p/<peer>; default: the first two nodes it joins through)")
			fs.StringVar(&community, "community", "", "with --public: the community's `NAME`, shown in the invite")
			fs.Var(&announce, "announce", "with --public: announce `ADDRS` (comma-separated) instead of the observed addresses")
			fs.StringVar(&turnListen, "turn-listen", "", "with --public: the TURN relay for calls listens on UDP `ADDR` (default 0.0.0.0:3478)")
			fs.StringVar(&turnIP, "turn-relay-ip", "", "with --public: the `IP` the TURN relay announces (default: from --announce or the host's addresses)")
			fs.StringVar(&turnPorts, "turn-ports", "", "with --public: relay media on the UDP ports `MIN-MAX` (default any)")
			fs.StringVar(&turnTCP, "turn-tcp", "", "with --public: TURN over TCP listens on `ADDR`, or off (default: the --turn-listen address)")
			fs.StringVar(&turnTLS, "turn-tls", "", "with --public: TURN over TLS listens on `ADDR`, or off (default: port 443 where the node may bind it, else 5349)")
			fs.StringVar(&turnCert, "turn-tls-cert", "", "with --public: the TLS certificate chain of TURN over TLS, PEM `FILE` (default: a self-signed one in the data directory, which members pin)")
			fs.StringVar(&turnKey, "turn-tls-key", "", "with --public and --turn-tls-cert: its private key, PEM `FILE`")
			fs.StringVar(&metricsAddr, "metrics", "", "also serve Prometheus metrics at http://`ADDR`/metrics, without the API's token (the API serves them with it)")
			fs.StringVar(&restore, "restore", "", "first bring your account back from the backup `FILE` (`callsign backup create`) into a new data directory, as a new device; the passphrase is asked for, or read from $"+backupPassEnv)
			fs.StringVar(&link, "link", "", "first make this a new device of your account: `CODE` is what `callsign devices link` shows on a device of it (use a new --data directory)")
			fs.StringVar(&deviceName, "name", "", "with --link: what this device is called in your list of devices (default: the host name)")
			fs.StringVar(&logLevel, "log-level", "info", "log at `LEVEL`: debug, info, warn or error")
			fs.Int64Var(&fileLimitMiB, "file-limit", node.DefaultFileLimit>>20, "send and fetch files of at most `MIB` mebibytes (1 to 4096)")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if err := needArgs(args, 0, "no arguments"); err != nil {
				return err
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return usageError{msg: fmt.Sprintf("bad --log-level %q", logLevel), hint: "use debug, info, warn or error"}
			}
			if !public && (len(announce) > 0 || turnListen != "" || turnIP != "" || turnPorts != "" || community != "" ||
				turnTCP != "" || turnTLS != "" || turnCert != "" || turnKey != "") {
				return usageError{msg: "--announce, --community and --turn-* need --public"}
			}
			if link != "" && restore != "" {
				return usageError{msg: "--link and --restore go separately", hint: "--link joins a running device of your account; --restore brings it back from a backup"}
			}
			if deviceName != "" && link == "" {
				return usageError{msg: "--name needs --link"}
			}
			if (turnCert == "") != (turnKey == "") {
				return usageError{msg: "--turn-tls-cert and --turn-tls-key go together"}
			}
			bootFiles, err := bootstrapFiles(e.data, bootFile)
			if err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
			node.RouteLibraryLogs(log.With("component", "libp2p"), level <= slog.LevelDebug)
			var pass []byte
			if p, ok := os.LookupEnv("CALLSIGN_PASSPHRASE"); ok && p != "" {
				pass = []byte(p)
			}
			if restore != "" {
				bpass, err := backupPassphrase(e, false)
				if err != nil {
					return err
				}
				r, err := node.RestoreBackup(ctx, e.data, pass, restore, []byte(bpass))
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stderr, "restored account %s from %s (%d items) as a new device of it\n", r.Account, restore, r.Items)
			}
			cfg := node.Config{
				DataDir: e.data, Passphrase: pass, Listen: listen, APIAddr: apiAddr,
				Bootstrap: bootstrap, Join: join, BootstrapFiles: bootFiles,
				MDNS: !noMDNS && !loopbackOnly(listen), Public: public, Community: community, Announce: announce,
				TURNListen: turnListen, TURNRelayIP: turnIP, TURNPorts: turnPorts,
				TURNTCP: turnTCP, TURNTLS: turnTLS, TURNTLSCert: turnCert, TURNTLSKey: turnKey,
				Web: web.FS(), Logger: log, DirectFromEveryone: directAll,
				Mailboxes: mailboxes, MetricsAddr: metricsAddr, FileLimit: fileLimitMiB << 20,
			}
			if fileLimitMiB < 1 || fileLimitMiB > node.MaxFileLimit>>20 {
				return usageError{msg: fmt.Sprintf("--file-limit %d: pick 1 to %d MiB", fileLimitMiB, node.MaxFileLimit>>20)}
			}
			if link != "" {
				if err := linkDevice(ctx, e, cfg, link, deviceName); err != nil {
					return err
				}
			}
			// Run starts the node again after the web app restores a
			// backup onto it; each start prints the banner.
			if err := node.Run(ctx, cfg, func(n *node.Node) { printBanner(ctx, e, n) }); err != nil {
				return err
			}
			log.Info("shut down")
			return nil
		},
	}
}

// printBanner prints what `callsign up` shows once the node runs: its
// account, handle, addresses and the web app's one-time link.
func printBanner(ctx context.Context, e *env, n *node.Node) {
	id, err := n.ID(ctx)
	if err == nil {
		// The web app's address carries a one-time sign-in ticket,
		// never the token: this output may well end up in a log.
		fmt.Fprintf(e.stdout, "callsign node up\n  account  %s\n  handle   %s\n  api      %s\n  web app  %s\n  data     %s\n",
			id.Account, id.Handle, id.API, n.WebTicket().URL, e.data)
		for _, a := range id.Addrs {
			fmt.Fprintf(e.stdout, "  addr     %s\n", a)
		}
		if a := n.MetricsAddr(); a != "" {
			fmt.Fprintf(e.stdout, "  metrics  http://%s/metrics\n", a)
		}
		if st, err := n.Status(ctx); err == nil && st.Invite != nil && st.Invite.Own {
			fmt.Fprintf(e.stdout, "  invite   %s\n", st.Invite.Invite)
			if isTerminalWriter(e.stdout) {
				printInviteQR(e.stdout, st.Invite)
			}
		}
		fmt.Fprintf(e.stdout, "the web app link works once, within %d minutes; `callsign web` prints a new one\nstop with Ctrl-C\n", int(api.TicketTTL/time.Minute))
	}
}

// bootstrapFiles are the files a community ships listing its nodes: the
// one --bootstrap-file names (which must exist), else bootstrap.txt in the
// data directory and next to the binary, where present.
func bootstrapFiles(data, flagValue string) ([]string, error) {
	if flagValue != "" {
		if _, err := os.Stat(flagValue); err != nil {
			return nil, &hintError{msg: fmt.Sprintf("bootstrap file: %v", err), hint: "give the path of a file that lists one invite or multiaddr a line"}
		}
		return []string{flagValue}, nil
	}
	files := []string{filepath.Join(data, "bootstrap.txt")}
	if exe, err := os.Executable(); err == nil {
		files = append(files, filepath.Join(filepath.Dir(exe), "bootstrap.txt"))
	}
	return files, nil
}

// loopbackOnly reports whether every listen address is on loopback: such a
// node is kept off the local network, so it does not announce itself there
// by mDNS either (walkthroughs and tests on 127.0.0.1).
func loopbackOnly(listen []string) bool {
	if len(listen) == 0 {
		return false
	}
	for _, a := range listen {
		if !strings.HasPrefix(a, "/ip4/127.") && !strings.HasPrefix(a, "/ip6/::1/") {
			return false
		}
	}
	return true
}
