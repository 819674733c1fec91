// Package api owns the node's local control surface: JSON over HTTP plus a
// WebSocket event stream, bound to loopback and guarded by a bearer token and
// Host/Origin checks, and the Go client the CLI uses.
//
// It must not import libp2p, pion or badger: the node implements Backend with
// plain types from this package.
//
// Routes (all under /api/v1, all but hello and session need
// "Authorization: Bearer <token>"):
//
//	GET    /hello?nonce=       Hello: the node proves it knows the token (no token; see HelloProof)
//	POST   /session            SessionRequest -> Session: a one-time ticket for the token (no token; 401 once used or expired)
//	POST   /tickets            Ticket: a new one-time sign-in ticket for the web app
//	GET    /id                 ID
//	GET    /status             Status
//	GET    /peers              []Peer
//	GET    /handles            []Handle
//	POST   /handles            ClaimRequest -> Claim (returns after the claim is confirmed by a read)
//	GET    /whois/{name}       Whois
//	GET    /contacts           []Contact
//	POST   /contacts           ContactAdd -> Contact
//	DELETE /contacts/{name}    -
//	POST   /messages                       SendRequest -> Message (returns once durable in the outbox)
//	POST   /conversations/{name}/timer     TimerRequest -> Message (the timer change)
//	POST   /conversations/{name}/messages/{id}/{react|edit|delete}  ActionRequest -> Message (as it is now)
//	GET    /conversations/{id}/messages/{id}/info  -> MessageInfo (a group message this account sent)
//	POST   /files                          multipart: to, caption, duration_ms, thumb, file (last) -> Message (api/files.go)
//	GET    /files/{peer}/{id}, /files/{id} an attachment's bytes (CodeUnavailable while it is fetched)
//	GET    /conversations                  []Conversation
//	GET    /conversations/{name}?cursor=&limit=&newest=  MessagePage, oldest first (newest=1: the newest page first, Next leads back);
//	                                                     at most MaxPageBytes encoded: a page stops early, Next set, whatever the limit
//	POST   /conversations/{name}/read      ReadRequest
//	GET    /requests                       []Conversation
//	POST   /requests/{name}/accept         Contact
//	POST   /contacts/{name}/{flag}         flag: block, unblock, follow, unfollow -> Contact
//	GET    /safety/{name}                  Safety
//	POST   /safety/{name}/confirm          Safety (marks the contact verified)
//	POST   /calls                          CallRequest -> Call (returns once the invite is sent)
//	GET    /calls?limit=                   []Call: live calls first, then the call log, newest first
//	GET    /calls/{id}                     Call
//	POST   /calls/{id}/{action}            action: answer (AnswerRequest), decline, hangup -> Call
//	POST   /calls/{id}/browser             BrowserOffer -> BrowserAnswer (a tab's media for a Browser call)
//	GET    /qr?text=                       image/png: a QR code of text (at most 512 bytes)
//	GET    /app                            AppState: the web app's first screen in one answer
//	GET    /settings/calls                 CallSettings
//	POST   /settings/calls                 CallSettingsChange -> CallSettings
//	GET    /settings/typing                TypingSettings
//	POST   /settings/typing                TypingSettings -> TypingSettings (typing indicators on or off; off by default)
//	POST   /conversations/{name}/typing    TypingRequest (the person is typing to a contact, or stopped)
//	GET    /groups                         []Group
//	POST   /groups                         GroupRequest -> Group (this account its admin)
//	GET    /groups/{id}                    Group (id, or a group's name)
//	POST   /groups/{id}/{action}           invite (GroupInvite), join, leave, remove and admin (GroupMemberRequest), rename (GroupRequest) -> Group
//	GET    /devices                        []OwnDevice
//	POST   /devices/{id}/revoke            OwnDevice
//	POST   /devices/link                   LinkRequest -> LinkOffer (this device shows a code)
//	GET    /devices/link                   LinkStatus
//	DELETE /devices/link                   LinkStatus
//	POST   /devices/link/confirm           LinkConfirm -> LinkStatus
//	POST   /devices/join                   JoinRequest -> LinkStatus (this unused node joins another's account)
//	GET    /devices/join                   LinkStatus
//	DELETE /devices/join                   LinkStatus
//	POST   /devices/join/confirm           JoinConfirm -> LinkStatus
//	GET    /events             WebSocket stream of Event
//
// GET /metrics (outside /api/v1, where Prometheus looks; the token too)
// serves the node's metrics in Prometheus' text format when configured.
// Everything else under /api/ is a JSON 404. Other paths serve the embedded
// web app, if one is configured. Request bodies are capped at MaxBody.
package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// MaxBody is the largest request body the API reads.
const MaxBody = 256 << 10

