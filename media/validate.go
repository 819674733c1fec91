package media

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pion/ice/v4"
	"github.com/pion/sdp/v3"
)

// Caps on signalling input from the remote peer.
const (
	// MaxSDPSize is the largest offer or answer ValidateSDP accepts.
	MaxSDPSize = 16 << 10
	// MaxCandidateSize is the largest candidate JSON ValidateCandidate accepts.
	MaxCandidateSize = 1 << 10

	maxSDPLines         = 256
	maxSDPLineLen       = 512
	maxMediaSections    = 2
	maxFormatsPerMedia  = 4
	maxSDPCandidates    = 32
	maxMidLen           = 32
	maxUfragLen         = 256
	maxPwdLen           = 256
	maxRemoteCandidates = 64
)

// ErrBadSDP is wrapped by every error ValidateSDP returns.
var ErrBadSDP = errors.New("invalid session description")

// ErrBadCandidate is wrapped by every error ValidateCandidate returns.
var ErrBadCandidate = errors.New("invalid ICE candidate")

var sdpParses counter

// ParseCount reports how many times ValidateSDP has been called in this
// process, by anyone. Engine.ParseCount counts per engine.
func ParseCount() uint64 { return sdpParses.load() }

func sdpErr(format string, args ...any) error {
	return fmt.Errorf("media: %w: %s", ErrBadSDP, fmt.Sprintf(format, args...))
}

// ValidateSDP checks a remote offer or answer before any of it reaches
// pion. It accepts at most 16 KiB of printable ASCII in at most 256 lines of
// at most 512 bytes; one or two media sections, audio with Opus/48000/2
// only and video with VP8/90000 only, each over UDP/TLS/RTP/SAVPF; ICE
// credentials and a DTLS fingerprint (sha-256, sha-384 or sha-512); and at
// most 32 candidates, each a literal IP address (no mDNS names). Every
// error wraps ErrBadSDP. It never panics.
func ValidateSDP(s string) error {
	sdpParses.inc()
	if err := checkSDPText(s, MaxSDPSize, maxSDPLines, maxSDPLineLen); err != nil {
		return err
	}

	var d sdp.SessionDescription
	if err := d.UnmarshalString(s); err != nil {
		return sdpErr("%v", err)
	}
	if d.Version != 0 {
		return sdpErr("version %d, want 0", d.Version)
	}
	if len(d.MediaDescriptions) == 0 || len(d.MediaDescriptions) > maxMediaSections {
		return sdpErr("%d media sections, want 1 to %d", len(d.MediaDescriptions), maxMediaSections)
	}

	sessUfrag, _ := d.Attribute("ice-ufrag")
	sessPwd, _ := d.Attribute("ice-pwd")
	sessFP, hasSessFP := d.Attribute("fingerprint")
	if hasSessFP {
		if err := checkFingerprint(sessFP); err != nil {
			return err
		}
	}
	candidates := 0
	kinds := map[string]bool{}
	for i, m := range d.MediaDescriptions {
		kind := m.MediaName.Media
		if kind != "audio" && kind != "video" {
			return sdpErr("media %d: %q, want audio or video", i, kind)
		}
		if kinds[kind] {
			return sdpErr("media %d: a second %s section", i, kind)
		}
		kinds[kind] = true
		if strings.Join(m.MediaName.Protos, "/") != "UDP/TLS/RTP/SAVPF" {
			return sdpErr("media %d: protocol %q, want UDP/TLS/RTP/SAVPF", i, strings.Join(m.MediaName.Protos, "/"))
		}
		if err := checkFormats(i, kind, m); err != nil {
			return err
		}
		ufrag, pwd, fp := sessUfrag, sessPwd, sessFP
		hasFP := hasSessFP
		for _, a := range m.Attributes {
			switch a.Key {
			case "ice-ufrag":
				ufrag = a.Value
			case "ice-pwd":
				pwd = a.Value
			case "fingerprint":
				fp, hasFP = a.Value, true
				if err := checkFingerprint(fp); err != nil {
					return err
				}
			case "mid":
				if a.Value == "" || len(a.Value) > maxMidLen {
					return sdpErr("media %d: mid of %d bytes, want 1 to %d", i, len(a.Value), maxMidLen)
				}
			case "setup":
				switch a.Value {
				case "actpass", "active", "passive":
				default:
					return sdpErr("media %d: setup %q", i, a.Value)
				}
			case "candidate":
				candidates++
				if candidates > maxSDPCandidates {
					return sdpErr("more than %d candidates", maxSDPCandidates)
				}
				if err := checkCandidate(a.Value); err != nil {
					return sdpErr("media %d: %v", i, err)
				}
			}
		}
		if !iceString(ufrag, 4, maxUfragLen) {
			return sdpErr("media %d: missing or malformed ice-ufrag", i)
		}
		if !iceString(pwd, 22, maxPwdLen) {
			return sdpErr("media %d: missing or malformed ice-pwd", i)
		}
		if !hasFP {
			return sdpErr("media %d: no DTLS fingerprint", i)
		}
	}
	return nil
}

