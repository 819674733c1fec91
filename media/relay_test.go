package media

import (
	"encoding/json"
	"net"
	"strings"
	"sync"
	"sync/atomic"
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
	w.stun, w.turn = startWorld(tb, w.wan, turnNet)
	return w
}

// startWorld starts a vnet world's WAN router and the STUN/TURN server on
// turnNet at turnIP:3478, and returns the server's STUN and TURN entries.
func startWorld(tb testing.TB, wan *vnet.Router, turnNet *vnet.Net) (stun, turn ICEServer) {
	tb.Helper()
	if err := wan.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = wan.Stop() })
	conn, err := turnNet.ListenPacket("udp4", turnIP+":3478")
	if err != nil {
		tb.Fatal(err)
	}
	startTURN(tb, conn, net.ParseIP(turnIP), turnNet)
	return ICEServer{URLs: []string{"stun:" + turnIP + ":3478"}},
		ICEServer{URLs: []string{"turn:" + turnIP + ":3478?transport=udp"}, Username: turnUser, Credential: turnPass}
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

// lanWorld is a pion vnet: two peers on one home LAN behind a NAT, and a
// TURN/STUN server outside it. Until opened, the LAN drops every packet
// that does not come from or go to the TURN server, as a busy machine, a
// LAN still resolving addresses or a firewall that wakes up late drops
// the first direct checks: the relay is the first path that works.
type lanWorld struct {
	netA, netB *vnet.Net
	stun, turn ICEServer
	direct     atomic.Bool // direct packets pass
	dropped    atomic.Int64
	// count, when set, sees every packet on the LAN.
	count atomic.Pointer[func([]byte)]
}

func newLANWorld(tb testing.TB) *lanWorld {
	tb.Helper()
	must := func(err error) {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
	}
	w := &lanWorld{}
	wan, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "1.2.3.0/24", LoggerFactory: quietLogs()})
	must(err)
	turnNet, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{turnIP}})
	must(err)
	must(wan.AddNet(turnNet))
	lan, err := vnet.NewRouter(&vnet.RouterConfig{
		StaticIPs: []string{natAIP}, CIDR: "10.0.1.0/24", LoggerFactory: quietLogs(),
		NATType: &vnet.NATType{MappingBehavior: vnet.EndpointIndependent, FilteringBehavior: vnet.EndpointIndependent},
	})
	must(err)
	must(wan.AddRouter(lan))
	w.netA, err = vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{"10.0.1.2"}})
	must(err)
	must(lan.AddNet(w.netA))
	w.netB, err = vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{"10.0.1.3"}})
	must(err)
	must(lan.AddNet(w.netB))
	lan.AddChunkFilter(func(c vnet.Chunk) bool {
		if count := w.count.Load(); count != nil {
			(*count)(c.UserData())
		}
		if w.direct.Load() {
			return true
		}
		src, _, _ := net.SplitHostPort(c.SourceAddr().String())
		dst, _, _ := net.SplitHostPort(c.DestinationAddr().String())
		if src == turnIP || dst == turnIP {
			return true
		}
		w.dropped.Add(1)
		return false
	})
	w.stun, w.turn = startWorld(tb, wan, turnNet)
	return w
}

// call places a call from netA's peer to netB's, both with the world's
// STUN and TURN server, and waits until both ends are connected.
func (w *lanWorld) call(tb testing.TB) (caller, callee *Call, wA, wB *watcher) {
	tb.Helper()
	servers := []ICEServer{w.stun, w.turn}
	eA := newEngine(tb, Config{Net: w.netA, ICEServers: servers})
	eB := newEngine(tb, Config{Net: w.netB, ICEServers: servers})
	caller = newCall(tb, eA, CallConfig{ID: "lan", Outgoing: true, Source: Tone()})
	callee = newCall(tb, eB, CallConfig{ID: "lan", Source: Tone()})
	wA, wB = watch(tb, caller), watch(tb, callee)
	connect(tb, caller, callee, nil)
	wA.wait(tb, Connected, 10*time.Second)
	wB.wait(tb, Connected, 10*time.Second)
	return caller, callee, wA, wB
}

// TestRelayUpgradesToDirect: two peers on one LAN whose direct checks are
// lost at first connect through the relay, which the controlling end
// accepts after its short wait; once the direct path answers, both ends
// move the call to it (ICE renomination) and media keeps flowing both
// ways: "direct when possible" holds after set-up too, so a call between
// neighbours does not stay on the community's relay.
func TestRelayUpgradesToDirect(t *testing.T) {
	w := newLANWorld(t)
	caller, callee, wA, wB := w.call(t)
	calls := map[string]*Call{"caller": caller, "callee": callee}
	for name, c := range calls {
		if st := c.Stats(); st.Path != PathRelay {
			t.Fatalf("%s connected over %q (%s/%s) with direct packets dropped; the test did not start on the relay", name, st.Path, st.LocalCandidate, st.RemoteCandidate)
		}
	}
	if w.dropped.Load() == 0 {
		t.Fatal("no direct packet was dropped; the test did not exercise the lost checks")
	}

	opened := time.Now()
	w.direct.Store(true)
	check.Until(t, 15*time.Second, "both ends on the direct path", func() bool {
		return caller.Stats().Path == PathDirect && callee.Stats().Path == PathDirect
	})
	t.Logf("both ends on the direct path %v after it opened", time.Since(opened).Round(time.Millisecond))
	moved := map[string]uint64{}
	for name, c := range calls {
		moved[name] = c.Stats().PacketsReceived
	}
	check.Until(t, 5*time.Second, "media both ways after the move", func() bool {
		return caller.Stats().PacketsReceived > moved["caller"]+50 && callee.Stats().PacketsReceived > moved["callee"]+50
	})
	for name, c := range calls {
		if st := c.Stats(); st.Path != PathDirect {
			t.Errorf("%s went back to the %q path (%s/%s)", name, st.Path, st.LocalCandidate, st.RemoteCandidate)
		}
	}
	for _, wt := range []*watcher{wA, wB} {
		for _, ev := range wt.history() {
			if ev.Kind != Connected {
				t.Errorf("the move to the direct path was seen as %s", ev.Kind)
			}
		}
	}
}