// Backend is what the server needs from the node. Methods return *Error for
// failures the user should see; any other error is reported as internal.
type Backend interface {
	ID(ctx context.Context) (ID, error)
	Status(ctx context.Context) (Status, error)
	Peers(ctx context.Context) ([]Peer, error)
	Handles(ctx context.Context) ([]Handle, error)
	ClaimHandle(ctx context.Context, name string) (Claim, error)
	Whois(ctx context.Context, name string) (Whois, error)
	Contacts(ctx context.Context) ([]Contact, error)
	AddContact(ctx context.Context, name, petname string) (Contact, error)
	RemoveContact(ctx context.Context, name string) error
	Send(ctx context.Context, to, text string) (Message, error)
	// Reply sends text quoting message replyTo of the conversation.
	Reply(ctx context.Context, to, text, replyTo string) (Message, error)
	// SetTimer sets the disappearing-message timer of the conversation
	// with name (0: off) and returns the message that says so.
	SetTimer(ctx context.Context, name string, seconds int64) (Message, error)
	// Act reacts to (react), edits (edit) or deletes for everyone
	// (delete) message id of the conversation with name, and returns it
	// as it is now.
	Act(ctx context.Context, name, id, action string, req ActionRequest) (Message, error)
	// MessageInfo says who has, and who read, message id of the group
	// name, one this account sent.
	MessageInfo(ctx context.Context, name, id string) (MessageInfo, error)
	// SendFile sends a file (its Body read to the end) with a caption.
	SendFile(ctx context.Context, up FileUpload) (Message, error)
	// File returns a message's attachment and a function that writes its
	// bytes; peer "" finds the message by its id in any conversation. A
	// file not on this node yet is CodeUnavailable (its fetch starts).
	File(ctx context.Context, peer, id string) (FileInfo, func(io.Writer) error, error)
	Conversations(ctx context.Context) ([]Conversation, error)
	Messages(ctx context.Context, name string, page PageRequest) (MessagePage, error)
	MarkRead(ctx context.Context, name string, ids []string) error
	Requests(ctx context.Context) ([]Conversation, error)
	Accept(ctx context.Context, name string) (Contact, error)
	SetContactFlag(ctx context.Context, name, flag string, on bool) (Contact, error)
	Safety(ctx context.Context, name string, confirm bool) (Safety, error)
	Dial(ctx context.Context, req CallRequest) (Call, error)
	CallInfo(ctx context.Context, id string) (Call, error)
	CallLog(ctx context.Context, limit int) ([]Call, error)
	CallAction(ctx context.Context, id, action string, req AnswerRequest) (Call, error)
	// AttachBrowser connects a browser tab's WebRTC connection to a call
	// placed or answered with Browser set, and returns the node's answer.
	AttachBrowser(ctx context.Context, id string, offer BrowserOffer) (BrowserAnswer, error)
	CallSettings(ctx context.Context) (CallSettings, error)
	ChangeCallSettings(ctx context.Context, ch CallSettingsChange) (CallSettings, error)
	// Backup returns the account's backup file sealed under the request's
	// passphrase (docs/DEVICES.md §5).
	Backup(ctx context.Context, req BackupRequest) (*Download, error)
	// Restore checks a backup against its passphrase and that this node's
	// own account was never used, answers with what the backup holds, and
	// has the node restart with the backup's account.
	Restore(ctx context.Context, req RestoreRequest) (Restoring, error)
	// StartLink shows a one-time code a new device links to this account
	// with (docs/DEVICES.md §1); LinkStatus follows it, ConfirmLink takes
	// the digits the new device shows, CancelLink ends it.
	StartLink(ctx context.Context, req LinkRequest) (LinkOffer, error)
	LinkStatus(ctx context.Context) (LinkStatus, error)
	ConfirmLink(ctx context.Context, req LinkConfirm) (LinkStatus, error)
	CancelLink(ctx context.Context) (LinkStatus, error)
	// JoinAccount makes this node, whose own account was never used, a
	// new device of another device's account (the other side of a link);
	// JoinStatus follows it, ConfirmJoin takes the person's answer to the
	// digits, CancelJoin stops it. Once linked, the node starts again.
	JoinAccount(ctx context.Context, req JoinRequest) (LinkStatus, error)
	JoinStatus(ctx context.Context) (LinkStatus, error)
	ConfirmJoin(ctx context.Context, req JoinConfirm) (LinkStatus, error)
	CancelJoin(ctx context.Context) (LinkStatus, error)
	// Groups lists the groups this account is in, invited to or was in;
	// Group returns one (by id, or by name when no other has it).
	// TypingSettings and SetTypingSettings read and change whether typing
	// indicators are on; Typing says the person is typing to name (or
	// stopped): sent to a contact only when they are on.
	TypingSettings(ctx context.Context) (TypingSettings, error)
	SetTypingSettings(ctx context.Context, s TypingSettings) (TypingSettings, error)
	Typing(ctx context.Context, name string, on bool) error
	Groups(ctx context.Context) ([]Group, error)
	Group(ctx context.Context, id string) (Group, error)
	CreateGroup(ctx context.Context, name string) (Group, error)
	// GroupAction is invite (members), join, leave (declining an
	// invitation too), remove (member), admin (member, admin) or rename
	// (name).
	GroupAction(ctx context.Context, id, action string, req GroupAction) (Group, error)
	// Devices lists this account's devices, this one among them.
	Devices(ctx context.Context) ([]OwnDevice, error)
	// RevokeDevice revokes the device whose id starts with id (docs/DEVICES.md §4).
	RevokeDevice(ctx context.Context, id string) (OwnDevice, error)
	// Subscribe returns a stream of events until cancel is called or ctx
	// ends. Slow subscribers lose events rather than block the node.
	Subscribe(ctx context.Context) (events <-chan Event, cancel func())
}

