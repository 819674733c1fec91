package turn

import (
	"encoding/binary"
	"net"
	"testing"

	"github.com/pion/stun/v4"
)

// recordConn is a PacketConn that keeps what is written to it.
type recordConn struct {
	net.PacketConn
	written [][]byte
}

func (c *recordConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	c.written = append(c.written, append([]byte(nil), b...))
	return len(b), nil
}

// channelBindRequest builds a ChannelBind request for number (golden input
// for FuzzScreen).
func channelBindRequest(tb testing.TB, number uint16) []byte {
	tb.Helper()
	ch := make([]byte, 4)
	binary.BigEndian.PutUint16(ch, number)
	m, err := stun.Build(stun.TransactionID, stun.NewType(stun.MethodChannelBind, stun.ClassRequest),
		rawAttr{stun.AttrChannelNumber, ch}, xorPeer{net.IPv4(192, 0, 2, 1), 5000},
		stun.NewUsername("1700000000:alice"), stun.Fingerprint)
	if err != nil {
		tb.Fatal(err)
	}
	return m.Raw
}

// FuzzScreen feeds hostile datagrams to the pre-filter in front of pion.
// The client at src holds an allocation already at its channel cap with
// channels 0x4000 and 0x4001: screen must never panic, must consume only
// well-formed ChannelBind requests for a new channel number, and must
// answer each of those with a 508 error response of the same transaction.
func FuzzScreen(f *testing.F) {
	f.Add(channelBindRequest(f, 0x4000))
	f.Add(channelBindRequest(f, 0x4002))
	f.Add([]byte{0x40, 0x00, 0x00, 0x04, 1, 2, 3, 4})                                                    // ChannelData
	f.Add([]byte{0x00, 0x09, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}) // empty bind
	f.Add([]byte{0x00, 0x09, 0xff, 0xff, 0x21, 0x12, 0xa4, 0x42})
	s, err := New(Config{ListenUDP: "127.0.0.1:0", MaxChannelsPerAllocation: 2})
	if err != nil {
		f.Fatal(err)
	}
	src := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4242}
	s.lim.created(src, "alice")
	s.lim.channelCreated(src, 0x4000)
	s.lim.channelCreated(src, 0x4001)
	f.Fuzz(func(t *testing.T, b []byte) {
		conn := &recordConn{}
		consumed := s.screen(conn, b, src)
		req := &stun.Message{Raw: append([]byte(nil), b...)}
		decoded := req.Decode() == nil
		var number uint16
		isNewBind := false
		if decoded && req.Type == stun.NewType(stun.MethodChannelBind, stun.ClassRequest) {
			if v, err := req.Get(stun.AttrChannelNumber); err == nil && len(v) >= 2 {
				number = binary.BigEndian.Uint16(v)
				isNewBind = number != 0x4000 && number != 0x4001
			}
		}
		if consumed != isNewBind {
			t.Fatalf("screen consumed=%v for a datagram that is a new-channel bind: %v", consumed, isNewBind)
		}
		if !consumed {
			if len(conn.written) != 0 {
				t.Fatal("screen answered a datagram it passed on")
			}
			return
		}
		if len(conn.written) != 1 {
			t.Fatalf("screen wrote %d responses, want 1", len(conn.written))
		}
		res := &stun.Message{Raw: conn.written[0]}
		if err := res.Decode(); err != nil {
			t.Fatalf("response does not decode: %v", err)
		}
		var ec stun.ErrorCodeAttribute
		if res.TransactionID != req.TransactionID || res.Type.Class != stun.ClassErrorResponse ||
			ec.GetFrom(res) != nil || ec.Code != stun.CodeInsufficientCapacity {
			t.Fatalf("response %v is not a 508 for the request", res)
		}
	})
}
