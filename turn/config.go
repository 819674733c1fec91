package turn

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"time"

	"github.com/pion/transport/v4"
)

// Defaults for zero Config fields.
const (
	DefaultListenUDP                   = "0.0.0.0:3478"
	DefaultRealm                       = "callsign"
	DefaultCredentialTTL               = 10 * time.Minute
	DefaultRefreshGrace                = 12 * time.Hour
	DefaultMaxAllocationsPerUser       = 32
	DefaultMaxAllocationsPerIP         = 256
	DefaultMaxAllocations              = 4096
	DefaultAllocationLifetime          = 10 * time.Minute
	DefaultMaxPermissionsPerAllocation = 32
	DefaultMaxChannelsPerAllocation    = 32
	DefaultAllocationRate              = 10
	DefaultAllocationBurst             = 30
	DefaultSocketBuffer                = 4 << 20
	DefaultMaxTCPConns                 = 1024
	DefaultMaxTCPConnsPerIP            = 128

	// minSecretLen is the shortest Secret New accepts.
	minSecretLen = 16
	// maxTrackedIPs bounds the per-IP rate-limit table.
	maxTrackedIPs = 1 << 16
)

// Config configures a Server. The zero value of every field means its
// default, stated in the field's comment.
type Config struct {
	// ListenUDP is the UDP address TURN listens on. Default "0.0.0.0:3478";
	// tests use "127.0.0.1:0".
	ListenUDP string
	// ListenTCP is an optional TCP address for TURN over TCP (the relayed
	// side is still UDP). Empty means no TCP listener.
	ListenTCP string
	// ListenTLS is an optional TCP address for TURN over TLS ("turns:"
	// URLs; 443 gets through the strictest firewalls). Empty means none.
	ListenTLS string
	// TLSCertificate is the certificate of the TLS listener. Nil means a
	// new self-signed one for RelayAddress (members pin it by hash, see
	// Credentials.TLSCertSHA256); a node passes one kept in its data
	// directory, or the operator's.
	TLSCertificate *tls.Certificate
	// RelayAddress is the IP announced in relay candidates and URLs. It is
	// required when ListenUDP is an unspecified address (0.0.0.0 or ::);
	// otherwise it defaults to ListenUDP's IP.
	RelayAddress net.IP
	// RelayPortMin and RelayPortMax bound the relay ports (inclusive). Both
	// zero means any port the OS picks; otherwise both must be set.
	RelayPortMin, RelayPortMax uint16
	// Realm is the TURN realm. Default "callsign".
	Realm string
	// Secret is the HMAC key of the REST-style credentials, at least 16
	// bytes. Nil means 32 random bytes (credentials then only work with this
	// Server value).
	Secret []byte
	// CredentialTTL is how long issued credentials are valid. Default 10 min.
	CredentialTTL time.Duration
	// RefreshGrace is how long after its expiry an authentic credential may
	// still refresh, permit and bind channels on the allocation it created,
	// so calls outlive their credentials. New allocations always need an
	// unexpired credential. Default 12 h; negative means no grace.
	RefreshGrace time.Duration
	// AllocationLifetime is the lifetime of an allocation a client does
	// not refresh, when its request names none (pion's client, Chrome and
	// Firefox name none; a request may name up to 1 h). A client that
	// vanished without deallocating holds its allocation this long.
	// Default 10 min (RFC 8656).
	AllocationLifetime time.Duration
	// MaxAllocationsPerUser caps concurrent allocations per user id.
	// Default 32.
	MaxAllocationsPerUser int
	// MaxAllocationsPerIP caps concurrent allocations per client IP.
	// Default 256.
	MaxAllocationsPerIP int
	// MaxAllocations caps concurrent allocations on the server. Default 4096.
	MaxAllocations int
	// MaxPermissionsPerAllocation caps the peer IPs one allocation may
	// permit. Default 32.
	MaxPermissionsPerAllocation int
	// MaxChannelsPerAllocation caps the channels one allocation may bind.
	// Default 32.
	MaxChannelsPerAllocation int
	// AllocationRate is the sustained rate of new allocations per client IP
	// per second (a token bucket). Default 10.
	AllocationRate float64
	// AllocationBurst is the token bucket's depth. Default 30.
	AllocationBurst int
	// AllowLoopbackPeers lets clients relay to loopback and unspecified
	// addresses, which a public server must refuse (they reach the host's
	// own services). Default false; tests and benchmarks on one host set it.
	AllowLoopbackPeers bool
	// Listeners is the number of UDP sockets sharing ListenUDP through
	// SO_REUSEPORT, each with its own reader goroutine. Default: the number
	// of CPUs, at most 4; always 1 when Net is set or where SO_REUSEPORT is
	// unavailable.
	Listeners int
	// SocketBuffer is the receive and send buffer size requested for the
	// listener and relay sockets, in bytes (the kernel caps it at
	// net.core.rmem_max/wmem_max). Default 4 MiB; negative leaves the OS
	// default.
	SocketBuffer int
	// MaxTCPConns and MaxTCPConnsPerIP cap concurrent TURN-over-TCP and
	// -TLS connections (one per allocation). Defaults 1024 and 128: half
	// the per-IP allocation cap, since members behind one NAT reach the
	// relay mostly over UDP.
	MaxTCPConns, MaxTCPConnsPerIP int
	// Logger receives the server's logs and pion/turn's. Nil discards.
	Logger *slog.Logger
	// Net is the network to use (pion's vnet in tests). Nil means the real
	// network.
	Net transport.Net
}

