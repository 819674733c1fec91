// Package media is callsign's peer-connection engine for voice and video
// calls, on pion/webrtc: the Engine (one pion API per node: Opus 48 kHz
// stereo and VP8 only, mDNS off, short ICE timeouts, fast relay
// acceptance), the Call (one call's peer connection, its media goroutines,
// what it detects and its Stats), the checks every remote session
// description and candidate passes before it reaches pion (ValidateSDP,
// ValidateCandidate), the Bridge to the user's own browser tab (its
// connection to the node, forwarded into a Call without transcoding;
// CheckBrowserOffer), and the headless media sources and sinks (looping
// Ogg/Opus and IVF/VP8 clips, live streams from a FIFO (OpenSource), the
// embedded Tone and Pattern, and a Recorder to Ogg and IVF files).
//
// It must not import libp2p, badger, the DHT, package call or any other
// callsign package. A call's lifecycle is package call's: its states
// (ringing, connecting, active, ended), its end reasons (hangup, declined,
// busy, missed, ...), the ring timeout, the signalling transport, the call
// policy and the call log. This package has no call states: a Call reports
// what the engine itself detects, and its owner (package call) decides
// what that means for the call.
//
// # Signalling
//
// Package call moves opaque strings between the two ends inside the E2E
// session; this package produces and checks them:
//
//	caller                               callee
//	NewCall(Outgoing: true)
//	Offer(ctx) ── offer SDP ──────────>  (policy, ring) NewCall(Outgoing: false)
//	                                     Answer(ctx, offer)
//	SetAnswer(answer) <── answer SDP ──
//	Candidates() ── candidate JSON ───>  AddRemoteCandidate
//	AddRemoteCandidate <── candidate ── Candidates()
//	Close() ─── DTLS close_notify ────>  Events(): RemoteClosed
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
// # What a connection detects
//
// Call.Events delivers, in order, what the engine detects (EventKind):
// Connected, once, when a media path is up, with its Path (direct or
// relay; the path can change later: a call that went up over a relay
// because the direct checks were slow moves to the direct path once it
// answers, and Stats reports the path taken now), and at most one final
// kind, after which the connection is
// unusable and reports nothing more: ICEFailed (no candidate pair worked, or the path
// died), DTLSFailed (the connection failed with ICE up), RemoteClosed (the
// remote's DTLS close_notify arrived) or SetupTimeout (no path within
// Config.ConnectTimeout of the offer and answer being applied). Stats are
// read when wanted. A Call does not close itself: its owner closes it when
// the call ends, for whatever reason, and only then are its media stopped
// and its Sink closed. A Bridge reports the same kinds through End, plus
// Closed (its owner closed it) and SetupFailed (the tab's offer could not
// be set up).
//
// # Goroutines
//
// pion callbacks only record what happened and wake the call's own
// goroutine, which delivers Events and Candidates and detects the connect
// timeout. Each local track has a sender goroutine and an RTCP reader, each
// remote track a reader. Call.Close tears the connection down and, like
// Engine.Close, waits for all of them.
package media
