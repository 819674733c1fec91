package api

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// Files in the data directory through which every CLI subcommand finds its
// node from --data alone.
const (
	AddrFile  = "api.addr"  // host:port of the running node's API
	TokenFile = "api.token" // bearer token, mode 0600
	LockFile  = "lock"      // flock held by the running node
)

// NewToken returns a fresh random bearer token.
func NewToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("bug: crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b)
}

// WriteEndpoint records the API address and token in dir, the token with
// mode 0600. Files are written atomically (temp file + rename).
func WriteEndpoint(dir, addr, token string) error {
	if err := writeFileAtomic(filepath.Join(dir, TokenFile), []byte(token+"\n"), 0o600); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, AddrFile), []byte(addr+"\n"), 0o644)
}

// RemoveEndpoint removes the address file (the node is no longer serving).
func RemoveEndpoint(dir string) {
	os.Remove(filepath.Join(dir, AddrFile))
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Client talks to a node's local API.
//
// It sends the token only to its own node: every connection it opens
// first asks GET /api/v1/hello with a fresh nonce, and carries the token
// only if the server answers with HelloProof for the nonce and the
// address the connection reached, which takes knowing the token. A
// listener on a port the node left behind (or one relaying to the node)
// gets the nonce and nothing else.
type Client struct {
	addr, token, dataDir string
	hc                   *http.Client
}

// helloTimeout bounds a connection's hello when the request has no
// earlier deadline.
const helloTimeout = 10 * time.Second

// NewClient returns a client for the API at addr (host:port, as the node
// wrote it in AddrFile).
func NewClient(addr, token string) *Client {
	c := &Client{addr: addr, token: token}
	c.hc = &http.Client{Transport: &http.Transport{
		Proxy:               nil, // never send the token through a proxy
		DialContext:         c.dial,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     30 * time.Second,
	}}
	return c
}

// DialDataDir returns a client for the node that runs with data directory
// dir, from the address and token the node wrote there. It fails, and
// reads no token, when no node holds dir's lock: the address is then left
// over from a node that did not stop cleanly, and another program may
// listen there now.
func DialDataDir(dir string) (*Client, error) {
	notRunning := func(why string) error {
		return &Error{Code: CodeUnavailable, Message: fmt.Sprintf("no node is running with data directory %s%s", dir, why),
			Hint: fmt.Sprintf("start one with: callsign up --data %s", dir)}
	}
	addr, err := os.ReadFile(filepath.Join(dir, AddrFile))
	if err != nil {
		return nil, notRunning("")
	}
	running, err := nodeRunning(dir)
	if err != nil {
		return nil, &Error{Code: CodeUnavailable, Message: fmt.Sprintf("cannot tell whether a node runs with data directory %s: %v", dir, err),
			Hint: "run the command as the user that runs the node"}
	}
	if !running {
		return nil, notRunning(fmt.Sprintf(" (%s is left over from a node that did not stop cleanly; the API token was not sent)", AddrFile))
	}
	token, err := os.ReadFile(filepath.Join(dir, TokenFile))
	if err != nil {
		return nil, &Error{Code: CodeUnauthorized, Message: fmt.Sprintf("cannot read the API token: %v", err),
			Hint: "run the command as the user that runs the node"}
	}
	c := NewClient(strings.TrimSpace(string(addr)), strings.TrimSpace(string(token)))
	c.dataDir = dir
	return c, nil
}

// nodeRunning reports whether a node holds dir's lock. It takes a shared
// lock for a moment to find out; a node starting just then retries its
// own (see node.takeLock).
func nodeRunning(dir string) (bool, error) {
	f, err := os.Open(filepath.Join(dir, LockFile))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	switch err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); {
	case err == nil:
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return false, nil
	case errors.Is(err, syscall.EWOULDBLOCK):
		return true, nil
	default:
		return false, fmt.Errorf("lock %s: %w", LockFile, err)
	}
}

// dial opens a connection to the node and has it prove that it knows the
// token before the connection carries it (see Client).
func (c *Client) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if err := c.hello(ctx, conn); err != nil {
		conn.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, c.notOurNode(err)
	}
	return conn, nil
}

