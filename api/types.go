package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// The JSON types below are a contract: the CLI prints them with --json and
// scripts rely on their field names. Add fields; never rename or remove one.

// ID is what `callsign id` shows.
type ID struct {
	Account string   `json:"account"` // typed account id, "csa1..."
	Handle  string   `json:"handle"`  // self-certifying handle, "name~suffix"
	Peer    string   `json:"peer"`    // libp2p peer id of this device
	Addrs   []string `json:"addrs"`   // full multiaddrs ending in /p2p/<peer>
	API     string   `json:"api"`     // host:port of the local API
	Name    string   `json:"name,omitempty"`
	// FileLimit is the largest attachment this node sends or fetches, in
	// bytes (a client refuses a larger one before uploading it).
	FileLimit int64 `json:"file_limit,omitempty"`
}

// Status is what `callsign status` shows.
type Status struct {
	// DeviceRevoked: this device's account revoked it (another device of
	// it ran `devices revoke`); it sends and publishes nothing more.
	DeviceRevoked bool     `json:"device_revoked,omitempty"`
	Peers         int      `json:"peers"`
	RoutingTable  int      `json:"routing_table"`
	Public        bool     `json:"public"`
	Relays        []string `json:"relays"`
	Encryption    string   `json:"encryption"` // "passphrase" or "keyfile"
	UptimeS       int64    `json:"uptime_s"`
	DataDir       string   `json:"data_dir"`
	Version       string   `json:"version"`
	// Hint says what to do while the node has no peers; "" once it has.
	Hint string `json:"hint,omitempty"`
	// Invite is how a newcomer joins: this node's own (a public node), or
	// the one this node joined with, to pass on; nil when there is none.
	Invite *Invite `json:"invite,omitempty"`
	// MDNS reports whether the node looks for nodes on the local network.
	MDNS bool `json:"mdns"`
	// Mailboxes are the community nodes that hold this node's messages
	// while it is offline.
	Mailboxes []MailboxStatus `json:"mailboxes,omitempty"`
	// Mailbox is what a public node's mailbox holds for its members; nil
	// on other nodes.
	Mailbox *MailboxHeld `json:"mailbox,omitempty"`
	// TURN is a public node's TURN relay: what it holds and its limits;
	// nil on other nodes.
	TURN *TURNStatus `json:"turn,omitempty"`
}

// TURNStatus is a public node's TURN relay.
type TURNStatus struct {
	URLs                  []string `json:"urls"`                     // what members get: UDP, TCP and TLS
	TLSCertSHA256         string   `json:"tls_cert_sha256"`          // hex; "" without TLS
	Allocations           int      `json:"allocations"`              // in use now
	Connections           int      `json:"connections"`              // TURN over TCP and TLS, open now
	MaxAllocations        int      `json:"max_allocations"`          // on the whole relay
	MaxAllocationsPerIP   int      `json:"max_allocations_per_ip"`   // per client IP
	MaxAllocationsPerUser int      `json:"max_allocations_per_user"` // per member device (peer id)
	AllocationLifetimeS   int64    `json:"allocation_lifetime_s"`    // an unrefreshed allocation ends after this
}

// MailboxStatus is one of this node's mailboxes.
type MailboxStatus struct {
	Peer       string     `json:"peer"`
	Registered bool       `json:"registered"`           // the last registration succeeded
	Waiting    int        `json:"waiting"`              // envelopes waiting there at the last look
	Drained    int        `json:"drained"`              // envelopes taken from it since the node started
	LastDrain  *time.Time `json:"last_drain,omitempty"` // nil: not drained yet
	Error      string     `json:"error,omitempty"`      // the last registration's or drain's error
	Prekeys    int        `json:"prekeys"`              // one-time prekeys it holds for first contacts with you
}