// checkSDPText checks an SDP's size and lines before it is parsed: at most
// maxSize bytes of printable ASCII in at most maxLines lines of at most
// maxLine bytes, each a <type>=<value> line.
func checkSDPText(s string, maxSize, maxLines, maxLine int) error {
	if len(s) == 0 {
		return sdpErr("empty")
	}
	if len(s) > maxSize {
		return sdpErr("%d bytes, at most %d", len(s), maxSize)
	}
	lines := 0
	for line := range strings.Lines(s) {
		lines++
		if lines > maxLines {
			return sdpErr("more than %d lines", maxLines)
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if len(line) > maxLine {
			return sdpErr("line %d: %d bytes, at most %d", lines, len(line), maxLine)
		}
		if len(line) < 2 || line[1] != '=' || line[0] < 'a' || line[0] > 'z' {
			return sdpErr("line %d: not a <type>=<value> line", lines)
		}
		for i := 0; i < len(line); i++ {
			if c := line[i]; c < 0x20 || c > 0x7e {
				return sdpErr("line %d: byte 0x%02x outside printable ASCII", lines, c)
			}
		}
	}
	return nil
}

// checkFormats allows exactly the codecs the engine registers.
func checkFormats(i int, kind string, m *sdp.MediaDescription) error {
	if len(m.MediaName.Formats) == 0 || len(m.MediaName.Formats) > maxFormatsPerMedia {
		return sdpErr("media %d: %d formats, want 1 to %d", i, len(m.MediaName.Formats), maxFormatsPerMedia)
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
	want := "opus/48000/2"
	if kind == "video" {
		want = "VP8/90000"
	}
	for _, f := range m.MediaName.Formats {
		n, err := strconv.Atoi(f)
		if err != nil || n < 96 || n > 127 {
			return sdpErr("media %d: payload type %q, want a dynamic type 96-127", i, f)
		}
		codec, ok := rtpmap[f]
		if !ok {
			return sdpErr("media %d: payload type %s has no rtpmap", i, f)
		}
		if !strings.EqualFold(codec, want) {
			return sdpErr("media %d: codec %q, only %s is allowed", i, codec, want)
		}
	}
	return nil
}

func checkFingerprint(v string) error {
	alg, hexs, ok := strings.Cut(v, " ")
	if !ok {
		return sdpErr("malformed fingerprint")
	}
	var n int
	switch strings.ToLower(alg) {
	case "sha-256":
		n = 32
	case "sha-384":
		n = 48
	case "sha-512":
		n = 64
	default:
		return sdpErr("fingerprint algorithm %q, want sha-256, sha-384 or sha-512", alg)
	}
	parts := strings.Split(hexs, ":")
	if len(parts) != n {
		return sdpErr("fingerprint of %d bytes, want %d", len(parts), n)
	}
	for _, p := range parts {
		if len(p) != 2 || !isHex(p[0]) || !isHex(p[1]) {
			return sdpErr("malformed fingerprint")
		}
	}
	return nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// iceString reports whether s is min to max ice-chars (RFC 8839).
func iceString(s string, minLen, maxLen int) bool {
	if len(s) < minLen || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '/') {
			return false
		}
	}
	return true
}

// checkCandidate checks one candidate attribute value ("candidate:..." or
// without the prefix).
func checkCandidate(v string) error {
	if len(v) > maxSDPLineLen {
		return fmt.Errorf("candidate of %d bytes", len(v))
	}
	c, err := ice.UnmarshalCandidate(v)
	if err != nil {
		return fmt.Errorf("candidate: %w", err)
	}
	if c.Component() != 1 {
		return fmt.Errorf("candidate component %d, want 1 (rtcp-mux)", c.Component())
	}
	if !c.NetworkType().IsUDP() {
		return errors.New("candidate is not UDP")
	}
	addr, err := netip.ParseAddr(c.Address())
	if err != nil {
		return fmt.Errorf("candidate address %q is not an IP address", c.Address())
	}
	if addr.IsUnspecified() || addr.IsMulticast() {
		return fmt.Errorf("candidate address %s is not unicast", addr)
	}
	if c.Port() <= 0 || c.Port() > 65535 {
		return fmt.Errorf("candidate port %d", c.Port())
	}
	return nil
}

// candidateJSON is the wire form of a trickled candidate, the same as the
// browser's RTCIceCandidateInit.
type candidateJSON struct {
	Candidate        string  `json:"candidate"`
	SDPMid           *string `json:"sdpMid"`
	SDPMLineIndex    *uint16 `json:"sdpMLineIndex"`
	UsernameFragment *string `json:"usernameFragment"`
}

// ValidateCandidate checks one trickled remote candidate, as JSON in the
// RTCIceCandidateInit form: at most 1 KiB, no unknown fields, a UDP
// candidate on a literal IP address, component 1, a short sdpMid. An empty
// candidate string (end of candidates) is valid. Every error wraps
// ErrBadCandidate. It never panics.
func ValidateCandidate(s string) error {
	_, err := parseCandidate(s)
	return err
}

func parseCandidate(s string) (candidateJSON, error) {
	var c candidateJSON
	if len(s) > MaxCandidateSize {
		return c, fmt.Errorf("media: %w: %d bytes, at most %d", ErrBadCandidate, len(s), MaxCandidateSize)
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("media: %w: %v", ErrBadCandidate, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return c, fmt.Errorf("media: %w: trailing data after JSON", ErrBadCandidate)
	}
	if c.SDPMid != nil && len(*c.SDPMid) > maxMidLen {
		return c, fmt.Errorf("media: %w: sdpMid of %d bytes", ErrBadCandidate, len(*c.SDPMid))
	}
	if c.UsernameFragment != nil && len(*c.UsernameFragment) > 0 && !iceString(*c.UsernameFragment, 4, maxUfragLen) {
		return c, fmt.Errorf("media: %w: malformed usernameFragment", ErrBadCandidate)
	}
	if c.SDPMLineIndex != nil && *c.SDPMLineIndex >= maxMediaSections {
		return c, fmt.Errorf("media: %w: sdpMLineIndex %d", ErrBadCandidate, *c.SDPMLineIndex)
	}
	if c.Candidate == "" {
		return c, nil
	}
	if err := checkCandidate(c.Candidate); err != nil {
		return c, fmt.Errorf("media: %w: %v", ErrBadCandidate, err)
	}
	return c, nil
}