// hello runs GET /api/v1/hello on conn and checks the proof.
func (c *Client) hello(ctx context.Context, conn net.Conn) error {
	nonce := make([]byte, helloNonceSize)
	if _, err := rand.Read(nonce); err != nil {
		panic("bug: crypto/rand failed: " + err.Error())
	}
	deadline := time.Now().Add(helloTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := conn.SetDeadline(deadline); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	req, err := http.NewRequest(http.MethodGet, "http://"+c.addr+"/api/v1/hello?nonce="+hex.EncodeToString(nonce), nil)
	if err != nil {
		return err
	}
	if err := req.Write(conn); err != nil {
		return err
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	if err != nil {
		return err
	}
	var h Hello
	proof, perr := []byte(nil), json.Unmarshal(body, &h)
	if perr == nil {
		proof, perr = hex.DecodeString(h.Proof)
	}
	switch {
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("hello answered %s", resp.Status)
	case perr != nil:
		return fmt.Errorf("hello: %w", perr)
	case br.Buffered() != 0:
		return errors.New("hello: bytes after the answer")
	case !hmac.Equal(proof, HelloProof(c.token, nonce, conn.RemoteAddr().String())):
		return errors.New("hello: wrong proof")
	}
	if !stop() {
		return ctx.Err()
	}
	return conn.SetDeadline(time.Time{})
}

// notOurNode is the error for an API address whose server did not prove
// that it knows the token (why says how).
func (c *Client) notOurNode(why error) error {
	e := &Error{Code: CodeUnavailable, Message: fmt.Sprintf("the program at %s did not prove it is the node that wrote the API token (%v); the token was not sent", c.addr, why)}
	if c.dataDir != "" {
		e.Hint = fmt.Sprintf("the node in %s may have stopped uncleanly and left %s behind: restart it with: callsign up --data %s", c.dataDir, AddrFile, c.dataDir)
	} else {
		e.Hint = "check the address and the token"
	}
	return e
}

// Addr is the API address the client talks to.
func (c *Client) Addr() string { return c.addr }

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// maxResponse caps what the client reads of one answer (a page of messages
// is at most 4 MiB encoded; a backup without messages is far smaller).
const maxResponse = 64 << 20

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+c.addr+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.transportError(err)
	}
	defer resp.Body.Close()
	return readJSON(resp, out)
}

func (c *Client) transportError(err error) error {
	var ae *Error
	if errors.As(err, &ae) { // from dial: the server did not prove itself
		return ae
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return err
	}
	var op *net.OpError
	if errors.Is(err, syscall.ECONNREFUSED) || errors.As(err, &op) {
		e := &Error{Code: CodeUnavailable, Message: fmt.Sprintf("no node answers at %s", c.addr)}
		if c.dataDir != "" {
			e.Hint = fmt.Sprintf("start it with: callsign up --data %s", c.dataDir)
		}
		return e
	}
	return err
}

// ID returns the node's identity.
func (c *Client) ID(ctx context.Context) (ID, error) {
	var v ID
	return v, c.do(ctx, http.MethodGet, "/api/v1/id", nil, &v)
}

// Status returns the node's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var v Status
	return v, c.do(ctx, http.MethodGet, "/api/v1/status", nil, &v)
}

// Peers lists connected peers.
func (c *Client) Peers(ctx context.Context) ([]Peer, error) {
	var v []Peer
	return v, c.do(ctx, http.MethodGet, "/api/v1/peers", nil, &v)
}

// Handles lists the handles this node holds.
func (c *Client) Handles(ctx context.Context) ([]Handle, error) {
	var v []Handle
	return v, c.do(ctx, http.MethodGet, "/api/v1/handles", nil, &v)
}

// Claim claims name; it returns once the claim is confirmed by a read, or
// with Status "taken" and the holder.
func (c *Client) Claim(ctx context.Context, name string) (Claim, error) {
	var v Claim
	return v, c.do(ctx, http.MethodPost, "/api/v1/handles", ClaimRequest{Name: name}, &v)
}

// Whois resolves a handle, a self-certifying handle or an account id.
func (c *Client) Whois(ctx context.Context, name string) (Whois, error) {
	var v Whois
	return v, c.do(ctx, http.MethodGet, "/api/v1/whois/"+url.PathEscape(name), nil, &v)
}

// Contacts lists the local address book.
func (c *Client) Contacts(ctx context.Context) ([]Contact, error) {
	var v []Contact
	return v, c.do(ctx, http.MethodGet, "/api/v1/contacts", nil, &v)
}

// AddContact resolves name and pins its key in the address book.
func (c *Client) AddContact(ctx context.Context, name, petname string) (Contact, error) {
	var v Contact
	return v, c.do(ctx, http.MethodPost, "/api/v1/contacts", ContactAdd{Name: name, As: petname}, &v)
}

// RemoveContact removes a contact by petname, handle or account id.
func (c *Client) RemoveContact(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/contacts/"+url.PathEscape(name), nil, nil)
}