// ServerConfig configures a Server.
type ServerConfig struct {
	Addr    string  // listen address; must be a loopback host. "" = 127.0.0.1:0
	Token   string  // bearer token; required, at least 32 characters
	Backend Backend // required
	Web     fs.FS   // the web app; nil = none
	// Metrics serves GET /metrics (Prometheus' text format), behind the
	// token like the API; nil = 404.
	Metrics http.Handler
	Logger  *slog.Logger
}

// Server is the local API server.
type Server struct {
	cfg  ServerConfig
	log  *slog.Logger
	srv  *http.Server
	ln   net.Listener
	addr string

	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	once    sync.Once
	tickets tickets // the web app's sign-in tickets
}

// NewServer validates cfg.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Backend == nil {
		return nil, errors.New("api: no backend")
	}
	if len(cfg.Token) < 32 {
		return nil, errors.New("api: token too short")
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("api: listen address %q: %w", cfg.Addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("api: listen address %q is not loopback; the local API only listens on 127.0.0.1 or ::1", cfg.Addr)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{cfg: cfg, log: log, ctx: ctx, cancel: cancel}, nil
}

// Start binds the listener and serves in the background. It returns once
// the address is bound.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("api: listen on %s: %w", s.cfg.Addr, err)
	}
	s.ln = ln
	s.addr = ln.Addr().String()
	s.srv = &http.Server{
		Handler:           s.handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return s.ctx },
	}
	s.wg.Go(func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Warn("api server stopped", "err", err)
		}
	})
	return nil
}

