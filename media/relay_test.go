package media

import (
	"encoding/json"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/transport/v4/vnet"

	"github.com/callsign/callsign/internal/check"
)

// natWorld is a pion vnet: a "public" router with a TURN/STUN server and
// two home routers with symmetric NATs (endpoint-dependent mapping and
// filtering), one peer behind each. Packets between the two NATs' public
// addresses are dropped on the public router as well, so the only path
// between the peers is the relay.
type natWorld struct {
	wan          *vnet.Router
	netA, netB   *vnet.Net
	stun, turn   ICEServer
	directBlocks chan struct{} // a token per dropped direct packet (non-blocking)
}

const (
	turnIP = "1.2.3.4"
	natAIP = "1.2.3.10"
	natBIP = "1.2.3.11"
)

func newNATWorld(tb testing.TB, blockDirect bool) *natWorld {
	tb.Helper()
	must := func(err error) {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
	}
	w := &natWorld{directBlocks: make(chan struct{}, 1)}
	var err error
	w.wan, err = vnet.NewRouter(&vnet.RouterConfig{CIDR: "1.2.3.0/24", LoggerFactory: quietLogs()})
	must(err)
	turnNet, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{turnIP}})
	must(err)
	must(w.wan.AddNet(turnNet))
	symmetric := &vnet.NATType{
		MappingBehavior:   vnet.EndpointAddrPortDependent,
		FilteringBehavior: vnet.EndpointAddrPortDependent,
	}
	home := func(publicIP, cidr, ip string) *vnet.Net {
		r, err := vnet.NewRouter(&vnet.RouterConfig{
			StaticIPs: []string{publicIP}, CIDR: cidr, NATType: symmetric, LoggerFactory: quietLogs(),
		})
		must(err)
		must(w.wan.AddRouter(r))
		n, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{ip}})
		must(err)
		must(r.AddNet(n))
		return n
	}
	w.netA = home(natAIP, "10.0.1.0/24", "10.0.1.2")
	w.netB = home(natBIP, "10.0.2.0/24", "10.0.2.2")
	if blockDirect {
		w.wan.AddChunkFilter(func(c vnet.Chunk) bool {
			src, _, _ := net.SplitHostPort(c.SourceAddr().String())
			dst, _, _ := net.SplitHostPort(c.DestinationAddr().String())
			if (src == natAIP || src == natBIP) && (dst == natAIP || dst == natBIP) {
				select {
				case w.directBlocks <- struct{}{}:
				default:
				}
				return false
			}
			return true
		})
	}
	must(w.wan.Start())
	tb.Cleanup(func() { _ = w.wan.Stop() })

	conn, err := turnNet.ListenPacket("udp4", turnIP+":3478")
	must(err)
	startTURN(tb, conn, net.ParseIP(turnIP), turnNet)
	w.stun = ICEServer{URLs: []string{"stun:" + turnIP + ":3478"}}
	w.turn = ICEServer{URLs: []string{"turn:" + turnIP + ":3478?transport=udp"}, Username: turnUser, Credential: turnPass}
	return w
}

func candidateType(tb testing.TB, candJSON string) string {
	tb.Helper()
	var ci struct{ Candidate string }
	if err := json.Unmarshal([]byte(candJSON), &ci); err != nil {
		tb.Fatalf("candidate %q: %v", candJSON, err)
	}
	f := strings.Fields(ci.Candidate)
	for i := range f {
		if f[i] == "typ" && i+1 < len(f) {
			return f[i+1]
		}
	}
	return ""
}