// Send queues a message; it returns once the message is durable in the
// node's outbox.
func (c *Client) Send(ctx context.Context, to, text string) (Message, error) {
	var v Message
	return v, c.do(ctx, http.MethodPost, "/api/v1/messages", SendRequest{To: to, Text: text}, &v)
}

// Reply sends text quoting message replyTo of the conversation with to.
func (c *Client) Reply(ctx context.Context, to, text, replyTo string) (Message, error) {
	var v Message
	return v, c.do(ctx, http.MethodPost, "/api/v1/messages", SendRequest{To: to, Text: text, ReplyTo: replyTo}, &v)
}

// SetTimer sets the disappearing-message timer of the conversation with
// name (0: off).
func (c *Client) SetTimer(ctx context.Context, name string, seconds int64) (Message, error) {
	var v Message
	return v, c.do(ctx, http.MethodPost, "/api/v1/conversations/"+url.PathEscape(name)+"/timer", TimerRequest{Seconds: seconds}, &v)
}

// Act reacts to, edits or deletes for everyone (action react, edit or
// delete) message id of the conversation with name.
func (c *Client) Act(ctx context.Context, name, id, action string, req ActionRequest) (Message, error) {
	var v Message
	return v, c.do(ctx, http.MethodPost, "/api/v1/conversations/"+url.PathEscape(name)+"/messages/"+url.PathEscape(id)+"/"+url.PathEscape(action), req, &v)
}

// MessageInfo says who has, and who read, message id of the group name,
// one this account sent.
func (c *Client) MessageInfo(ctx context.Context, name, id string) (MessageInfo, error) {
	var v MessageInfo
	return v, c.do(ctx, http.MethodGet, "/api/v1/conversations/"+url.PathEscape(name)+"/messages/"+url.PathEscape(id)+"/info", nil, &v)
}

// Conversations lists conversations, most recent first.
func (c *Client) Conversations(ctx context.Context) ([]Conversation, error) {
	var v []Conversation
	return v, c.do(ctx, http.MethodGet, "/api/v1/conversations", nil, &v)
}

// Messages returns one page of the conversation with name, oldest first.
func (c *Client) Messages(ctx context.Context, name, cursor string, limit int) (MessagePage, error) {
	return c.MessagePage(ctx, name, PageRequest{Cursor: cursor, Limit: limit})
}

// MessagePage returns the page of the conversation with name that p selects.
func (c *Client) MessagePage(ctx context.Context, name string, p PageRequest) (MessagePage, error) {
	var v MessagePage
	q := url.Values{}
	if p.Cursor != "" {
		q.Set("cursor", p.Cursor)
	}
	if p.Limit > 0 {
		q.Set("limit", strconv.Itoa(p.Limit))
	}
	if p.Newest {
		q.Set("newest", "1")
	}
	path := "/api/v1/conversations/" + url.PathEscape(name)
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	return v, c.do(ctx, http.MethodGet, path, nil, &v)
}

// MarkRead marks messages from name read (nil ids: all of them).
func (c *Client) MarkRead(ctx context.Context, name string, ids []string) error {
	return c.do(ctx, http.MethodPost, "/api/v1/conversations/"+url.PathEscape(name)+"/read", ReadRequest{IDs: ids}, nil)
}

// Requests lists message requests.
func (c *Client) Requests(ctx context.Context) ([]Conversation, error) {
	var v []Conversation
	return v, c.do(ctx, http.MethodGet, "/api/v1/requests", nil, &v)
}

// Accept accepts a message request: the sender becomes a contact.
func (c *Client) Accept(ctx context.Context, name string) (Contact, error) {
	var v Contact
	return v, c.do(ctx, http.MethodPost, "/api/v1/requests/"+url.PathEscape(name)+"/accept", nil, &v)
}

// ContactAction runs block, unblock, follow or unfollow on a contact.
func (c *Client) ContactAction(ctx context.Context, name, action string) (Contact, error) {
	var v Contact
	return v, c.do(ctx, http.MethodPost, "/api/v1/contacts/"+url.PathEscape(name)+"/"+url.PathEscape(action), nil, &v)
}

// Safety returns the safety number with a contact; confirm marks it
// verified.
func (c *Client) Safety(ctx context.Context, name string, confirm bool) (Safety, error) {
	var v Safety
	if confirm {
		return v, c.do(ctx, http.MethodPost, "/api/v1/safety/"+url.PathEscape(name)+"/confirm", nil, &v)
	}
	return v, c.do(ctx, http.MethodGet, "/api/v1/safety/"+url.PathEscape(name), nil, &v)
}

