// Package backend implements the local API (api.Backend) on top of the
// services the node wires: what a person does with their account —
// handles, the address book, messages, calls, settings — and the event
// stream that tells every client about it.
//
// It holds no service of its own: the node builds the store, the DHT,
// messaging, calls and the media engine, and hands them to New through the
// small interfaces declared here (Node, Directory, Messenger, Calls,
// Bridges, CallSettings). Contacts and trust on first use are the contacts
// package's, shared with the node's message and call policies. A name is
// resolved at most once per operation (target). Every error a domain
// package returns reaches the API through one function, apiError
// (errors.go), which gives it its code and, where the call site knows
// better, its words and hint.
//
// It must not import node (node imports it) nor serve HTTP (api does). Its
// only goroutines are the watchers of browser calls and of the media a
// call holds (browser.go), which Close ends.
package backend

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/call"
	"github.com/callsign/callsign/contacts"
	"github.com/callsign/callsign/devices"
	"github.com/callsign/callsign/dht"
	"github.com/callsign/callsign/group"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/media"
	"github.com/callsign/callsign/msg"
	"github.com/callsign/callsign/store"
)

// Node is what the backend asks of the node that wires it: the node's own
// state as the API shows it, and the publication of this account's handles.
type Node interface {
	ID(ctx context.Context) (api.ID, error)
	Status(ctx context.Context) (api.Status, error)
	Peers(ctx context.Context) ([]api.Peer, error)
	// Handles lists this account's handles, the self-certifying one first.
	Handles(ctx context.Context) ([]api.Handle, error)
	// Claim claims the normalised handle name on the DHT, reporting each
	// stage to progress, keeps a claim that succeeded and republishes the
	// identity record with it before returning.
	Claim(ctx context.Context, name string, progress func(dht.ClaimStage)) (*dht.ClaimResult, error)
	// Restore checks backup against passphrase and this node's account
	// (never used), answers with what it holds and has the node restart
	// with its account; errors.ErrUnsupported when nothing would restart
	// the node.
	Restore(ctx context.Context, backup []byte, passphrase string) (api.Restoring, error)
	// Linking a new device to the account (docs/DEVICES.md §1), and the
	// account's devices: as api.Backend's methods of the same names.
	StartLink(ctx context.Context, req api.LinkRequest) (api.LinkOffer, error)
	LinkStatus(ctx context.Context) (api.LinkStatus, error)
	ConfirmLink(ctx context.Context, sas string) (api.LinkStatus, error)
	CancelLink(ctx context.Context) (api.LinkStatus, error)
	JoinAccount(ctx context.Context, req api.JoinRequest) (api.LinkStatus, error)
	JoinStatus(ctx context.Context) (api.LinkStatus, error)
	ConfirmJoin(ctx context.Context, match bool) (api.LinkStatus, error)
	CancelJoin(ctx context.Context) (api.LinkStatus, error)
	Devices(ctx context.Context) ([]api.OwnDevice, error)
	RevokeDevice(ctx context.Context, id string) (api.OwnDevice, error)
}

// Directory resolves names and accounts (the DHT).
type Directory interface {
	Resolve(ctx context.Context, name string) (*dht.Resolution, error)
	ResolveIdentity(ctx context.Context, id identity.AccountID) (*dht.IdentityRecord, error)
}

// Messenger sends messages and receipts (msg.Service).
type Messenger interface {
	// Send returns once the message is durable in the outbox.
	Send(ctx context.Context, to identity.AccountID, text []byte) (msg.Message, error)
	// SendFile is Send of a text carrying an attachment's reference.
	SendFile(ctx context.Context, to identity.AccountID, text, file []byte) (msg.Message, error)
	// SendMessage is Send of a reply (Outgoing.ReplyTo).
	SendMessage(ctx context.Context, to identity.AccountID, out msg.Outgoing) (msg.Message, error)
	// SetTimer sets a conversation's disappearing-message timer.
	SetTimer(ctx context.Context, to identity.AccountID, d time.Duration) (msg.Message, error)
	// SendAction sends a reaction, edit or delete and applies it here.
	SendAction(ctx context.Context, to identity.AccountID, a msg.Action, text []byte) (msg.Message, error)
	MarkRead(ctx context.Context, from identity.AccountID, ids []string) error
}

// Calls places and handles calls (call.Service).
type Calls interface {
	Dial(ctx context.Context, to identity.AccountID, opts call.DialOptions) (*call.Call, error)
	Answer(id string, opts call.AnswerOptions) error
	Decline(id string) error
	Hangup(id string) error
	Fail(id string) error
	Calls() []*call.Call
}

