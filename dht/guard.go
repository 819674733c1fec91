package dht

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	ds "github.com/ipfs/go-datastore"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/multiformats/go-base32"
	"google.golang.org/protobuf/proto"
)

// guard is the incumbent guard: the datastore kad-dht stores values in,
// wrapped so that a write of a handle record is checked against the record
// already stored.
//
// kad-dht v0.42.2's handlePutValue calls records.ValueStore.Put, which
// validates the incoming record, runs Select against the stored one (only if
// the stored one still validates, i.e. is unexpired), and then writes a
// marshalled recpb.Record to the datastore key "/csname/" +
// base32(full record key). Select is stateless and only sees two byte
// strings, so this Put, which has the stored record in hand, is where the
// refusal lives: a record for a name whose stored record is valid or within
// the grace period and belongs to another owner is refused (ErrIncumbent),
// and so is a lower seq from the same owner (ErrStaleSeq). The error makes
// handlePutValue fail, the stream is reset and the putter learns of it.
type guard struct {
	ds.Batching
	check *checker
	grace time.Duration
	// disabled (tests only) passes every write through, to simulate a node
	// without the guard.
	disabled bool

	mu sync.Mutex // serialises guarded read-compare-write
}

var _ ds.Batching = (*guard)(nil)

// valueDsKey is the datastore key kad-dht's ValueStore files a record key
// under (records/value_store.go: "/" + namespace + "/" + base32(key)).
func valueDsKey(key string) ds.Key {
	ns, _, _ := strings.Cut(strings.TrimPrefix(key, "/"), "/")
	return ds.NewKey("/" + ns + "/" + base32.RawStdEncoding.EncodeToString([]byte(key)))
}

// Put implements ds.Write.
func (g *guard) Put(ctx context.Context, key ds.Key, value []byte) error {
	if g.disabled || !strings.HasPrefix(key.String(), handlePrefix) {
		return g.Batching.Put(ctx, key, value)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.admitLocked(ctx, key, value); err != nil {
		return err
	}
	return g.Batching.Put(ctx, key, value)
}

// admitLocked decides whether value may replace what is stored under key.
func (g *guard) admitLocked(ctx context.Context, key ds.Key, value []byte) error {
	var in recpb.Record
	if err := proto.Unmarshal(value, &in); err != nil {
		return fmt.Errorf("guard: %w: %v", ErrInvalidRecord, err)
	}
	rkey := string(in.GetKey())
	if valueDsKey(rkey) != key {
		return fmt.Errorf("guard: %w", ErrWrongKey)
	}
	now := g.check.now()
	nh, err := g.check.handle(rkey, in.GetValue(), now, 0)
	if err != nil {
		return fmt.Errorf("guard: %w", err)
	}
	old, err := g.Batching.Get(ctx, key)
	if errors.Is(err, ds.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var stored recpb.Record
	if proto.Unmarshal(old, &stored) != nil || string(stored.GetKey()) != rkey {
		return nil // garbage in the store does not hold a name
	}
	oh, err := g.check.handle(rkey, stored.GetValue(), now, g.grace)
	if err != nil {
		return nil // invalid, or expired beyond grace: the name is free
	}
	if !oh.Owner.Equal(nh.Owner) {
		return ErrIncumbent
	}
	if nh.Seq < oh.Seq {
		return ErrStaleSeq
	}
	return nil
}

// Batch implements ds.Batching; batched writes go through Put.
func (g *guard) Batch(ctx context.Context) (ds.Batch, error) {
	return ds.NewBasicBatch(g), nil
}
