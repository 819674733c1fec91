package media

import (
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// Stats is a snapshot of a call's media. After the call ends it holds the
// figures from the moment the call was torn down.
type Stats struct {
	// Path is the selected candidate pair's kind: PathRelay when either end
	// is a relay candidate, PathDirect otherwise, "" before a pair is
	// selected.
	Path Path
	// LocalCandidate and RemoteCandidate are the selected pair's candidate
	// types: "host", "srflx", "prflx" or "relay".
	LocalCandidate, RemoteCandidate string

	PacketsSent, PacketsReceived uint64 // RTP packets, all tracks
	BytesSent, BytesReceived     uint64 // RTP payload bytes, all tracks
	// PacketsLost counts packets the remote sent that never arrived here,
	// from the RTP sequence numbers.
	PacketsLost uint64
	// Loss is PacketsLost over the packets expected here, 0 to 1.
	Loss float64
	// RemoteLoss is the loss the remote reports for the packets we sent
	// (latest RTCP receiver report), 0 to 1.
	RemoteLoss float64
	// RTT is the round-trip time, from RTCP reports or else from the ICE
	// checks of the selected pair; 0 while unknown.
	RTT time.Duration

	// FirstSent and FirstReceived are the times from NewCall to the first
	// media packet sent and received; 0 until then.
	FirstSent, FirstReceived time.Duration
	// SetupTime is invite (NewCall) to the first media packet both ways,
	// the larger of FirstSent and FirstReceived; 0 until both happened.
	SetupTime time.Duration
}

// counters are the call's own media figures, kept by its media goroutines.
type counters struct {
	mu                   sync.Mutex
	sentPkts, sentBytes  uint64
	recvPkts, recvBytes  uint64
	expected             uint64
	firstSent, firstRecv time.Time
	remoteLoss           float64
	rtcpRTT              time.Duration
	path                 Path
	localTyp, remoteTyp  string
}

func (c *counters) sent(n int) {
	c.mu.Lock()
	c.sentPkts++
	c.sentBytes += uint64(n)
	if c.firstSent.IsZero() {
		c.firstSent = time.Now()
	}
	c.mu.Unlock()
}

func (c *counters) received(n int, expected uint64) {
	c.mu.Lock()
	c.recvPkts++
	c.recvBytes += uint64(n)
	c.expected += expected
	if c.firstRecv.IsZero() {
		c.firstRecv = time.Now()
	}
	c.mu.Unlock()
}

// seqTracker counts the packets a stream should have delivered, from its
// RTP sequence numbers (RFC 3550 A.3, simplified): a packet ahead of the
// highest seen adds the gap, a late or repeated one adds nothing.
type seqTracker struct {
	started bool
	highest uint16
}

func (s *seqTracker) expect(seq uint16) uint64 {
	if !s.started {
		s.started, s.highest = true, seq
		return 1
	}
	d := int16(seq - s.highest)
	if d <= 0 {
		return 0
	}
	s.highest = seq
	return uint64(d)
}

// noteRTCP takes the remote's receiver reports on what we send: the loss
// it sees and, from LSR and DLSR, the round-trip time.
func (c *Call) noteRTCP(pkts []rtcp.Packet) {
	now := ntpMiddle(time.Now())
	for _, p := range pkts {
		var reports []rtcp.ReceptionReport
		switch p := p.(type) {
		case *rtcp.ReceiverReport:
			reports = p.Reports
		case *rtcp.SenderReport:
			reports = p.Reports
		}
		for _, r := range reports {
			c.counters.mu.Lock()
			c.counters.remoteLoss = float64(r.FractionLost) / 256
			if r.LastSenderReport != 0 {
				rtt := now - r.LastSenderReport - r.Delay
				if d := time.Duration(float64(rtt) / 65536 * float64(time.Second)); d < 10*time.Second {
					c.counters.rtcpRTT = d
				}
			}
			c.counters.mu.Unlock()
		}
	}
}

// ntpMiddle returns the middle 32 bits of t as an NTP timestamp, the unit
// of RTCP's LSR and DLSR fields (1/65536 s).
func ntpMiddle(t time.Time) uint32 {
	const ntpEpochOffset = 2208988800
	secs := uint64(t.Unix()) + ntpEpochOffset
	frac := uint64(t.Nanosecond()) << 32 / uint64(time.Second)
	return uint32((secs<<32 | frac) >> 16)
}

// Stats returns a snapshot of the call's media figures.
func (c *Call) Stats() Stats {
	c.mu.Lock()
	final := c.final
	c.mu.Unlock()
	if final != nil {
		return *final
	}
	return c.collectStats()
}

func (c *Call) collectStats() Stats {
	var pairRTT time.Duration
	pair, pairStats := c.selectedPair()
	if pairStats != nil {
		pairRTT = time.Duration(pairStats.CurrentRoundTripTime * float64(time.Second))
	}
	k := &c.counters
	k.mu.Lock()
	defer k.mu.Unlock()
	if pair != nil {
		k.localTyp, k.remoteTyp = pair.Local.Typ.String(), pair.Remote.Typ.String()
		k.path = PathDirect
		if pair.Local.Typ == webrtc.ICECandidateTypeRelay || pair.Remote.Typ == webrtc.ICECandidateTypeRelay {
			k.path = PathRelay
		}
	}
	st := Stats{
		Path: k.path, LocalCandidate: k.localTyp, RemoteCandidate: k.remoteTyp,
		PacketsSent: k.sentPkts, BytesSent: k.sentBytes,
		PacketsReceived: k.recvPkts, BytesReceived: k.recvBytes,
		RemoteLoss: k.remoteLoss,
		RTT:        k.rtcpRTT,
	}
	if st.RTT == 0 {
		st.RTT = pairRTT
	}
	if k.expected > k.recvPkts {
		st.PacketsLost = k.expected - k.recvPkts
	}
	if k.expected > 0 {
		st.Loss = float64(st.PacketsLost) / float64(k.expected)
	}
	if !k.firstSent.IsZero() {
		st.FirstSent = k.firstSent.Sub(c.created)
	}
	if !k.firstRecv.IsZero() {
		st.FirstReceived = k.firstRecv.Sub(c.created)
	}
	if st.FirstSent > 0 && st.FirstReceived > 0 {
		st.SetupTime = max(st.FirstSent, st.FirstReceived)
	}
	return st
}

// selectedPair returns the candidate pair ICE selected and its stats, or
// nils.
func (c *Call) selectedPair() (*webrtc.ICECandidatePair, *webrtc.ICECandidatePairStats) {
	// There is no selected pair before the connection is up, and asking
	// pion's ICE transport for one while it is still starting races with
	// its start (pion writes the gatherer unguarded): ask only once active.
	select {
	case <-c.active:
	default:
		return nil, nil
	}
	for _, tr := range c.pc.GetTransceivers() {
		var dts []*webrtc.DTLSTransport
		if r := tr.Receiver(); r != nil {
			dts = append(dts, r.Transport())
		}
		if s := tr.Sender(); s != nil {
			dts = append(dts, s.Transport())
		}
		for _, dt := range dts {
			if dt == nil {
				continue
			}
			it := dt.ICETransport()
			if it == nil {
				continue
			}
			p, err := it.GetSelectedCandidatePair()
			if err != nil || p == nil || p.Local == nil || p.Remote == nil {
				continue
			}
			if ps, ok := it.GetSelectedCandidatePairStats(); ok {
				return p, &ps
			}
			return p, nil
		}
	}
	return nil, nil
}
