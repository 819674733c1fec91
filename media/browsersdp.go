package media

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/pion/ice/v4"
	"github.com/pion/sdp/v3"
)

// Caps on a browser tab's offer. A browser's offer is larger than a node's
// (extension maps, SSRC lines, several candidates), so the caps are wider
// than ValidateSDP's; it still comes only from the authenticated local
// API.
const (
	// MaxBrowserSDPSize is the largest browser offer CheckBrowserOffer
	// accepts.
	MaxBrowserSDPSize = 32 << 10

	maxBrowserSDPLines    = 512
	maxBrowserSDPLineLen  = 1024
	maxBrowserFormats     = 32
	maxBrowserCandidates  = 64
	maxBrowserAttrsPerSec = 256
)

// CheckBrowserOffer checks a browser tab's offer for its connection to its
// own node and returns the offer to hand to pion, with the candidates the
// node may use, and those candidates' addresses.
//
// It refuses (with an error wrapping ErrBadSDP that says why) an offer
// over MaxBrowserSDPSize, malformed lines, anything but one audio and/or
// one video section over UDP/TLS/RTP/SAVPF, audio that does not offer
// Opus (48 kHz, stereo) or video that does not offer VP8 (other codecs
// may be offered beside them; the node answers with Opus and VP8 only and
// never transcodes), missing ICE credentials or DTLS fingerprint, and a
// UDP candidate whose address is not one of local (this machine's own
// addresses). It drops, without refusing, candidates the node can't use:
// TCP ones, RTCP components (the node muxes RTCP) and mDNS names (a
// browser hides its addresses that way until
// it has camera or microphone permission; the tab can still reach the
// node's own candidates). When the tab offers any loopback candidate, only
// the loopback ones are kept.
func CheckBrowserOffer(offer string, local []netip.Addr) (string, []netip.Addr, error) {
	sdpParses.inc()
	if err := checkSDPText(offer, MaxBrowserSDPSize, maxBrowserSDPLines, maxBrowserSDPLineLen); err != nil {
		return "", nil, err
	}
	var d sdp.SessionDescription
	if err := d.UnmarshalString(offer); err != nil {
		return "", nil, sdpErr("%v", err)
	}
	if d.Version != 0 {
		return "", nil, sdpErr("version %d, want 0", d.Version)
	}
	if len(d.MediaDescriptions) == 0 || len(d.MediaDescriptions) > maxMediaSections {
		return "", nil, sdpErr("%d media sections, want an audio and a video section", len(d.MediaDescriptions))
	}
	sessUfrag, _ := d.Attribute("ice-ufrag")
	sessPwd, _ := d.Attribute("ice-pwd")
	sessFP, hasSessFP := d.Attribute("fingerprint")
	if hasSessFP {
		if err := checkFingerprint(sessFP); err != nil {
			return "", nil, err
		}
	}

	// First pass: the candidates, to decide which ones to keep.
	type cand struct {
		section, attr int
		addr          netip.Addr
	}
	var usable []cand
	drop := map[[2]int]bool{}
	total := 0
	for i, m := range d.MediaDescriptions {
		if len(m.Attributes) > maxBrowserAttrsPerSec {
			return "", nil, sdpErr("media %d: %d attributes, at most %d", i, len(m.Attributes), maxBrowserAttrsPerSec)
		}
		for j, a := range m.Attributes {
			if a.Key != "candidate" {
				continue
			}
			total++
			if total > maxBrowserCandidates {
				return "", nil, sdpErr("more than %d candidates", maxBrowserCandidates)
			}
			addr, keep, err := browserCandidate(a.Value, local)
			if err != nil {
				return "", nil, sdpErr("media %d: %v", i, err)
			}
			if !keep {
				drop[[2]int{i, j}] = true
				continue
			}
			usable = append(usable, cand{i, j, addr})
		}
	}
	if slices.ContainsFunc(usable, func(c cand) bool { return c.addr.IsLoopback() }) {
		for _, c := range usable {
			if !c.addr.IsLoopback() {
				drop[[2]int{c.section, c.attr}] = true
			}
		}
	}
	var addrs []netip.Addr
	for _, c := range usable {
		if !drop[[2]int{c.section, c.attr}] && !slices.Contains(addrs, c.addr) {
			addrs = append(addrs, c.addr)
		}
	}

	kinds := map[string]bool{}
	for i, m := range d.MediaDescriptions {
		kind := m.MediaName.Media
		if kind != "audio" && kind != "video" {
			return "", nil, sdpErr("media %d: %q, want audio or video", i, kind)
		}
		if kinds[kind] {
			return "", nil, sdpErr("media %d: a second %s section", i, kind)
		}
		kinds[kind] = true
		if strings.Join(m.MediaName.Protos, "/") != "UDP/TLS/RTP/SAVPF" {
			return "", nil, sdpErr("media %d: protocol %q, want UDP/TLS/RTP/SAVPF", i, strings.Join(m.MediaName.Protos, "/"))
		}
		if err := checkBrowserFormats(i, kind, m); err != nil {
			return "", nil, err
		}
		ufrag, pwd := sessUfrag, sessPwd
		hasFP := hasSessFP
		kept := m.Attributes[:0:0]
		for j, a := range m.Attributes {
			switch a.Key {
			case "ice-ufrag":
				ufrag = a.Value
			case "ice-pwd":
				pwd = a.Value
			case "fingerprint":
				hasFP = true
				if err := checkFingerprint(a.Value); err != nil {
					return "", nil, err
				}
			case "mid":
				if a.Value == "" || len(a.Value) > maxMidLen {
					return "", nil, sdpErr("media %d: mid of %d bytes, want 1 to %d", i, len(a.Value), maxMidLen)
				}
			case "setup":
				switch a.Value {
				case "actpass", "active", "passive":
				default:
					return "", nil, sdpErr("media %d: setup %q", i, a.Value)
				}
			}
			if !drop[[2]int{i, j}] {
				kept = append(kept, a)
			}
		}
		m.Attributes = kept
		if !iceString(ufrag, 4, maxUfragLen) {
			return "", nil, sdpErr("media %d: missing or malformed ice-ufrag", i)
		}
		if !iceString(pwd, 22, maxPwdLen) {
			return "", nil, sdpErr("media %d: missing or malformed ice-pwd", i)
		}
		if !hasFP {
			return "", nil, sdpErr("media %d: no DTLS fingerprint", i)
		}
	}
	out, err := d.Marshal()
	if err != nil {
		return "", nil, sdpErr("%v", err)
	}
	return string(out), addrs, nil
}

