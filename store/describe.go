package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"
)

// keyInfo is what a key names, in the user's terms: its kind, and for
// the kinds that have them, the conversation (peer account id) and the
// id within it (a message id, a contact's account id, a setting's name).
type keyInfo struct {
	Kind string
	Peer string
	ID   string
	At   time.Time // messages and calls: the time in the key
}

// Kinds of entries, as Damage.Kind and VerifyStats.Entries name them.
const (
	KindSchema       = "schema version"
	KindCursor       = "migration cursor"
	KindSecret       = "secret"
	KindClaim        = "handle claim"
	KindBootstrap    = "bootstrap address"
	KindListenPorts  = "listen ports"
	KindCallSettings = "call settings"
	KindSetting      = "setting"
	KindContact      = "contact"
	KindPetname      = "petname"
	KindConversation = "conversation"
	KindMessage      = "message"
	KindMessageIndex = "message index"
	KindQueueStart   = "queue start"
	KindOutbox       = "outbox entry"
	KindSession      = "session"
	KindQueuedCopy   = "queued copy"
	KindCall         = "call log entry"
	KindDevices      = "device sync entry"
	KindGroup        = "group chat entry"
	KindUnknown      = "unknown entry"
)

// parseKey names the entry under k. It never fails: a key it cannot
// parse is KindUnknown, or its kind with what could be read.
func parseKey(k []byte) keyInfo {
	rest := func(p []byte) string { return string(k[len(p):]) }
	switch {
	case bytes.Equal(k, keySchema):
		return keyInfo{Kind: KindSchema}
	case bytes.Equal(k, keyMigrateCursor):
		return keyInfo{Kind: KindCursor}
	case bytes.Equal(k, keyListenPorts):
		return keyInfo{Kind: KindListenPorts}
	case bytes.Equal(k, keyCallSettings):
		return keyInfo{Kind: KindCallSettings}
	case bytes.HasPrefix(k, []byte("sec/")):
		return keyInfo{Kind: KindSecret, ID: rest([]byte("sec/"))}
	case bytes.HasPrefix(k, pfxClaim):
		return keyInfo{Kind: KindClaim, ID: rest(pfxClaim)}
	case bytes.HasPrefix(k, pfxBoot):
		return keyInfo{Kind: KindBootstrap, ID: rest(pfxBoot)}
	case bytes.HasPrefix(k, pfxSetting):
		return keyInfo{Kind: KindSetting, ID: rest(pfxSetting)}
	case bytes.HasPrefix(k, pfxContact):
		return keyInfo{Kind: KindContact, Peer: rest(pfxContact)}
	case bytes.HasPrefix(k, pfxPetname):
		return keyInfo{Kind: KindPetname, ID: rest(pfxPetname)}
	case bytes.HasPrefix(k, pfxConv):
		return keyInfo{Kind: KindConversation, Peer: rest(pfxConv)}
	case bytes.HasPrefix(k, pfxMsgID):
		peer, id, _ := bytes.Cut(k[len(pfxMsgID):], sep)
		return keyInfo{Kind: KindMessageIndex, Peer: string(peer), ID: string(id)}
	case bytes.HasPrefix(k, pfxMsg):
		ki := keyInfo{Kind: KindMessage}
		peer, tail, ok := bytes.Cut(k[len(pfxMsg):], sep)
		ki.Peer = string(peer)
		if ok && len(tail) > 8 {
			ki.At = time.Unix(0, int64(binary.BigEndian.Uint64(tail))).UTC()
			ki.ID = string(tail[8:])
		}
		return ki
	case bytes.HasPrefix(k, pfxQueueStart):
		return keyInfo{Kind: KindQueueStart, Peer: rest(pfxQueueStart)}
	case bytes.HasPrefix(k, pfxOut):
		// out/<id>, or out/<id>\0<device> for one device.
		id, _, _ := bytes.Cut(k[len(pfxOut):], sep)
		return keyInfo{Kind: KindOutbox, ID: string(id)}
	case bytes.HasPrefix(k, pfxSession):
		peer, dev, _ := bytes.Cut(k[len(pfxSession):], sep)
		ki := keyInfo{Kind: KindSession, Peer: string(peer)}
		if len(dev) > 0 {
			ki.ID = fmt.Sprintf("%x", dev)
		}
		return ki
	case bytes.HasPrefix(k, pfxQueue):
		peer, tail, _ := bytes.Cut(k[len(pfxQueue):], sep)
		ki := keyInfo{Kind: KindQueuedCopy, Peer: string(peer)}
		if len(tail) > 9 {
			ki.ID = string(tail[9:])
		}
		return ki
	case bytes.HasPrefix(k, pfxDevices):
		return keyInfo{Kind: KindDevices, ID: rest(pfxDevices)}
	case bytes.HasPrefix(k, pfxGroups):
		return keyInfo{Kind: KindGroup, ID: fmt.Sprintf("%x", k[len(pfxGroups):])}
	case bytes.HasPrefix(k, pfxCall):
		ki := keyInfo{Kind: KindCall}
		if tail := k[len(pfxCall):]; len(tail) > 8 {
			ki.At = time.Unix(0, int64(binary.BigEndian.Uint64(tail))).UTC()
			ki.ID = string(tail[8:])
		}
		return ki
	}
	return keyInfo{Kind: KindUnknown}
}

// String says what the entry is, as a person would: `message "m1" in the
// conversation with "acct"`.
func (ki keyInfo) String() string {
	s := ki.Kind
	if ki.ID != "" {
		s += fmt.Sprintf(" %q", ki.ID)
	}
	switch ki.Kind {
	case KindMessage, KindMessageIndex:
		s += fmt.Sprintf(" in the conversation with %q", ki.Peer)
	case KindQueuedCopy:
		s += fmt.Sprintf(" of a message to %q", ki.Peer)
	case KindConversation, KindQueueStart, KindSession:
		s += fmt.Sprintf(" with %q", ki.Peer)
	case KindContact:
		s += fmt.Sprintf(" %q", ki.Peer)
	}
	return s
}

// describeKey names the entry under k for an error message; unknown keys
// are quoted.
func describeKey(k []byte) string {
	ki := parseKey(k)
	if ki.Kind == KindUnknown {
		return fmt.Sprintf("entry %q", k)
	}
	return ki.String()
}
