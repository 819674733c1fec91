// Package media owns callsign's voice and video calls on pion/webrtc: the
// Engine (one pion API per node: Opus 48 kHz stereo and VP8 only, mDNS
// off, short ICE timeouts, fast relay acceptance), the Call (one peer
// connection, its state machine, its media goroutines and its Stats), the
// checks every remote session description and candidate passes before it
// reaches pion (ValidateSDP, ValidateCandidate), the Bridge to the user's
// own browser tab (its connection to the node, forwarded into a Call
// without transcoding; CheckBrowserOffer), and the headless media sources
// and sinks (looping Ogg/Opus and IVF/VP8 clips, live streams from a FIFO
// (OpenSource), the embedded Tone and Pattern, and a Recorder to Ogg and
// IVF files).
//
// It must not import libp2p, badger, the DHT or any other callsign
// package. Signalling transport, call states and call policy belong to
// package call: it carries the strings below inside the E2E session, and
// the node applies its call policy before call hands a remote offer to
// Answer.
//
// # Signalling
//
// The node moves opaque strings between the two ends; this package
// produces and checks them:
//
//	caller                               callee
//	NewCall(Outgoing: true)
//	Offer(ctx) ── offer SDP ──────────>  (policy, ring) NewCall(Outgoing: false)
//	                                     Answer(ctx, offer)
//	SetAnswer(answer) <── answer SDP ──
//	Candidates() ── candidate JSON ───>  AddRemoteCandidate
//	AddRemoteCandidate <── candidate ── Candidates()
//	Hangup(reason) ── hangup ─────────>  Hangup(ReasonRemoteHangup)
//
// An SDP is at most MaxSDPSize (16 KiB) of printable ASCII, one or two
// media sections (audio with opus/48000/2, video with VP8/90000) over
// UDP/TLS/RTP/SAVPF, with ICE credentials and a DTLS fingerprint; the
// fingerprint is what binds the media to the E2E session that carried it.
// A candidate is the browser's RTCIceCandidateInit JSON, at most
// MaxCandidateSize (1 KiB), a UDP candidate on a literal IP address. Both
// ends gather host, server-reflexive and relay candidates at once and
// trickle them; a relay-only call gathers relay candidates only.
//
// # Call states
//
// ringing → connecting (offer and answer applied) → active (a path is
// up) → ended. Every call ends exactly once, with a Reason: the one the
// node passes to Hangup (hangup, remote-hangup, declined, busy, missed,
// cancelled, unavailable), or one the engine detects: remote-hangup (the
// remote's DTLS close arrived), ice-failed, failed, timeout.
//
// # Goroutines
//
// pion callbacks only record what happened and wake the call's own
// goroutine, which delivers StateChanges and Candidates and tears the call
// down. Each local track has a sender goroutine and an RTCP reader, each
// remote track a reader. Call.Close and Engine.Close wait for all of them.
package media
