package dht

import (
	"context"
	"fmt"
	"sync/atomic"

	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p/core/network"
)

// What the DHT serves, counted for an operator's metrics as plain
// counters (the node exports them; dht imports no metrics library).
//
// A request is counted once, by its kad message type, when kad-dht has
// decoded it (its OnRequestHook): served when the first byte of the answer
// is written, refused when the stream is reset before an answer (the
// incumbent guard refusing a PUT_VALUE, a record that does not validate, a
// provider request on a DHT without providers, an answer that could not be
// written). A message refused before kad-dht decodes it (too large, a
// malformed length or body, refused memory: kadlimit.go) counts as a
// refused request of kind "unknown". A request kad-dht answers with
// nothing (none of the kinds it serves here) counts as served when the
// next one begins or the stream closes.

// Request kinds, by kad message type; kindUnknown is a message refused
// before its type was known.
const (
	kindUnknown  = len(requestKinds) - 1
	numKinds     = len(requestKinds)
	stateIdle    = 0  // kadStream.state: no request between read and answer
	stateDecoded = -1 // a message read in full, not (yet) handed to a handler
)

// requestKinds are the label values, indexed by pb.Message_MessageType.
var requestKinds = [...]string{
	pb.Message_PUT_VALUE:     "put_value",
	pb.Message_GET_VALUE:     "get_value",
	pb.Message_ADD_PROVIDER:  "add_provider",
	pb.Message_GET_PROVIDERS: "get_providers",
	pb.Message_FIND_NODE:     "find_node",
	pb.Message_PING:          "ping",
	pb.Message_PING + 1:      "unknown",
}

// kadStats counts the requests the DHT serves; safe for concurrent use.
type kadStats struct {
	served, refused [numKinds]atomic.Uint64
}

// RequestCount is how many kad requests of one kind the DHT served and
// refused since it started.
type RequestCount struct {
	// Kind is the kad message type in lower case ("find_node",
	// "get_value", "put_value", "get_providers", "add_provider", "ping"),
	// or "unknown" for a message refused before its type was read.
	Kind            string
	Served, Refused uint64
}

// Requests returns the count of every request kind, zeros included,
// always in the same order. Only a DHT in server mode serves requests.
func (d *DHT) Requests() []RequestCount {
	out := make([]RequestCount, numKinds)
	for i := range out {
		out[i] = RequestCount{Kind: requestKinds[i], Served: d.stats.served[i].Load(), Refused: d.stats.refused[i].Load()}
	}
	return out
}

// onRequest is kad-dht's OnRequestHook: the request on s, decoded, is
// about to be handled.
func (d *DHT) onRequest(_ context.Context, s network.Stream, req *pb.Message) {
	ks, ok := s.(*kadStream)
	if !ok || ks.stats == nil {
		return
	}
	k := int32(req.GetType())
	if k < 0 || int(k) >= kindUnknown {
		k = int32(kindUnknown)
	}
	ks.settle(k + 1)
}

// settle sets the stream's request state to next and counts the request
// the old state left unanswered as served (kad-dht moved on without an
// answer).
func (s *kadStream) settle(next int32) {
	if old := s.state.Swap(next); old > 0 {
		s.stats.served[old-1].Add(1)
	}
}

// answered counts the request being answered as served.
func (s *kadStream) answered() {
	if s.stats == nil {
		return
	}
	if k := s.state.Swap(stateIdle); k > 0 {
		s.stats.served[k-1].Add(1)
	}
}

// unanswered counts the request in progress, if any, as refused: the
// stream is being reset before its answer.
func (s *kadStream) unanswered() {
	if s.stats == nil {
		return
	}
	switch k := s.state.Swap(stateIdle); {
	case k > 0:
		s.stats.refused[k-1].Add(1)
	case k == stateDecoded:
		s.stats.refused[kindUnknown].Add(1)
	}
}

// Reset resets the stream, counting a request it leaves unanswered.
func (s *kadStream) Reset() error {
	s.unanswered()
	return s.Stream.Reset()
}

// ResetWithError is Reset with an error code for the peer.
func (s *kadStream) ResetWithError(code network.StreamErrorCode) error {
	s.unanswered()
	return s.Stream.ResetWithError(code)
}

// Close closes the stream; a request kad-dht handled without an answer
// counts as served.
func (s *kadStream) Close() error {
	if s.stats != nil {
		s.settle(stateIdle)
	}
	return s.Stream.Close()
}

// Records is how many DHT records the node's datastore holds.
type Records struct {
	// Identities and Handles are the identity and handle records the
	// node stores for the network, its own and its members' included. A
	// record past its age stays counted until kad-dht drops it (when
	// it is next read).
	Identities, Handles int
}

// Records counts the records in the DHT's datastore (Config.Datastore), by
// reading their keys: on a public node's disk store, about a second per
// million records.
func (d *DHT) Records(ctx context.Context) (Records, error) {
	var r Records
	var err error
	if r.Identities, err = countKeys(ctx, d.store, "/"+identityNS); err != nil {
		return Records{}, err
	}
	if r.Handles, err = countKeys(ctx, d.store, "/"+handleNS); err != nil {
		return Records{}, err
	}
	return r, nil
}

// keyCounter is a datastore that counts its keys under a prefix without
// reading their values or collecting them (diskstore.Store).
type keyCounter interface {
	CountKeys(ctx context.Context, prefix string) (int, error)
}

func countKeys(ctx context.Context, store ds.Read, prefix string) (int, error) {
	if c, ok := store.(keyCounter); ok {
		n, err := c.CountKeys(ctx, prefix)
		if err != nil {
			return 0, fmt.Errorf("count records under %s: %w", prefix, err)
		}
		return n, nil
	}
	res, err := store.Query(ctx, dsq.Query{Prefix: prefix, KeysOnly: true})
	if err != nil {
		return 0, fmt.Errorf("count records under %s: %w", prefix, err)
	}
	defer res.Close()
	n := 0
	for {
		e, ok := res.NextSync()
		if !ok {
			return n, nil
		}
		if e.Error != nil {
			return 0, fmt.Errorf("count records under %s: %w", prefix, e.Error)
		}
		n++
	}
}

// decoded marks a message read in full on a served stream: a request
// kad-dht is about to decode, counted as refused if the stream is reset
// before the hook names its kind.
func (s *kadStream) decoded() {
	if s.stats != nil {
		s.settle(stateDecoded)
	}
}