// MailboxHeld is what a public node's mailbox holds.
type MailboxHeld struct {
	Members int   `json:"members"` // accounts registered
	Waiting int   `json:"waiting"` // envelopes waiting for them
	Bytes   int64 `json:"bytes"`   // their size
	Prekeys int   `json:"prekeys"` // one-time prekeys held for their first contacts, both kinds
	// Files and FileBytes are the attachments parked whole for them (a
	// file parked for two members counts twice) and their sealed size;
	// PartialFiles are still arriving, or were cut short and wait for
	// their sender to resume: nobody can fetch them yet.
	Files        int   `json:"files"`
	FileBytes    int64 `json:"file_bytes"`
	PartialFiles int   `json:"partial_files"`
}

// Invite is what `callsign invite` shows: the text a newcomer passes to
// `callsign up --join`, and what it holds.
type Invite struct {
	Invite string   `json:"invite"`         // "callsign:join/..."
	Peer   string   `json:"peer"`           // the community node it leads to
	Addrs  []string `json:"addrs"`          // that node's addresses in it
	Name   string   `json:"name,omitempty"` // the community's name
	Own    bool     `json:"own"`            // it leads to this node (a public node)
}

// Peer is one connected peer.
type Peer struct {
	Peer      string   `json:"peer"`
	Addrs     []string `json:"addrs"`
	Direction string   `json:"direction"` // "inbound" or "outbound"
	Limited   bool     `json:"limited"`   // relayed (limited) connection
}

// Claim is the result of `callsign handle claim`.
type Claim struct {
	Name   string `json:"name"`   // normalised name
	Status string `json:"status"` // "claimed" or "taken"
	Owner  string `json:"owner"`  // account id of the holder
}

// Handle is one handle this node holds.
type Handle struct {
	Name        string    `json:"name"`
	SelfCert    bool      `json:"self_certifying"`
	ClaimedAt   time.Time `json:"claimed_at"`
	Republished time.Time `json:"republished,omitempty"`
}

// Device is one device listed in an identity record.
type Device struct {
	Peer    string    `json:"peer"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
}

// Whois is the result of `callsign whois`.
type Whois struct {
	Query      string   `json:"query"`
	Status     string   `json:"status"` // "ok", "conflict", "not_found" or "expired"
	Name       string   `json:"name"`
	Account    string   `json:"account"`
	Handle     string   `json:"handle"` // the account's self-certifying handle
	Devices    []Device `json:"devices"`
	Pinned     bool     `json:"pinned"`      // the key matches the one pinned in contacts
	KeyChanged bool     `json:"key_changed"` // the key differs from the pinned one
	// Owners lists every owner seen and how many of the closest peers
	// vouched for each, when Status is "conflict".
	Owners      []OwnerCount `json:"owners,omitempty"`
	DisplayName string       `json:"display_name,omitempty"`
	Warning     string       `json:"warning,omitempty"`
}

// OwnerCount is one side of a conflict.
type OwnerCount struct {
	Account string `json:"account"`
	Count   int    `json:"count"`
}

// Contact is one entry of the local address book.
type Contact struct {
	Account    string    `json:"account"`
	Petname    string    `json:"petname"`
	Handle     string    `json:"handle"`
	AddedAt    time.Time `json:"added_at"`
	KeyChanged bool      `json:"key_changed"`
	Verified   bool      `json:"verified"`
	Following  bool      `json:"following"`
	Blocked    bool      `json:"blocked"`
}

// ContactAdd is the body of POST /api/v1/contacts.
type ContactAdd struct {
	Name string `json:"name"`
	As   string `json:"as,omitempty"`
}

// ClaimRequest is the body of POST /api/v1/handles.
type ClaimRequest struct {
	Name string `json:"name"`
}

// Event is one entry of the WebSocket event stream (/api/v1/events).
type Event struct {
	Type string          `json:"type"`
	At   time.Time       `json:"at"`
	Data json.RawMessage `json:"data,omitempty"`
}

// NewEvent builds an Event whose Data is v encoded as JSON.
func NewEvent(typ string, v any) Event {
	data, err := json.Marshal(v)
	if err != nil {
		panic("bug: event data not encodable: " + err.Error())
	}
	return Event{Type: typ, At: time.Now().UTC(), Data: data}
}

// Error is the JSON body of every failed API call, and the error the
// client returns. Message is one lowercase line; Hint, when set, says what
// to do about it.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"error"`
	Hint    string `json:"hint,omitempty"`
}