// checkBrowserFormats requires Opus in an audio section and VP8 in a video
// section, among at most maxBrowserFormats dynamic payload types.
func checkBrowserFormats(i int, kind string, m *sdp.MediaDescription) error {
	if len(m.MediaName.Formats) == 0 || len(m.MediaName.Formats) > maxBrowserFormats {
		return sdpErr("media %d: %d formats, want 1 to %d", i, len(m.MediaName.Formats), maxBrowserFormats)
	}
	rtpmap := map[string]string{}
	for _, a := range m.Attributes {
		if a.Key != "rtpmap" {
			continue
		}
		pt, codec, ok := strings.Cut(a.Value, " ")
		if !ok {
			return sdpErr("media %d: malformed rtpmap %q", i, a.Value)
		}
		rtpmap[pt] = codec
	}
	want, name := "opus/48000/2", "Opus"
	if kind == "video" {
		want, name = "VP8/90000", "VP8"
	}
	var offered []string
	for _, f := range m.MediaName.Formats {
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 || n > 127 {
			return sdpErr("media %d: payload type %q", i, f)
		}
		codec := rtpmap[f]
		if strings.EqualFold(codec, want) {
			return nil
		}
		if c, _, _ := strings.Cut(codec, "/"); c != "" && !slices.Contains(offered, c) {
			offered = append(offered, c)
		}
	}
	return sdpErr("media %d: the %s section offers %s but not %s; callsign passes media through without transcoding and needs Opus audio and VP8 video",
		i, kind, strings.Join(offered, ", "), name)
}

// browserCandidate parses one candidate of a browser offer. keep is false
// for candidates the node can't use (TCP, mDNS names, RTCP components); a
// UDP candidate on
// an address that is not local is an error.
func browserCandidate(v string, local []netip.Addr) (netip.Addr, bool, error) {
	c, err := ice.UnmarshalCandidate(v)
	if err != nil {
		return netip.Addr{}, false, fmt.Errorf("candidate: %w", err)
	}
	if !c.NetworkType().IsUDP() {
		return netip.Addr{}, false, nil
	}
	addr, err := netip.ParseAddr(c.Address())
	if err != nil {
		return netip.Addr{}, false, nil // an mDNS name: the browser hides its address
	}
	addr = addr.Unmap()
	if c.Component() != 1 {
		return netip.Addr{}, false, nil // RTCP candidates: the node muxes RTCP
	}
	if c.Port() <= 0 || c.Port() > 65535 {
		return netip.Addr{}, false, fmt.Errorf("candidate port %d", c.Port())
	}
	if !slices.Contains(local, addr) {
		return netip.Addr{}, false, fmt.Errorf("candidate address %s is not an address of this machine: the web app must run on the node's own machine", addr)
	}
	return addr, true, nil
}

// LocalAddrs returns this machine's own IP addresses, loopback included:
// the only addresses a browser tab's candidates may have.
func LocalAddrs() ([]netip.Addr, error) {
	ifAddrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("media: local addresses: %w", err)
	}
	var out []netip.Addr
	for _, a := range ifAddrs {
		var ip net.IP
		switch v := a.(type) {
		case *net.IPNet:
			ip = v.IP
		case *net.IPAddr:
			ip = v.IP
		}
		if na, ok := netip.AddrFromSlice(ip); ok && !slices.Contains(out, na.Unmap()) {
			out = append(out, na.Unmap())
		}
	}
	return out, nil
}