// Dial starts a call; it returns once the invite is sent.
func (c *Client) Dial(ctx context.Context, req CallRequest) (Call, error) {
	var v Call
	return v, c.do(ctx, http.MethodPost, "/api/v1/calls", req, &v)
}

// Call returns one call, live or from the log.
func (c *Client) Call(ctx context.Context, id string) (Call, error) {
	var v Call
	return v, c.do(ctx, http.MethodGet, "/api/v1/calls/"+url.PathEscape(id), nil, &v)
}

// Calls lists live calls, then the call log, newest first.
func (c *Client) Calls(ctx context.Context, limit int) ([]Call, error) {
	var v []Call
	return v, c.do(ctx, http.MethodGet, "/api/v1/calls?limit="+strconv.Itoa(max(limit, 1)), nil, &v)
}

// CallAction answers, declines or hangs up a call.
func (c *Client) CallAction(ctx context.Context, id, action string, req *AnswerRequest) (Call, error) {
	var v Call
	var body any
	if req != nil {
		body = req
	}
	return v, c.do(ctx, http.MethodPost, "/api/v1/calls/"+url.PathEscape(id)+"/"+url.PathEscape(action), body, &v)
}

// AttachBrowser hands a browser tab's offer to a Browser call and returns
// the node's answer.
func (c *Client) AttachBrowser(ctx context.Context, id string, offer BrowserOffer) (BrowserAnswer, error) {
	var v BrowserAnswer
	return v, c.do(ctx, http.MethodPost, "/api/v1/calls/"+url.PathEscape(id)+"/browser", offer, &v)
}

// CallSettings returns the call settings.
func (c *Client) CallSettings(ctx context.Context) (CallSettings, error) {
	var v CallSettings
	return v, c.do(ctx, http.MethodGet, "/api/v1/settings/calls", nil, &v)
}

// ChangeCallSettings changes the call settings.
func (c *Client) ChangeCallSettings(ctx context.Context, ch CallSettingsChange) (CallSettings, error) {
	var v CallSettings
	return v, c.do(ctx, http.MethodPost, "/api/v1/settings/calls", ch, &v)
}

// Backup returns the account's backup file sealed under the request's
// passphrase.
func (c *Client) Backup(ctx context.Context, req BackupRequest) ([]byte, error) {
	var b []byte
	return b, c.do(ctx, http.MethodPost, "/api/v1/backup", req, &b)
}

// Restore sends the backup file to a node whose own account was never
// used; the node answers with the backup's account and restarts with it.
func (c *Client) Restore(ctx context.Context, backup []byte, passphrase string) (Restoring, error) {
	var r Restoring
	return r, c.do(ctx, http.MethodPost, "/api/v1/restore", RestoreRequest{Backup: backup, Passphrase: passphrase}, &r)
}

// NewTicket asks the node for a one-time sign-in ticket for the web app.
func (c *Client) NewTicket(ctx context.Context) (Ticket, error) {
	var v Ticket
	return v, c.do(ctx, http.MethodPost, "/api/v1/tickets", nil, &v)
}

