package media

import "time"

// EventKind names what a peer connection detected by itself. The call's
// lifecycle (ringing, answered, ended and why) is package call's; media
// reports only what the engine sees of the connection.
type EventKind string

// What a connection detects. A Call reports Connected at most once, then at
// most one final kind, and nothing after it: the connection is unusable
// and its owner closes it.
const (
	// Connected: a media path is up; Event.Path says which kind. Reported
	// once, the first time.
	Connected EventKind = "connected"
	// ICEFailed: no candidate pair worked, or the selected path died.
	// Final.
	ICEFailed EventKind = "ice-failed"
	// DTLSFailed: the connection failed while ICE had not: the DTLS
	// handshake or the secure transport over the path. Final.
	DTLSFailed EventKind = "dtls-failed"
	// RemoteClosed: the remote closed the connection (its DTLS
	// close_notify arrived). Final.
	RemoteClosed EventKind = "remote-closed"
	// SetupTimeout: no media path within Config.ConnectTimeout of the
	// remote description being applied. Final.
	SetupTimeout EventKind = "setup-timeout"

	// Closed: closed by its owner. Never an Event of a Call (its owner
	// knows); a Bridge's End when the node or its call closed it.
	Closed EventKind = "closed"
	// SetupFailed: a Bridge could not set up the connection its tab
	// offered. A Bridge's End only.
	SetupFailed EventKind = "setup-failed"
)

// Final reports whether k ends the connection: every kind but Connected.
func (k EventKind) Final() bool { return k != Connected && k != "" }

// Event is one thing a Call's peer connection detected, delivered in order
// on Call.Events.
type Event struct {
	Kind EventKind
	// Path is the path the media takes when Kind is Connected.
	Path Path
	// At is when the engine detected it.
	At time.Time
}