func (e *Error) Error() string { return e.Message }

// Error codes. The CLI maps them to exit codes.
const (
	CodeBadRequest   = "bad_request"
	CodeInvalidName  = "invalid_name"
	CodeNotFound     = "not_found"
	CodeConflict     = "conflict"
	CodeUnauthorized = "unauthorized"
	CodeForbidden    = "forbidden"
	CodeUnavailable  = "unavailable"
	CodeInternal     = "internal"
	CodeTooLarge     = "too_large"
)

// Errorf builds an *Error with an HTTP status derived from code.
func Errorf(code, hint, format string, args ...any) *Error {
	return &Error{Status: statusOf(code), Code: code, Message: fmt.Sprintf(format, args...), Hint: hint}
}

func statusOf(code string) int {
	switch code {
	case CodeBadRequest, CodeInvalidName:
		return http.StatusBadRequest
	case CodeNotFound:
		return http.StatusNotFound
	case CodeConflict:
		return http.StatusConflict
	case CodeUnauthorized:
		return http.StatusUnauthorized
	case CodeForbidden:
		return http.StatusForbidden
	case CodeUnavailable:
		return http.StatusServiceUnavailable
	case CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusInternalServerError
}

// IsCode reports whether err is an *Error with the given code.
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// SendRequest is the body of POST /api/v1/messages.
type SendRequest struct {
	To   string `json:"to"`   // petname, handle, name~suffix or account id
	Text string `json:"text"` // UTF-8, at most the node's message limit
	// ReplyTo is the id of a message of the conversation this one quotes.
	ReplyTo string `json:"reply_to,omitempty"`
}

// Message is one message of a conversation. Messages are listed oldest
// first.
type Message struct {
	ID        string    `json:"id"`
	From      string    `json:"from"` // sender's account id
	To        string    `json:"to"`   // recipient's account id
	Text      string    `json:"text"`
	SentAt    time.Time `json:"sent_at"`
	State     string    `json:"state"`     // queued, sent, delivered, read, failed (out); received, read (in)
	Direction string    `json:"direction"` // "in" or "out"
	Peer      string    `json:"peer"`      // the other side's account id; a group's id in a group
	PeerName  string    `json:"peer_name,omitempty"`
	// FromName is how this account calls the sender of a group message.
	FromName string `json:"from_name,omitempty"`
	// File is the message's attachment; Text is then its caption,
	// possibly empty.
	File *FileInfo `json:"file,omitempty"`
	// ReplyTo is the id of the message this one quotes; Quote is that
	// message, when this node has it.
	ReplyTo string `json:"reply_to,omitempty"`
	Quote   *Quote `json:"quote,omitempty"`
	// Reactions are at most one per person.
	Reactions []Reaction `json:"reactions,omitempty"`
	// Edited: Text is its sender's edit. Deleted: its sender deleted it
	// for everyone (Text is "", File nil).
	Edited  bool `json:"edited,omitempty"`
	Deleted bool `json:"deleted,omitempty"`
	// ExpiresAt is when the message disappears from both sides (a
	// conversation's timer), nil when it stays.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// TimerSet is set on the message that changed the conversation's
	// disappearing-message timer: the new timer in seconds (0: off).
	TimerSet *int64 `json:"timer_set,omitempty"`
}

// MessageInfo is who has a group message this account sent
// (GET /api/v1/conversations/{id}/messages/{message}/info): of the other
// members when it was sent (Recipients), the accounts still members that
// have it, read or not, and those that read it, in the order they said
// so. Asked for one message at a time: in a group of a thousand, the
// lists of every message on a page would be megabytes.
type MessageInfo struct {
	ID          string   `json:"id"`
	Recipients  int      `json:"recipients"`
	DeliveredTo []string `json:"delivered_to"`
	ReadBy      []string `json:"read_by"`
}

// TimerRequest is the body of POST /api/v1/conversations/{name}/timer.
type TimerRequest struct {
	Seconds int64 `json:"seconds"` // 0 (off) or 5 to 31,622,400 (366 days)
}

// MessageDeleted is a message gone from this node (event
// "message-deleted"): it expired.
type MessageDeleted struct {
	Peer string `json:"peer"`
	ID   string `json:"id"`
}

// Quote is the message a reply quotes.
type Quote struct {
	ID       string `json:"id"`
	From     string `json:"from"` // its sender's account id
	Text     string `json:"text"` // its first 200 characters; "" when deleted or a file
	FileName string `json:"file_name,omitempty"`
}

// Reaction is one person's reaction to a message.
type Reaction struct {
	Emoji string `json:"emoji"`
	From  string `json:"from"` // account id
}

// ActionRequest is the body of POST
// /api/v1/conversations/{name}/messages/{id}/{react|edit|delete}.
type ActionRequest struct {
	Emoji string `json:"emoji,omitempty"` // react; "" removes this account's reaction
	Text  string `json:"text,omitempty"`  // edit
}

// FileInfo is a message's attachment as a client shows it.
type FileInfo struct {
	Name       string `json:"name"`
	Type       string `json:"type"` // media type
	Size       int64  `json:"size"` // bytes
	DurationMS int64  `json:"duration_ms,omitempty"`
	// Thumb is a photo's thumbnail as a data: URL (JPEG).
	Thumb string `json:"thumb,omitempty"`
	// State is FileReady (on this node), FileFetching or FileFailed.
	State string `json:"state"`
	// URL is where GET reads the file's bytes (with the token).
	URL string `json:"url"`
}

// States of an attachment.
const (
	FileReady    = "ready"
	FileFetching = "fetching"
	FileFailed   = "failed"
)

// FileUpload is a file a client sends (POST /api/v1/files, multipart:
// to, caption, duration_ms, thumb, then file).
type FileUpload struct {
	To         string
	Caption    string
	Name, Type string
	DurationMS int64
	Thumb      []byte
	Body       io.Reader
}

// FileState is an attachment's download progressing or ending (event
// "file"); Have and Total count its sealed bytes.
type FileState struct {
	Peer  string `json:"peer"`
	ID    string `json:"id"`
	State string `json:"state"`
	Have  int64  `json:"have"`
	Total int64  `json:"total"`
}

// MessagePage is one page of a conversation.
type MessagePage struct {
	Messages []Message `json:"messages"`
	Next     string    `json:"next,omitempty"` // cursor for the next page; empty at the end
	Warning  string    `json:"warning,omitempty"`
}

// Conversation summarises the messages with one peer.
type Conversation struct {
	Peer     string    `json:"peer"`
	PeerName string    `json:"peer_name,omitempty"`
	LastAt   time.Time `json:"last_at"`
	Unread   int       `json:"unread"`
	Request  bool      `json:"request"`        // a message request not yet accepted
	Last     *Message  `json:"last,omitempty"` // the newest message, for a preview
	// Timer is the disappearing-message timer in seconds (0: off).
	Timer int64 `json:"timer,omitempty"`
	// Group is set on a group's conversation, whose Peer is the group's
	// id and PeerName its name.
	Group *Group `json:"group,omitempty"`
}

// Group is a group chat as this account sees it. Its messages are a
// conversation whose peer is its id (GET /api/v1/conversations/{id},
// POST /api/v1/messages {to: id}); a group's routes take its id or, when
// no other group has it, its name.
type Group struct {
	ID     string `json:"id"` // 32 hex digits
	Name   string `json:"name"`
	Status string `json:"status"` // invited, joined, left, removed
	// Admin: this account may add, remove, rename and make admins.
	Admin   bool          `json:"admin"`
	Members []GroupMember `json:"members"` // the creator first
	Unread  int           `json:"unread"`
	LastAt  time.Time     `json:"last_at"`
	// InvitedBy is who added this account (account id and name).
	InvitedBy     string `json:"invited_by,omitempty"`
	InvitedByName string `json:"invited_by_name,omitempty"`
	// Request: the invitation came from someone who is still a stranger
	// (not a contact, not a member of a group this account joined); it
	// waits in the requests.
	Request bool `json:"request,omitempty"`
	// Timer is the group's disappearing-message timer in seconds (0:
	// off); its admins set it (POST /conversations/{id}/timer).
	Timer int64 `json:"timer,omitempty"`
}

// GroupMember is one member of a group.
type GroupMember struct {
	Account string `json:"account"`
	Handle  string `json:"handle,omitempty"` // @name, when this node knows it
	Name    string `json:"name,omitempty"`   // how this account calls the member
	Admin   bool   `json:"admin"`
	You     bool   `json:"you,omitempty"`
}

// GroupRequest is the body of POST /api/v1/groups and
// POST /api/v1/groups/{id}/rename.
type GroupRequest struct {
	Name string `json:"name"`
}

// GroupInvite is the body of POST /api/v1/groups/{id}/invite: handles,
// petnames or account ids.
type GroupInvite struct {
	Members []string `json:"members"`
}

// TypingSettings are GET and POST /api/v1/settings/typing: whether this
// person sends typing indicators to contacts and sees theirs (off by
// default).
type TypingSettings struct {
	On bool `json:"on"`
}

// TypingRequest is the body of POST /api/v1/conversations/{name}/typing:
// the person is typing in the conversation, or stopped.
type TypingRequest struct {
	Typing bool `json:"typing"`
}

// Typing is a contact typing, or stopping (event "typing").
type Typing struct {
	Peer     string `json:"peer"`
	PeerName string `json:"peer_name,omitempty"`
	Typing   bool   `json:"typing"`
}

// GroupAction is what a group action needs: members for invite, remove
// and admin, Admin for admin, Name for rename.
type GroupAction struct {
	Members []string
	Admin   bool
	Name    string
}

// GroupMemberRequest is the body of POST /api/v1/groups/{id}/remove and
// /admin: a member (handle, petname or account id) and, for admin,
// whether it is one from now on.
type GroupMemberRequest struct {
	Member string `json:"member"`
	Admin  bool   `json:"admin,omitempty"`
}

// PageRequest selects a page of a conversation: GET
// /api/v1/conversations/{name}?cursor=&limit=&newest=1.
type PageRequest struct {
	Cursor string // continues where the previous page's Next left off
	Limit  int    // 0 = 100, at most 1000
	// Newest pages backwards from the newest message (what a chat window
	// shows first); Next then leads to older messages. Each page is still
	// oldest first.
	Newest bool
}

// ReadRequest is the body of POST /api/v1/conversations/{name}/read.
type ReadRequest struct {
	IDs []string `json:"ids,omitempty"` // nil = every unread message
}

// Safety is the safety number of a contact: both people compare it (read
// aloud, or side by side) to verify that no one sits between them.
type Safety struct {
	Name         string `json:"name"`
	Account      string `json:"account"`
	SafetyNumber string `json:"safety_number"`
	Verified     bool   `json:"verified"`
	KeyChanged   bool   `json:"key_changed"`
}

// Event types on the event stream.
const (
	EventMessage   = "message"    // Data: Message (incoming or outgoing)
	EventState     = "state"      // Data: StateChange
	EventRequest   = "request"    // Data: Message, the first message of a request
	EventKeyChange = "key-change" // Data: KeyChange
	// EventDeviceRevoked: this device's account revoked it; it sends
	// nothing more. No data.
	EventDeviceRevoked = "device-revoked"
	// EventSynced: another device of this account changed what they
	// share. Data: Synced, what to read again.
	EventSynced = "synced"
	// EventFile: an attachment's download progressed or ended. Data:
	// FileState.
	EventFile = "file"
	// EventMessageUpdated: a reaction, an edit or a delete changed a
	// message. Data: Message, as it is now.
	EventMessageUpdated = "message-updated"
	// EventMessageDeleted: a message expired and is gone. Data:
	// MessageDeleted.
	EventMessageDeleted = "message-deleted"
	// EventTyping: a contact is typing to this person, or stopped.
	// Data: Typing. Only when typing indicators are on.
	EventTyping = "typing"
	// EventGroup: a group's name, members or this account's place in it
	// changed, or an invitation came. Data: Group.
	EventGroup = "group"
)

// Synced says what another device of this account changed here.
type Synced struct {
	Contacts     bool `json:"contacts,omitempty"`
	CallSettings bool `json:"call_settings,omitempty"`
	Calls        bool `json:"calls,omitempty"`
}

// StateChange is a message changing state.
type StateChange struct {
	ID    string `json:"id"`
	Peer  string `json:"peer"`
	State string `json:"state"`
	// Reason says why a message failed, when the recipient refused it
	// (too many of your requests wait to be accepted, or its requests are
	// full).
	Reason string `json:"reason,omitempty"`
}

// KeyChange says a contact's handle now resolves to another key.
type KeyChange struct {
	Contact string `json:"contact"`
	Handle  string `json:"handle"`
	Pinned  string `json:"pinned"`
	Now     string `json:"now"`
}

// CallRequest is the body of POST /api/v1/calls.
type CallRequest struct {
	To string `json:"to"`
	// Browser takes the call's media from a browser tab instead of Audio
	// and Video: the tab attaches its own WebRTC connection with POST
	// /api/v1/calls/{id}/browser, and the node forwards media between the
	// two connections. The invite goes out at once, without waiting for
	// the tab.
	Browser   bool   `json:"browser,omitempty"`
	Audio     string `json:"audio,omitempty"`  // "tone", or an Ogg/Opus file path on the node's machine
	Video     string `json:"video,omitempty"`  // "pattern", or an IVF/VP8 file path
	Record    string `json:"record,omitempty"` // directory to record the received media into
	RelayOnly bool   `json:"relay_only,omitempty"`
}

// AnswerRequest is the body of POST /api/v1/calls/{id}/answer.
type AnswerRequest struct {
	// Browser answers with a browser tab's media, as CallRequest.Browser.
	// Of two tabs answering one call, the first wins; the second gets a
	// conflict error.
	Browser bool   `json:"browser,omitempty"`
	Audio   string `json:"audio,omitempty"`
	Video   string `json:"video,omitempty"`
	Record  string `json:"record,omitempty"`
	// Tab answers with the connection a tab attached while the call rang
	// (BrowserAnswer.Tab), so media flows the moment the call connects;
	// the other ringing tabs' connections are closed. It implies Browser.
	Tab string `json:"tab,omitempty"`
}

// Call is a call, live or from the log. `callsign call --json` prints the
// fields up to packets_received as a contract.
type Call struct {
	ID              string    `json:"id"`
	Peer            string    `json:"peer"`
	PeerName        string    `json:"peer_name,omitempty"`
	Direction       string    `json:"direction"` // "in" or "out"
	State           string    `json:"state"`     // calling, ringing, connecting, active, ended
	EndReason       string    `json:"end_reason"`
	Path            string    `json:"path"` // "direct" or "relay" once connected
	SetupMS         int64     `json:"setup_ms"`
	PacketsSent     uint64    `json:"packets_sent"`
	PacketsReceived uint64    `json:"packets_received"`
	BytesSent       uint64    `json:"bytes_sent"`
	BytesReceived   uint64    `json:"bytes_received"`
	Loss            float64   `json:"loss"`
	RTTMS           int64     `json:"rtt_ms"`
	Start           time.Time `json:"start"`
	DurationS       float64   `json:"duration_s"`
	Blocked         bool      `json:"blocked,omitempty"`
	RelayOnly       bool      `json:"relay_only,omitempty"`
	RecordedAudio   string    `json:"recorded_audio,omitempty"`
	RecordedVideo   string    `json:"recorded_video,omitempty"`
	// Browser is set when the call's media is bridged to a browser tab.
	Browser bool `json:"browser,omitempty"`
}

// BrowserOffer is the body of POST /api/v1/calls/{id}/browser: the tab's
// SDP offer for its connection to its own node, with its candidates in it
// (gathered before sending; nothing is trickled). For a call placed or
// answered with Browser it is the call's media; for an incoming call still
// ringing it is a tab getting ready to answer (see BrowserAnswer.Tab). Audio must offer Opus
// and video VP8; the node keeps only this machine's addresses among the
// candidates, and only loopback ones when the tab offers any.
type BrowserOffer struct {
	SDP string `json:"sdp"`
}

// BrowserAnswer is the node's answer to a BrowserOffer, its candidates in
// it.
type BrowserAnswer struct {
	SDP string `json:"sdp"`
	// Tab names the connection when it was attached to an incoming call
	// still ringing: answer with AnswerRequest.Tab to use it. Each ringing
	// tab may attach one; they wait, with no media, until the call is
	// answered.
	Tab string `json:"tab,omitempty"`
}

// CallSettings are who may call and how.
type CallSettings struct {
	Policy      string            `json:"policy"` // everyone, contacts, following, verified, nobody
	AlwaysRelay bool              `json:"always_relay"`
	AutoAnswer  bool              `json:"autoanswer"`
	RecordDir   string            `json:"record_dir,omitempty"` // where auto-answered calls are recorded
	Rules       map[string]string `json:"rules,omitempty"`      // account id -> "allow" or "deny"
}

// BackupRequest is the body of POST /api/v1/backup.
type BackupRequest struct {
	// Passphrase seals the backup; at least MinBackupPassphrase
	// characters.
	Passphrase string `json:"passphrase"`
	// Messages adds every conversation and message to the backup.
	Messages bool `json:"messages,omitempty"`
}

// MinBackupPassphrase is the shortest passphrase a backup is sealed
// under, in characters: the file is made to be copied and so to be
// attacked offline.
const MinBackupPassphrase = 12

// RestoreRequest is the body of POST /api/v1/restore: a backup file to
// bring onto a node whose own account was never used.
type RestoreRequest struct {
	Backup     []byte `json:"backup"` // the file, base64 in JSON
	Passphrase string `json:"passphrase"`
}

// MaxRestoreBody caps the body of POST /api/v1/restore, the backup in
// base64: a backup without messages is a few kilobytes (ten thousand
// contacts make about two megabytes), and one with messages about 260
// bytes a message of 200; a larger one is restored with `callsign up
// --restore`.
const MaxRestoreBody = 16 << 20

// Restoring is the answer to a restore: the account the backup holds. The
// node restarts with it on the same address right after answering; the
// app waits for GET /api/v1/id to name this account, then loads again.
type Restoring struct {
	Account  string   `json:"account"`
	Handles  []string `json:"handles"`
	Contacts int      `json:"contacts"`
	Groups   int      `json:"groups"`
}

// Download is a file an API call answers with instead of JSON (the
// backup): its bytes, with the name a browser saves it under.
type Download struct {
	Name string
	Data []byte
}

// CallSettingsChange is the body of POST /api/v1/settings/calls; nil
// fields stay as they are.
type CallSettingsChange struct {
	Policy      *string `json:"policy,omitempty"`
	AlwaysRelay *bool   `json:"always_relay,omitempty"`
	AutoAnswer  *bool   `json:"autoanswer,omitempty"`
	RecordDir   *string `json:"record_dir,omitempty"`
	// Rule sets a per-contact override: Name gets "allow", "deny" or
	// "default" (remove the override).
	RuleName string `json:"rule_name,omitempty"`
	Rule     string `json:"rule,omitempty"`
}

// Call event types.
const (
	EventIncomingCall = "incoming-call" // Data: Call
	EventCallState    = "call-state"    // Data: Call
)

// EventClaimProgress reports the steps of a handle claim while it runs.
const EventClaimProgress = "claim-progress" // Data: ClaimProgress

// ClaimProgress is one step of a running claim: "lookup" (is the name
// free?), "proof-of-work" (the memory-hard puzzle, seconds for short
// names), "store" (putting the record to the closest peers) and "confirm"
// (reading it back).
type ClaimProgress struct {
	Name  string `json:"name"`
	Stage string `json:"stage"`
}

// LinkRequest is the body of POST /api/v1/devices/link (optional).
type LinkRequest struct {
	// HistoryDays is how many days of conversations the new device gets:
	// 0 none, -1 all; absent (nil) DefaultLinkHistoryDays.
	HistoryDays *int `json:"history_days,omitempty"`
}

// DefaultLinkHistoryDays is how many days of history a new device gets
// unless asked otherwise.
const DefaultLinkHistoryDays = 30

// LinkOffer is the answer to POST /api/v1/devices/link: the one-time code
// a new device types (`callsign up --link CODE`) or scans, until Expires.
type LinkOffer struct {
	Code    string    `json:"code"`
	Expires time.Time `json:"expires"`
}

// The states of a link (LinkStatus.State).
const (
	LinkWaiting    = "waiting"    // the code is shown; no device has used it
	LinkConnecting = "connecting" // a device used it; the numbers come next
	LinkSAS        = "sas"        // compare the numbers on both devices, then confirm
	LinkHandover   = "handover"   // confirmed: the account goes to the new device
	LinkLinked     = "linked"     // the new device is part of the account
	LinkFailed     = "failed"     // ended without a link: Reason says why
	LinkNone       = "none"       // no link was started since the node started
)

// LinkStatus is the answer to GET /api/v1/devices/link and to a confirm.
type LinkStatus struct {
	State string `json:"state"`
	// SAS is the six digits both devices show ("482 913"), while State is
	// "sas": the person confirms they match.
	SAS     string     `json:"sas,omitempty"`
	Expires time.Time  `json:"expires,omitzero"`
	Reason  string     `json:"reason,omitempty"` // why it failed
	Device  *OwnDevice `json:"device,omitempty"` // the new device, once linked
	// Account is, on the joining device (GET /api/v1/devices/join), the
	// account it joined, once linked: the node then starts again as a
	// device of it, and GET /api/v1/id names it when it is back.
	Account string `json:"account,omitempty"`
}

// JoinRequest is the body of POST /api/v1/devices/join: this node, whose
// own account was never used, becomes a new device of the account of the
// device that shows Code (the web app's "Link to an existing account").
type JoinRequest struct {
	Code string `json:"code"`
	Name string `json:"name,omitempty"` // this device's name; "" = the machine's
}

// JoinConfirm is the body of POST /api/v1/devices/join/confirm: whether
// the digits this node shows (LinkStatus.SAS) match the other device's.
type JoinConfirm struct {
	Match bool `json:"match"`
}

// LinkConfirm is the body of POST /api/v1/devices/link/confirm: the
// digits the new device shows. They must equal this device's; other digits
// decline the link.
type LinkConfirm struct {
	SAS string `json:"sas"`
}

// OwnDevice is one device of this account (GET /api/v1/devices).
type OwnDevice struct {
	ID      string    `json:"id"`             // identity.DeviceID's text form
	Name    string    `json:"name,omitempty"` // what the person called it; "" when this device never learnt it
	Current bool      `json:"current"`        // the device answering
	Revoked bool      `json:"revoked"`
	Added   time.Time `json:"added,omitzero"`
}