// TestRelayFallbackBehindSymmetricNATs: both peers sit behind symmetric
// NATs, so STUN's server-reflexive candidates can't connect them; the
// relay candidates gathered at the same time can, and the call goes up
// over the relay.
func TestRelayFallbackBehindSymmetricNATs(t *testing.T) {
	w := newNATWorld(t, true)
	servers := []ICEServer{w.stun, w.turn}
	eA := newEngine(t, Config{Net: w.netA, ICEServers: servers})
	eB := newEngine(t, Config{Net: w.netB, ICEServers: servers})
	caller := newCall(t, eA, CallConfig{ID: "nat", Outgoing: true, Source: Tone()})
	callee := newCall(t, eB, CallConfig{ID: "nat", Source: Tone()})
	wA, wB := watch(t, caller), watch(t, callee)

	var mu sync.Mutex
	types := map[string]int{}
	connect(t, caller, callee, func(c string) { mu.Lock(); types[candidateType(t, c)]++; mu.Unlock() })
	wA.wait(t, Connected, 10*time.Second)
	wB.wait(t, Connected, 10*time.Second)
	check.Until(t, 5*time.Second, "media both ways over the relay", func() bool {
		return caller.Stats().SetupTime > 0 && callee.Stats().SetupTime > 0
	})
	for name, c := range map[string]*Call{"caller": caller, "callee": callee} {
		st := c.Stats()
		t.Logf("%s: %+v", name, st)
		if st.Path != PathRelay {
			t.Errorf("%s path %q (%s/%s), want relay", name, st.Path, st.LocalCandidate, st.RemoteCandidate)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	// All three kinds were gathered at once; only the relay worked.
	for _, typ := range []string{"host", "srflx", "relay"} {
		if types[typ] == 0 {
			t.Errorf("no %s candidates gathered (got %v)", typ, types)
		}
	}
	select {
	case <-w.directBlocks:
	default:
		t.Error("no direct packet between the NATs was attempted; the test did not exercise the blocked path")
	}
}

// TestSTUNOnlyBehindSymmetricNATsFails is the control for the test above:
// without a TURN server the same call can't connect, and the engine
// detects an ICE failure.
func TestSTUNOnlyBehindSymmetricNATsFails(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the ICE failure timeout")
	}
	w := newNATWorld(t, true)
	eA := newEngine(t, Config{Net: w.netA, ICEServers: []ICEServer{w.stun}})
	eB := newEngine(t, Config{Net: w.netB, ICEServers: []ICEServer{w.stun}})
	caller := newCall(t, eA, CallConfig{ID: "stun", Outgoing: true, Source: Tone()})
	callee := newCall(t, eB, CallConfig{ID: "stun", Source: Tone()})
	wA := watch(t, caller)
	watch(t, callee)
	connect(t, caller, callee, nil)
	if got := wA.final(t, 30*time.Second).Kind; got != ICEFailed {
		t.Errorf("detected %q, want %q", got, ICEFailed)
	}
	if st := caller.Stats(); st.PacketsReceived != 0 || st.Path != "" {
		t.Errorf("media flowed without a relay: %+v", st)
	}
}

// TestRelayOnly: a call from a stranger never offers host or srflx
// candidates, so the remote learns no address of ours; media still flows
// through the relay.
func TestRelayOnly(t *testing.T) {
	ts := loopbackTURN(t)
	eA := newEngine(t, Config{ICEServers: []ICEServer{ts}})
	eB := newEngine(t, Config{ICEServers: []ICEServer{ts}, RelayOnly: true})
	caller := newCall(t, eA, CallConfig{ID: "relay", Outgoing: true, RelayOnly: true, Source: Tone()})
	callee := newCall(t, eB, CallConfig{ID: "relay", Source: Tone()})
	wA, wB := watch(t, caller), watch(t, callee)

	var mu sync.Mutex
	var cands []string
	connect(t, caller, callee, func(c string) { mu.Lock(); cands = append(cands, c); mu.Unlock() })
	wA.wait(t, Connected, 10*time.Second)
	wB.wait(t, Connected, 10*time.Second)
	check.Until(t, 5*time.Second, "media both ways", func() bool {
		return caller.Stats().SetupTime > 0 && callee.Stats().SetupTime > 0
	})
	for name, c := range map[string]*Call{"caller": caller, "callee": callee} {
		if st := c.Stats(); st.Path != PathRelay || st.LocalCandidate != "relay" {
			t.Errorf("%s path %q over local %s, want relay", name, st.Path, st.LocalCandidate)
		}
	}
	caller.Close()
	wB.wait(t, RemoteClosed, 10*time.Second)

	mu.Lock()
	defer mu.Unlock()
	if len(cands) == 0 {
		t.Fatal("no candidates trickled")
	}
	for _, c := range cands {
		if typ := candidateType(t, c); typ != "relay" {
			t.Errorf("relay-only call trickled a %s candidate: %s", typ, c)
		}
	}
}

func TestRelayOnlyNeedsTURN(t *testing.T) {
	e := newEngine(t, Config{ICEServers: []ICEServer{{URLs: []string{"stun:127.0.0.1:3478"}}}})
	if _, err := e.NewCall(CallConfig{ID: "x", Outgoing: true, RelayOnly: true}); err == nil {
		t.Fatal("relay-only call without a TURN server was created")
	}
}