// Addr is the bound host:port, valid after Start.
func (s *Server) Addr() string { return s.addr }

// Close shuts the server down, giving in-flight requests up to 5 seconds,
// and waits for every goroutine it started. It is idempotent.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		s.cancel() // ends event streams and request contexts
		if s.srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err = s.srv.Shutdown(ctx); err != nil {
				err = s.srv.Close()
			}
		}
		s.wg.Wait()
	})
	return err
}

func (s *Server) handler() http.Handler {
	mux := http.NewServeMux()
	j := s.jsonHandler
	b := s.cfg.Backend
	mux.HandleFunc("GET /api/v1/hello", j(s.hello))
	mux.HandleFunc("POST /api/v1/session", j(s.session))
	mux.HandleFunc("POST /api/v1/tickets", j(s.newTicket))
	mux.HandleFunc("GET /api/v1/id", j(func(r *http.Request) (any, error) { return b.ID(r.Context()) }))
	mux.HandleFunc("GET /api/v1/status", j(func(r *http.Request) (any, error) { return b.Status(r.Context()) }))
	mux.HandleFunc("GET /api/v1/peers", j(func(r *http.Request) (any, error) { return b.Peers(r.Context()) }))
	mux.HandleFunc("GET /api/v1/handles", j(func(r *http.Request) (any, error) { return b.Handles(r.Context()) }))
	mux.HandleFunc("POST /api/v1/handles", j(func(r *http.Request) (any, error) {
		var req ClaimRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return b.ClaimHandle(r.Context(), req.Name)
	}))
	mux.HandleFunc("GET /api/v1/whois/{name}", j(func(r *http.Request) (any, error) {
		return b.Whois(r.Context(), r.PathValue("name"))
	}))
	mux.HandleFunc("GET /api/v1/contacts", j(func(r *http.Request) (any, error) { return b.Contacts(r.Context()) }))
	mux.HandleFunc("POST /api/v1/contacts", j(func(r *http.Request) (any, error) {
		var req ContactAdd
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return b.AddContact(r.Context(), req.Name, req.As)
	}))
	mux.HandleFunc("DELETE /api/v1/contacts/{name}", j(func(r *http.Request) (any, error) {
		return struct{}{}, b.RemoveContact(r.Context(), r.PathValue("name"))
	}))
	mux.HandleFunc("POST /api/v1/messages", j(func(r *http.Request) (any, error) {
		var req SendRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		if req.ReplyTo != "" {
			return b.Reply(r.Context(), req.To, req.Text, req.ReplyTo)
		}
		return b.Send(r.Context(), req.To, req.Text)
	}))
	mux.HandleFunc("POST /api/v1/conversations/{name}/timer", j(func(r *http.Request) (any, error) {
		var req TimerRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return b.SetTimer(r.Context(), r.PathValue("name"), req.Seconds)
	}))
	mux.HandleFunc("POST /api/v1/conversations/{name}/messages/{id}/{action}", j(func(r *http.Request) (any, error) {
		var req ActionRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		switch a := r.PathValue("action"); a {
		case "react", "edit", "delete":
			return b.Act(r.Context(), r.PathValue("name"), r.PathValue("id"), a, req)
		default:
			return nil, Errorf(CodeNotFound, "the actions are react, edit and delete", "no action %q", a)
		}
	}))
	mux.HandleFunc("GET /api/v1/conversations/{name}/messages/{id}/info", j(func(r *http.Request) (any, error) {
		return b.MessageInfo(r.Context(), r.PathValue("name"), r.PathValue("id"))
	}))
	mux.HandleFunc("POST /api/v1/files", s.uploadFile)
	mux.HandleFunc("GET /api/v1/files/{id}", s.getFile)
	mux.HandleFunc("GET /api/v1/files/{peer}/{id}", s.getFile)
	mux.HandleFunc("GET /api/v1/conversations", j(func(r *http.Request) (any, error) { return b.Conversations(r.Context()) }))
	mux.HandleFunc("GET /api/v1/conversations/{name}", j(func(r *http.Request) (any, error) {
		q := r.URL.Query()
		page := PageRequest{Cursor: q.Get("cursor")}
		if l := q.Get("limit"); l != "" {
			n, err := strconv.Atoi(l)
			if err != nil || n < 0 || n > 1000 {
				return nil, Errorf(CodeBadRequest, "", "limit must be 0 to 1000")
			}
			page.Limit = n
		}
		switch q.Get("newest") {
		case "", "0", "false":
		case "1", "true":
			page.Newest = true
		default:
			return nil, Errorf(CodeBadRequest, "", "newest must be 1 or 0")
		}
		return messagePage(r.Context(), b, r.PathValue("name"), page)
	}))
	mux.HandleFunc("POST /api/v1/conversations/{name}/read", j(func(r *http.Request) (any, error) {
		var req ReadRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return struct{}{}, b.MarkRead(r.Context(), r.PathValue("name"), req.IDs)
	}))
	mux.HandleFunc("GET /api/v1/requests", j(func(r *http.Request) (any, error) { return b.Requests(r.Context()) }))
	mux.HandleFunc("POST /api/v1/requests/{name}/accept", j(func(r *http.Request) (any, error) {
		return b.Accept(r.Context(), r.PathValue("name"))
	}))
	mux.HandleFunc("POST /api/v1/contacts/{name}/{flag}", j(func(r *http.Request) (any, error) {
		flag, on := r.PathValue("flag"), true
		switch flag {
		case "unblock", "unfollow":
			flag, on = flag[2:], false
		case "block", "follow":
		default:
			return nil, Errorf(CodeNotFound, "", "no such contact action %q", flag)
		}
		return b.SetContactFlag(r.Context(), r.PathValue("name"), flag, on)
	}))
	mux.HandleFunc("GET /api/v1/safety/{name}", j(func(r *http.Request) (any, error) {
		return b.Safety(r.Context(), r.PathValue("name"), false)
	}))
	mux.HandleFunc("POST /api/v1/safety/{name}/confirm", j(func(r *http.Request) (any, error) {
		return b.Safety(r.Context(), r.PathValue("name"), true)
	}))
	mux.HandleFunc("POST /api/v1/calls", j(func(r *http.Request) (any, error) {
		var req CallRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return b.Dial(r.Context(), req)
	}))
	mux.HandleFunc("GET /api/v1/calls", j(func(r *http.Request) (any, error) {
		limit := 100
		if l := r.URL.Query().Get("limit"); l != "" {
			n, err := strconv.Atoi(l)
			if err != nil || n < 1 || n > 1000 {
				return nil, Errorf(CodeBadRequest, "", "limit must be 1 to 1000")
			}
			limit = n
		}
		return b.CallLog(r.Context(), limit)
	}))
	mux.HandleFunc("GET /api/v1/calls/{id}", j(func(r *http.Request) (any, error) { return b.CallInfo(r.Context(), r.PathValue("id")) }))
	mux.HandleFunc("POST /api/v1/calls/{id}/{action}", j(func(r *http.Request) (any, error) {
		var req AnswerRequest
		if r.ContentLength != 0 {
			if err := decode(r, &req); err != nil {
				return nil, err
			}
		}
		return b.CallAction(r.Context(), r.PathValue("id"), r.PathValue("action"), req)
	}))
	mux.HandleFunc("POST /api/v1/calls/{id}/browser", j(func(r *http.Request) (any, error) {
		var req BrowserOffer
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return b.AttachBrowser(r.Context(), r.PathValue("id"), req)
	}))
	mux.HandleFunc("GET /api/v1/qr", s.qr)
	mux.HandleFunc("GET /api/v1/app", j(s.app))
	mux.HandleFunc("GET /api/v1/settings/calls", j(func(r *http.Request) (any, error) { return b.CallSettings(r.Context()) }))
	mux.HandleFunc("POST /api/v1/settings/calls", j(func(r *http.Request) (any, error) {
		var ch CallSettingsChange
		if err := decode(r, &ch); err != nil {
			return nil, err
		}
		return b.ChangeCallSettings(r.Context(), ch)
	}))
	mux.HandleFunc("POST /api/v1/backup", j(func(r *http.Request) (any, error) {
		var req BackupRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return b.Backup(r.Context(), req)
	}))
	mux.HandleFunc("POST /api/v1/restore", s.jsonHandlerLimit(MaxRestoreBody, func(r *http.Request) (any, error) {
		var req RestoreRequest
		if err := decodeLimit(r, &req, MaxRestoreBody); err != nil {
			if e, ok := errors.AsType[*Error](err); ok && e.Code == CodeTooLarge {
				e.Hint = "restore a backup this large with `callsign up --restore FILE`"
			}
			return nil, err
		}
		return b.Restore(r.Context(), req)
	}))
	mux.HandleFunc("GET /api/v1/settings/typing", j(func(r *http.Request) (any, error) { return b.TypingSettings(r.Context()) }))
	mux.HandleFunc("POST /api/v1/settings/typing", j(func(r *http.Request) (any, error) {
		var req TypingSettings
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return b.SetTypingSettings(r.Context(), req)
	}))
	mux.HandleFunc("POST /api/v1/conversations/{name}/typing", j(func(r *http.Request) (any, error) {
		var req TypingRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return struct{}{}, b.Typing(r.Context(), r.PathValue("name"), req.Typing)
	}))
	mux.HandleFunc("GET /api/v1/groups", j(func(r *http.Request) (any, error) { return b.Groups(r.Context()) }))
	mux.HandleFunc("POST /api/v1/groups", j(func(r *http.Request) (any, error) {
		var req GroupRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return b.CreateGroup(r.Context(), req.Name)
	}))
	mux.HandleFunc("GET /api/v1/groups/{id}", j(func(r *http.Request) (any, error) { return b.Group(r.Context(), r.PathValue("id")) }))
	mux.HandleFunc("POST /api/v1/groups/{id}/{action}", j(func(r *http.Request) (any, error) {
		var req GroupAction
		action := r.PathValue("action")
		switch action {
		case "join", "leave":
		case "invite":
			var in GroupInvite
			if err := decode(r, &in); err != nil {
				return nil, err
			}
			if len(in.Members) == 0 {
				return nil, Errorf(CodeBadRequest, "", "invite whom? members is empty")
			}
			req.Members = in.Members
		case "remove", "admin":
			var in GroupMemberRequest
			if err := decode(r, &in); err != nil {
				return nil, err
			}
			if in.Member == "" {
				return nil, Errorf(CodeBadRequest, "", "member is missing")
			}
			req.Members, req.Admin = []string{in.Member}, in.Admin
		case "rename":
			var in GroupRequest
			if err := decode(r, &in); err != nil {
				return nil, err
			}
			req.Name = in.Name
		default:
			return nil, Errorf(CodeNotFound, "", "no group action %q: invite, join, leave, remove, admin or rename", action)
		}
		return b.GroupAction(r.Context(), r.PathValue("id"), action, req)
	}))
	mux.HandleFunc("GET /api/v1/devices", j(func(r *http.Request) (any, error) { return b.Devices(r.Context()) }))
	mux.HandleFunc("POST /api/v1/devices/{id}/revoke", j(func(r *http.Request) (any, error) { return b.RevokeDevice(r.Context(), r.PathValue("id")) }))
	mux.HandleFunc("POST /api/v1/devices/link", j(func(r *http.Request) (any, error) {
		var req LinkRequest
		if r.ContentLength != 0 {
			if err := decode(r, &req); err != nil {
				return nil, err
			}
		}
		return b.StartLink(r.Context(), req)
	}))
	mux.HandleFunc("GET /api/v1/devices/link", j(func(r *http.Request) (any, error) { return b.LinkStatus(r.Context()) }))
	mux.HandleFunc("DELETE /api/v1/devices/link", j(func(r *http.Request) (any, error) { return b.CancelLink(r.Context()) }))
	mux.HandleFunc("POST /api/v1/devices/link/confirm", j(func(r *http.Request) (any, error) {
		var req LinkConfirm
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return b.ConfirmLink(r.Context(), req)
	}))
	mux.HandleFunc("POST /api/v1/devices/join", j(func(r *http.Request) (any, error) {
		var req JoinRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return b.JoinAccount(r.Context(), req)
	}))
	mux.HandleFunc("GET /api/v1/devices/join", j(func(r *http.Request) (any, error) { return b.JoinStatus(r.Context()) }))
	mux.HandleFunc("DELETE /api/v1/devices/join", j(func(r *http.Request) (any, error) { return b.CancelJoin(r.Context()) }))
	mux.HandleFunc("POST /api/v1/devices/join/confirm", j(func(r *http.Request) (any, error) {
		var req JoinConfirm
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return b.ConfirmJoin(r.Context(), req)
	}))
	mux.HandleFunc("GET /api/v1/events", s.events)
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Metrics == nil {
			writeError(w, Errorf(CodeNotFound, "", "this node serves no metrics"))
			return
		}
		s.cfg.Metrics.ServeHTTP(w, r)
	})
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, Errorf(CodeNotFound, "run `callsign --help` for what the API offers", "no such API route: %s %s", r.Method, r.URL.Path))
	})
	if s.cfg.Web != nil {
		mux.Handle("/", newWebHandler(s.cfg.Web, s.log))
	}
	return s.guard(mux)
}

