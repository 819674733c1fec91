package msg

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/callsign/callsign/identity"
)

// countingHandler counts the log records whose message starts with prefix.
type countingHandler struct {
	prefix string
	n      *atomic.Int64
}

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countingHandler) Handle(_ context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, h.prefix) {
		h.n.Add(1)
	}
	return nil
}
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countingHandler) WithGroup(string) slog.Handler      { return h }

// TestStampPaidOnce: a first contact's stamp is computed once per peer
// however many ask for it at once (a mailbox deposit, the sender, the
// signal lane) and used again for any later request of as many bits or
// fewer; a request for more bits pays again. Under the race detector on a
// busy machine one stamp took 7–10 s, and paying twice pushed a first
// message's delivery past 20 s.
func TestStampPaidOnce(t *testing.T) {
	acct, err := identity.GenerateAccountKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	recipient, err := identity.GenerateAccountKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	var computed atomic.Int64
	s := &Service{
		ctx: context.Background(),
		cfg: Config{Account: acct},
		log: slog.New(countingHandler{prefix: "first-contact stamp computed", n: &computed}),
	}
	ps := &peerState{acct: &acctState{}}
	ask := func(bits int) *stampError {
		return &stampError{bits: bits, recipient: recipient.Public().Bytes()}
	}

	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if err := s.solveStampFor(ps, ask(6)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := computed.Load(); n != 1 {
		t.Fatalf("four requests at once computed %d stamps, want 1", n)
	}
	if !checkStamp(acct.Public().Bytes(), recipient.Public().Bytes(), ps.acct.stamp, 6) {
		t.Fatal("the kept stamp does not check")
	}
	if err := s.solveStampFor(ps, ask(4)); err != nil {
		t.Fatal(err)
	}
	if n := computed.Load(); n != 1 {
		t.Fatalf("a request for fewer bits computed a stamp again (%d in all)", n)
	}
	if err := s.solveStampFor(ps, ask(8)); err != nil {
		t.Fatal(err)
	}
	if n := computed.Load(); n != 2 || ps.acct.stampBits != 8 || !checkStamp(acct.Public().Bytes(), recipient.Public().Bytes(), ps.acct.stamp, 8) {
		t.Fatalf("a request for more bits: %d stamps computed, kept %d bits", n, ps.acct.stampBits)
	}
}
