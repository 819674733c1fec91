package node

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"path/filepath"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/turn"
)

// TURN over TCP and TLS on a public node (turn's package doc). Members on
// networks that block UDP reach the relay over TCP, and where only the web
// gets through, over TLS on 443.
const (
	// turnOff disables the TCP or TLS listener (Config.TURNTCP, TURNTLS).
	turnOff = "off"
	// turnTLSPort is where TURN over TLS listens by default; 443 needs
	// the operator to allow it (root, CAP_NET_BIND_SERVICE, or a free
	// port), else turnTLSFallbackPort is used.
	turnTLSPort = "443"
	// turnCertFile keeps the self-signed certificate in the data
	// directory, so members' pins hold across restarts.
	turnCertFile = "turn-tls.pem"
)

// turnTLSFallbackPort is TURN over TLS's port when 443 can't be bound
// (the standard "turns" port; a variable so that a test can use port 0).
var turnTLSFallbackPort = "5349"

// turnStreams fills in the TCP and TLS listeners of a public node's relay
// config: on loopback for a node kept there, else TURNTCP (default: the
// UDP address's host and port) and TURNTLS (default: its host, port 443,
// falling back to 5349 when 443 can't be bound). It reports whether the
// TLS address is that default. The certificate is the operator's
// (TURNTLSCert and TURNTLSKey) or one kept in the data directory.
func (n *Node) turnStreams(cfg *turn.Config, loopback bool) (tlsDefault bool, err error) {
	host, port, err := net.SplitHostPort(cfg.ListenUDP)
	if cfg.ListenUDP == "" {
		host, port, err = net.SplitHostPort(turn.DefaultListenUDP)
	}
	if err != nil {
		return false, fmt.Errorf("TURN relay: %w", err)
	}
	switch {
	case n.cfg.TURNTCP == turnOff:
	case n.cfg.TURNTCP != "":
		cfg.ListenTCP = n.cfg.TURNTCP
	case loopback:
		cfg.ListenTCP = "127.0.0.1:0"
	default:
		cfg.ListenTCP = net.JoinHostPort(host, port)
	}
	switch {
	case n.cfg.TURNTLS == turnOff:
		return false, nil
	case n.cfg.TURNTLS != "":
		cfg.ListenTLS = n.cfg.TURNTLS
	case loopback:
		cfg.ListenTLS = "127.0.0.1:0"
	default:
		cfg.ListenTLS, tlsDefault = net.JoinHostPort(host, turnTLSPort), true
	}
	var cert tls.Certificate
	if n.cfg.TURNTLSCert != "" {
		cert, err = turn.LoadCertificate(n.cfg.TURNTLSCert, n.cfg.TURNTLSKey)
	} else {
		cert, err = turn.LoadOrCreateCertificate(filepath.Join(n.cfg.DataDir, turnCertFile), cfg.RelayAddress)
	}
	if err != nil {
		return false, withHint(fmt.Errorf("TURN relay: %w", err), "pass --turn-tls-cert and --turn-tls-key, or --turn-tls off")
	}
	cfg.TLSCertificate = &cert
	return tlsDefault, nil
}

// newTURN creates and starts the relay. When the TLS address is the
// default on port 443 and the relay can't start with it, it starts with
// port 5349 instead.
func (n *Node) newTURN(ctx context.Context, cfg turn.Config, tlsDefault bool) (*turn.Server, error) {
	ts, err := startTURNServer(ctx, cfg)
	if err != nil && tlsDefault && errors.Is(err, errTURNListen) {
		host, _, _ := net.SplitHostPort(cfg.ListenTLS)
		n.log.Info("TURN over TLS can't listen on port 443; using 5349", "err", err,
			"hint", "allow binding 443 (setcap cap_net_bind_service=+ep on the binary) or pass --turn-tls")
		cfg.ListenTLS = net.JoinHostPort(host, turnTLSFallbackPort)
		ts, err = startTURNServer(ctx, cfg)
	}
	return ts, err
}

// errTURNListen marks a relay that could not bind its TLS address.
var errTURNListen = errors.New("TURN over TLS: cannot listen")

func startTURNServer(ctx context.Context, cfg turn.Config) (*turn.Server, error) {
	ts, err := turn.New(cfg)
	if err != nil {
		return nil, withHint(fmt.Errorf("TURN relay: %w", err), "pick another UDP port for TURN")
	}
	if err := ts.Start(ctx); err != nil {
		if errors.Is(err, turn.ErrListenTLS) {
			err = fmt.Errorf("%w: %w", errTURNListen, err)
		}
		return nil, withHint(fmt.Errorf("TURN relay: %w", err), "another program may use UDP or TCP 3478, or the TLS port")
	}
	return ts, nil
}

// fillTURNStatus adds a public node's relay to st.
func (n *Node) fillTURNStatus(st *api.Status) {
	svc := n.calls.Load()
	if svc == nil || svc.TURN() == nil {
		return
	}
	ts := svc.TURN()
	s := ts.Stats()
	st.TURN = &api.TURNStatus{
		URLs:                  s.URLs,
		TLSCertSHA256:         hex.EncodeToString(ts.TLSCertSHA256()),
		Allocations:           s.Allocations,
		Connections:           s.TCPConns,
		MaxAllocations:        s.MaxAllocations,
		MaxAllocationsPerIP:   s.MaxAllocationsPerIP,
		MaxAllocationsPerUser: s.MaxAllocationsPerUser,
		AllocationLifetimeS:   int64(s.AllocationLifetime.Seconds()),
	}
}