// Bridges makes the connections that carry a browser tab's media
// (media.Engine).
type Bridges interface {
	NewBridge(cfg media.BridgeConfig) (*media.Bridge, error)
}

// CallSettings holds the user's call settings, which the node's call
// policy reads.
type CallSettings interface {
	Get() api.CallSettings
	// Update changes the settings with f and keeps them, or changes
	// nothing when keeping them fails.
	Update(f func(*api.CallSettings)) (api.CallSettings, error)
}

// Metrics counts what the backend does (the node's Prometheus metrics).
type Metrics interface {
	// Message counts a message stored (in) or queued (out); request: it
	// came from a stranger.
	Message(direction string, request bool)
}

// Config configures a Service. Every field but the optional ones is
// required.
type Config struct {
	Self         identity.AccountPub // this node's account
	Node         Node
	DB           *store.DB // conversations, messages and the call log
	Contacts     *contacts.Book
	Directory    Directory
	Messages     Messenger
	Files        Files        // nil: no attachments
	Groups       Groups       // nil: no group chats
	Typer        Typer        // nil: no typing indicators
	Calls        Calls        // nil: calls are not available on this node
	Bridges      Bridges      // nil: no calls with a browser tab's media
	CallSettings CallSettings // required with Calls
	// BrowserConnectTimeout bounds a tab's connection to the node; 0 =
	// media.DefaultBridgeConnectTimeout.
	BrowserConnectTimeout time.Duration
	Metrics               Metrics      // nil = none
	Logger                *slog.Logger // nil = discard
	// BackupParams are the Argon2id cost and chunk size of backups; zero
	// = devices.DefaultBackupParams.
	BackupParams devices.BackupParams
}

// Service implements api.Backend. It is safe for concurrent use.
type Service struct {
	log            *slog.Logger
	self           identity.AccountPub
	node           Node
	db             *store.DB
	contacts       *contacts.Book
	dir            Directory
	msgs           Messenger
	files          Files  // nil: none
	groups         Groups // nil: none
	typer          Typer  // nil: none
	typing         typingState
	calls          Calls // nil: none
	bridges        Bridges
	settings       CallSettings
	connectTimeout time.Duration
	metrics        Metrics
	backupParams   devices.BackupParams

	namesMu sync.Mutex
	names   map[identity.AccountID]string // handles looked up for group members who are no contacts
	lookups chan group.ID                 // groups with members to name (nameLoop)
	ctx     context.Context               // ends at Close: nameLoop
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	events *hub
	media  *callMedia  // the media resources calls hold: tab bridges, live streams
	recent recentCalls // ended calls of this run, for clients that poll them
}

var _ api.Backend = (*Service)(nil)

// New returns a Service over the services in cfg. Close ends it.
func New(cfg Config) *Service {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.BackupParams == (devices.BackupParams{}) {
		cfg.BackupParams = devices.DefaultBackupParams
	}
	s := &Service{backupParams: cfg.BackupParams, log: log, self: cfg.Self, node: cfg.Node, db: cfg.DB, contacts: cfg.Contacts, dir: cfg.Directory,
		msgs: cfg.Messages, files: cfg.Files, groups: cfg.Groups, typer: cfg.Typer, calls: cfg.Calls, bridges: cfg.Bridges, settings: cfg.CallSettings,
		connectTimeout: cfg.BrowserConnectTimeout, metrics: cfg.Metrics,
		events: newHub(), media: newCallMedia(), lookups: make(chan group.ID, 64)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if s.groups != nil {
		s.wg.Go(s.nameLoop)
	}
	return s
}

// Close ends the browser bridges and releases the media of every call
// (before the call service closes: a tab's bridge ends with its call),
// waits for their watchers and for the look-up of group members' names,
// and ends every event subscription. It is idempotent.
func (s *Service) Close() error {
	err := s.media.close()
	s.cancel()
	s.wg.Wait()
	s.events.close()
	return err
}

// ID implements api.Backend.
func (s *Service) ID(ctx context.Context) (_ api.ID, err error) {
	defer mapError(&err)
	return s.node.ID(ctx)
}

// Status implements api.Backend.
func (s *Service) Status(ctx context.Context) (_ api.Status, err error) {
	defer mapError(&err)
	return s.node.Status(ctx)
}

// Peers implements api.Backend.
func (s *Service) Peers(ctx context.Context) (_ []api.Peer, err error) {
	defer mapError(&err)
	return s.node.Peers(ctx)
}

// Subscribe implements api.Backend.
func (s *Service) Subscribe(ctx context.Context) (<-chan api.Event, func()) {
	return s.events.subscribe(ctx)
}

func (s *Service) countMessage(direction string, request bool) {
	if s.metrics != nil {
		s.metrics.Message(direction, request)
	}
}