// withDefaults returns cfg with defaults filled in, or an error naming the
// first invalid field.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.ListenUDP == "" {
		cfg.ListenUDP = DefaultListenUDP
	}
	host, _, err := net.SplitHostPort(cfg.ListenUDP)
	if err != nil {
		return cfg, fmt.Errorf("turn config: ListenUDP %q: %w", cfg.ListenUDP, err)
	}
	if cfg.ListenTCP != "" {
		if _, _, err := net.SplitHostPort(cfg.ListenTCP); err != nil {
			return cfg, fmt.Errorf("turn config: ListenTCP %q: %w", cfg.ListenTCP, err)
		}
	}
	if cfg.ListenTLS != "" {
		if _, _, err := net.SplitHostPort(cfg.ListenTLS); err != nil {
			return cfg, fmt.Errorf("turn config: ListenTLS %q: %w", cfg.ListenTLS, err)
		}
	}
	if cfg.TLSCertificate != nil && len(cfg.TLSCertificate.Certificate) == 0 {
		return cfg, errors.New("turn config: TLSCertificate has no certificate")
	}
	if cfg.AllocationLifetime == 0 {
		cfg.AllocationLifetime = DefaultAllocationLifetime
	}
	if cfg.AllocationLifetime < time.Second || cfg.AllocationLifetime >= time.Hour {
		return cfg, fmt.Errorf("turn config: AllocationLifetime %v out of range 1s-1h", cfg.AllocationLifetime)
	}
	if cfg.RelayAddress == nil {
		ip, err := netip.ParseAddr(host)
		if err != nil || ip.IsUnspecified() {
			return cfg, errors.New("turn config: RelayAddress is required when ListenUDP is not a specific IP")
		}
		cfg.RelayAddress = net.IP(ip.Unmap().AsSlice())
	} else if cfg.RelayAddress.IsUnspecified() || cfg.RelayAddress.To16() == nil {
		return cfg, fmt.Errorf("turn config: RelayAddress %v is not an announceable IP", cfg.RelayAddress)
	}
	if (cfg.RelayPortMin == 0) != (cfg.RelayPortMax == 0) || cfg.RelayPortMin > cfg.RelayPortMax {
		return cfg, fmt.Errorf("turn config: relay port range %d-%d: set both, min <= max",
			cfg.RelayPortMin, cfg.RelayPortMax)
	}
	if cfg.Realm == "" {
		cfg.Realm = DefaultRealm
	}
	if cfg.Secret != nil && len(cfg.Secret) < minSecretLen {
		return cfg, fmt.Errorf("turn config: Secret must be at least %d bytes", minSecretLen)
	}
	if cfg.CredentialTTL == 0 {
		cfg.CredentialTTL = DefaultCredentialTTL
	}
	if cfg.CredentialTTL < 0 {
		return cfg, errors.New("turn config: CredentialTTL is negative")
	}
	if cfg.RefreshGrace == 0 {
		cfg.RefreshGrace = DefaultRefreshGrace
	}
	if cfg.RefreshGrace < 0 {
		cfg.RefreshGrace = 0
	}
	for _, f := range []struct {
		p    *int
		def  int
		name string
	}{
		{&cfg.MaxAllocationsPerUser, DefaultMaxAllocationsPerUser, "MaxAllocationsPerUser"},
		{&cfg.MaxAllocationsPerIP, DefaultMaxAllocationsPerIP, "MaxAllocationsPerIP"},
		{&cfg.MaxAllocations, DefaultMaxAllocations, "MaxAllocations"},
		{&cfg.MaxPermissionsPerAllocation, DefaultMaxPermissionsPerAllocation, "MaxPermissionsPerAllocation"},
		{&cfg.MaxChannelsPerAllocation, DefaultMaxChannelsPerAllocation, "MaxChannelsPerAllocation"},
		{&cfg.AllocationBurst, DefaultAllocationBurst, "AllocationBurst"},
		{&cfg.MaxTCPConns, DefaultMaxTCPConns, "MaxTCPConns"},
		{&cfg.MaxTCPConnsPerIP, DefaultMaxTCPConnsPerIP, "MaxTCPConnsPerIP"},
	} {
		if *f.p == 0 {
			*f.p = f.def
		}
		if *f.p < 0 {
			return cfg, fmt.Errorf("turn config: %s is negative", f.name)
		}
	}
	if cfg.AllocationRate == 0 {
		cfg.AllocationRate = DefaultAllocationRate
	}
	if cfg.AllocationRate < 0 {
		return cfg, errors.New("turn config: AllocationRate is negative")
	}
	if cfg.Listeners == 0 {
		cfg.Listeners = min(runtime.NumCPU(), 4)
	}
	if cfg.Listeners < 0 || cfg.Listeners > 64 {
		return cfg, fmt.Errorf("turn config: Listeners %d out of range 1-64", cfg.Listeners)
	}
	if cfg.Net != nil || !reusePortSupported {
		cfg.Listeners = 1
	}
	if cfg.SocketBuffer == 0 {
		cfg.SocketBuffer = DefaultSocketBuffer
	}
	return cfg, nil
}