// Events opens the event stream. The returned channel closes when ctx ends
// or the node goes away.
func (c *Client) Events(ctx context.Context) (<-chan Event, error) {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, Proxy: nil, NetDialContext: c.dial}
	h := http.Header{"Authorization": {"Bearer " + c.token}}
	conn, resp, err := d.DialContext(ctx, "ws://"+c.addr+"/api/v1/events", h)
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusUnauthorized {
			return nil, Errorf(CodeUnauthorized, "", "missing or wrong API token")
		}
		return nil, c.transportError(err)
	}
	conn.SetReadLimit(1 << 20)
	ch := make(chan Event, 64)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	go func() { // ends when the connection does; ctx closes it
		defer close(ch)
		defer stop()
		defer conn.Close()
		for {
			var ev Event
			if err := conn.ReadJSON(&ev); err != nil {
				return
			}
			select {
			case ch <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch, nil
}

// StartLink starts linking a new device and returns its code.
func (c *Client) StartLink(ctx context.Context, req LinkRequest) (LinkOffer, error) {
	var o LinkOffer
	return o, c.do(ctx, http.MethodPost, "/api/v1/devices/link", req, &o)
}

// LinkStatus says where the link StartLink began is.
func (c *Client) LinkStatus(ctx context.Context) (LinkStatus, error) {
	var s LinkStatus
	return s, c.do(ctx, http.MethodGet, "/api/v1/devices/link", nil, &s)
}

// ConfirmLink confirms the link with the digits the new device shows.
func (c *Client) ConfirmLink(ctx context.Context, sas string) (LinkStatus, error) {
	var s LinkStatus
	return s, c.do(ctx, http.MethodPost, "/api/v1/devices/link/confirm", LinkConfirm{SAS: sas}, &s)
}

// CancelLink ends the link StartLink began.
func (c *Client) CancelLink(ctx context.Context) (LinkStatus, error) {
	var s LinkStatus
	return s, c.do(ctx, http.MethodDelete, "/api/v1/devices/link", nil, &s)
}

// JoinAccount makes this node, whose own account was never used, a new
// device of the account of the device that shows req.Code.
func (c *Client) JoinAccount(ctx context.Context, req JoinRequest) (LinkStatus, error) {
	var s LinkStatus
	return s, c.do(ctx, http.MethodPost, "/api/v1/devices/join", req, &s)
}

// JoinStatus follows what JoinAccount started.
func (c *Client) JoinStatus(ctx context.Context) (LinkStatus, error) {
	var s LinkStatus
	return s, c.do(ctx, http.MethodGet, "/api/v1/devices/join", nil, &s)
}

// ConfirmJoin says whether the digits this node shows match the other
// device's.
func (c *Client) ConfirmJoin(ctx context.Context, match bool) (LinkStatus, error) {
	var s LinkStatus
	return s, c.do(ctx, http.MethodPost, "/api/v1/devices/join/confirm", JoinConfirm{Match: match}, &s)
}

// CancelJoin stops what JoinAccount started.
func (c *Client) CancelJoin(ctx context.Context) (LinkStatus, error) {
	var s LinkStatus
	return s, c.do(ctx, http.MethodDelete, "/api/v1/devices/join", nil, &s)
}

// Devices lists the account's devices.
func (c *Client) Devices(ctx context.Context) ([]OwnDevice, error) {
	var d []OwnDevice
	return d, c.do(ctx, http.MethodGet, "/api/v1/devices", nil, &d)
}

// RevokeDevice revokes the device whose id starts with id.
func (c *Client) RevokeDevice(ctx context.Context, id string) (OwnDevice, error) {
	var d OwnDevice
	return d, c.do(ctx, http.MethodPost, "/api/v1/devices/"+url.PathEscape(id)+"/revoke", nil, &d)
}

// Groups lists the groups this account is in, invited to or was in.
func (c *Client) Groups(ctx context.Context) ([]Group, error) {
	var v []Group
	return v, c.do(ctx, http.MethodGet, "/api/v1/groups", nil, &v)
}

// Group returns one group, by id or name.
func (c *Client) Group(ctx context.Context, id string) (Group, error) {
	var v Group
	return v, c.do(ctx, http.MethodGet, "/api/v1/groups/"+url.PathEscape(id), nil, &v)
}

// CreateGroup creates a group with this account as its admin.
func (c *Client) CreateGroup(ctx context.Context, name string) (Group, error) {
	var v Group
	return v, c.do(ctx, http.MethodPost, "/api/v1/groups", GroupRequest{Name: name}, &v)
}

// GroupAction does action (invite, join, leave, remove, admin, rename) on
// group id.
func (c *Client) GroupAction(ctx context.Context, id, action string, req GroupAction) (Group, error) {
	var body any
	switch action {
	case "invite":
		body = GroupInvite{Members: req.Members}
	case "remove", "admin":
		m := ""
		if len(req.Members) > 0 {
			m = req.Members[0]
		}
		body = GroupMemberRequest{Member: m, Admin: req.Admin}
	case "rename":
		body = GroupRequest{Name: req.Name}
	}
	var v Group
	return v, c.do(ctx, http.MethodPost, "/api/v1/groups/"+url.PathEscape(id)+"/"+url.PathEscape(action), body, &v)
}

// TypingSettings says whether typing indicators are on.
func (c *Client) TypingSettings(ctx context.Context) (TypingSettings, error) {
	var v TypingSettings
	return v, c.do(ctx, http.MethodGet, "/api/v1/settings/typing", nil, &v)
}

// SetTypingSettings turns typing indicators on or off.
func (c *Client) SetTypingSettings(ctx context.Context, s TypingSettings) (TypingSettings, error) {
	var v TypingSettings
	return v, c.do(ctx, http.MethodPost, "/api/v1/settings/typing", s, &v)
}

// Typing says the person is typing to name, or stopped.
func (c *Client) Typing(ctx context.Context, name string, on bool) error {
	return c.do(ctx, http.MethodPost, "/api/v1/conversations/"+url.PathEscape(name)+"/typing", TypingRequest{Typing: on}, nil)
}
