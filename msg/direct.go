package msg

import (
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/callsign/callsign/identity"
)

// ContactDevice reports the account p is a device of when that account is
// one the Policy delivers (a contact) or this one (a sibling), as far as
// the service knows the
// device: from looking the account up to send to it, or from a
// certificate p presented in a message. The node lets only such peers
// connect to it directly. Safe for concurrent use.
func (s *Service) ContactDevice(p peer.ID) (identity.AccountID, bool) {
	s.mu.Lock()
	acct, ok := s.byPeerID[p]
	s.mu.Unlock()
	if !ok || acct != s.selfID && s.cfg.Policy.Classify(acct) != Deliver {
		return "", false
	}
	return acct, true
}