// guard is the one middleware chain: Host check (DNS rebinding), Origin
// check (cross-site requests and WebSockets), then the bearer token for
// /api/ routes but the two that take none (withoutToken).
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !loopbackHost(r.Host) {
			writeError(w, Errorf(CodeForbidden, "", "host %q not allowed: the local API answers only to localhost", r.Host))
			return
		}
		if o := r.Header.Get("Origin"); o != "" && !sameOrigin(o, r.Host) {
			writeError(w, Errorf(CodeForbidden, "", "origin %q not allowed", o))
			return
		}
		if (strings.HasPrefix(r.URL.Path, "/api/") || r.URL.Path == "/metrics") && !withoutToken(r) && !s.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="callsign"`)
			writeError(w, Errorf(CodeUnauthorized, "the token is in the node's data directory (api.token)", "missing or wrong API token"))
			return
		}
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

func (s *Server) authorized(r *http.Request) bool {
	got := ""
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
		got = strings.TrimPrefix(h, "Bearer ")
	} else if r.URL.Path == "/api/v1/events" {
		// Browsers can't set headers on a WebSocket; the web app passes
		// the token as a query parameter on this one route (Origin is
		// checked above).
		got = r.URL.Query().Get("token")
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.Token)) == 1
}

func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func sameOrigin(origin, host string) bool {
	for _, scheme := range []string{"http://", "https://"} {
		if rest, ok := strings.CutPrefix(origin, scheme); ok {
			return loopbackHost(rest) && portOf(rest) == portOf(host)
		}
	}
	return false
}

func portOf(hostport string) string {
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return ""
	}
	return p
}

func (s *Server) jsonHandler(f func(r *http.Request) (any, error)) http.HandlerFunc {
	return s.jsonHandlerLimit(MaxBody, f)
}

// jsonHandlerLimit is jsonHandler with the request body capped at limit
// bytes instead of MaxBody.
func (s *Server) jsonHandlerLimit(limit int64, f func(r *http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		v, err := f(r)
		if err != nil {
			writeError(w, s.apiError(r, err))
			return
		}
		if d, ok := v.(*Download); ok {
			h := w.Header()
			h.Set("Content-Type", "application/octet-stream")
			h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": d.Name}))
			h.Set("Cache-Control", "no-store")
			_, _ = w.Write(d.Data)
			return
		}
		writeJSON(w, http.StatusOK, v)
	}
}

// apiError is err as the API reports it: an *Error as it is, a canceled
// or expired request as unavailable, anything else as internal (logged).
func (s *Server) apiError(r *http.Request, err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return Errorf(CodeUnavailable, "try again; the network may still be starting", "%s", err.Error())
	}
	s.log.Warn("api request failed", "route", r.Pattern, "err", err)
	return Errorf(CodeInternal, "", "%s", err.Error())
}

func decode(r *http.Request, v any) error { return decodeLimit(r, v, MaxBody) }

// decodeLimit decodes a body capped at limit bytes (by the caller's
// MaxBytesReader) into v.
func decodeLimit(r *http.Request, v any, limit int) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return Errorf(CodeTooLarge, "", "request body over %d bytes", limit)
		}
		return Errorf(CodeBadRequest, "", "bad request body: %v", err)
	}
	if dec.More() {
		return Errorf(CodeBadRequest, "", "bad request body: trailing data")
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, e *Error) {
	if e.Status == 0 {
		e.Status = statusOf(e.Code)
	}
	writeJSON(w, e.Status, e)
}

var upgrader = websocket.Upgrader{
	ReadBufferSize:  1 << 10,
	WriteBufferSize: 16 << 10,
	// The guard middleware already checked Origin against Host.
	CheckOrigin: func(*http.Request) bool { return true },
}

// events streams Backend events over a WebSocket until the client goes
// away or the server closes. The client sends nothing; whatever it sends
// is read (capped) and dropped so that control frames are processed.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	// Subscribed before the handshake is answered: a client that acts as
	// soon as it has the stream (Client.Events returned), such as
	// `callsign call` dialling, sees every event its action causes.
	events, unsubscribe := s.cfg.Backend.Subscribe(ctx)
	defer unsubscribe()
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade already replied
	}

	conn.SetReadLimit(4 << 10)
	readDone := make(chan struct{})
	go func() { // owned here: ends when conn is closed below
		defer close(readDone)
		defer cancel()
		for {
			if _, _, err := conn.NextReader(); err != nil {
				return
			}
		}
	}()
	ping := time.NewTicker(30 * time.Second)
	defer ping.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case ev, ok := <-events:
			if !ok {
				break loop
			}
			_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if err := conn.WriteJSON(ev); err != nil {
				break loop
			}
		case <-ping.C:
			if err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(5*time.Second)); err != nil {
				break loop
			}
		}
	}
	_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, ""), time.Now().Add(time.Second))
	conn.Close()
	<-readDone
}

// ContentSecurityPolicy is sent with every file of the web app: scripts
// and styles only from the app's own files (no inline script, no eval; the
// page adds the hashes of the app's files it carries inline, webinline.go),
// images from the app, the API (fetched as blobs) and data: URLs, media
// from the WebRTC connection (blob:), connections to the node's own API
// and event stream only, no plugins, no framing.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; " +
	"media-src 'self' blob: mediastream:; connect-src 'self' ws://127.0.0.1:* ws://localhost:* ws://[::1]:*; " +
	"font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
