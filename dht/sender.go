package dht

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/callsign/callsign/p2p"
	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	msmux "github.com/multiformats/go-multistream"
	"google.golang.org/protobuf/proto"
)

// maxResponseSize caps one kad answer read by the sender: a record (at most
// MaxIdentityRecordSize) plus K closer peers with their addresses fits with
// room to spare.
const maxResponseSize = 128 << 10

// kadProtocol is the protocol the sender speaks: kad-dht's protocol under
// ProtocolPrefix.
const kadProtocol = protocol.ID(ProtocolPrefix + "/kad/1.0.0")

// errBadAnswer is a kad answer that does not match its request.
var errBadAnswer = errors.New("kad answer does not match the request")

// streamSender is the pb.MessageSender behind DHT.pm, the messenger of our
// own GET_VALUE and PUT_VALUE requests (kad-dht keeps its own sender for its
// routing). It differs from kad-dht's sender in two ways that matter for
// lookup latency:
//
//   - It does not wait for identify on a new connection. Basic host's
//     NewStream blocks until identify has run on the connection (one round
//     trip) so that it can pick a protocol; we speak exactly one protocol,
//     so the stream is opened on the network directly and multistream-select
//     runs lazily, in the same round trip as the request. A peer that does
//     not speak the protocol answers "na" and the request fails. Identify
//     still runs on the connection in the background.
//   - It opens one stream per request instead of serialising requests to a
//     peer on one stream, so the handle lookup and the owner's identity
//     lookup never wait for each other at a peer they both ask.
//
// Every request is bounded by its context (the stream is reset when it
// ends) and every answer by maxResponseSize.
type streamSender struct {
	host host.Host
}

var _ pb.MessageSender = (*streamSender)(nil)

// open connects to p when not connected and opens a stream speaking
// kadProtocol, with the stream reset when ctx ends. stop must be called
// once the stream is done with.
func (s *streamSender) open(ctx context.Context, p peer.ID) (network.Stream, io.ReadWriter, func() bool, error) {
	if p == s.host.ID() {
		return nil, nil, nil, errors.New("kad request to self")
	}
	nw := s.host.Network()
	if nw.Connectedness(p) != network.Connected {
		if _, err := nw.DialPeer(ctx, p); err != nil {
			return nil, nil, nil, fmt.Errorf("dial: %w", err)
		}
	}
	str, err := nw.NewStream(network.WithNoDial(ctx, "dialled above"), p)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("open stream: %w", err)
	}
	if err := str.SetProtocol(kadProtocol); err != nil {
		str.Reset()
		return nil, nil, nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = str.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = str.Reset() })
	return str, msmux.NewMSSelect(str, kadProtocol), stop, nil
}

// writeMsg writes m as one frame (kad's framing is p2p's: a uvarint length
// and the protobuf) in one write, so that the lazy multistream header and
// the request travel together.
func writeMsg(w io.Writer, m *pb.Message) error {
	body, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	return p2p.WriteFrame(w, body)
}

// readMsg reads one framed message of at most max bytes; a larger one is
// p2p.ErrFrameTooLarge.
func readMsg(r io.Reader, max int) (*pb.Message, error) {
	body, err := p2p.ReadFrame(bufio.NewReader(r), max)
	if err != nil {
		return nil, err
	}
	m := new(pb.Message)
	if err := proto.Unmarshal(body, m); err != nil {
		return nil, fmt.Errorf("malformed kad answer: %w", err)
	}
	return m, nil
}

// SendRequest sends m to p on a new stream and returns p's answer.
func (s *streamSender) SendRequest(ctx context.Context, p peer.ID, m *pb.Message) (*pb.Message, error) {
	str, rw, stop, err := s.open(ctx, p)
	if err != nil {
		return nil, err
	}
	defer stop()
	if err := writeMsg(rw, m); err != nil {
		str.Reset()
		return nil, err
	}
	resp, err := readMsg(rw, maxResponseSize)
	if err != nil {
		str.Reset()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	_ = str.Close()
	return resp, nil
}

// SendMessage sends m to p on a new stream without waiting for an answer.
func (s *streamSender) SendMessage(ctx context.Context, p peer.ID, m *pb.Message) error {
	str, rw, stop, err := s.open(ctx, p)
	if err != nil {
		return err
	}
	defer stop()
	if err := writeMsg(rw, m); err != nil {
		str.Reset()
		return err
	}
	return str.Close()
}
