package media

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4/pkg/media/ivfwriter"
	"github.com/pion/webrtc/v4/pkg/media/oggwriter"
	"github.com/pion/webrtc/v4/pkg/media/samplebuilder"
)

// Sink receives the media a call receives.
type Sink interface {
	// WriteRTP is called for every RTP packet of the remote track of the
	// given kind, from one goroutine per kind. The packet is not retained
	// by the caller after WriteRTP returns. An error stops delivery of that
	// kind to the sink; the call goes on.
	WriteRTP(kind Kind, p *rtp.Packet) error
	// Close is called once, after the last WriteRTP, when the call ends.
	Close() error
}

// Recorder is a Sink that records incoming audio to an Ogg/Opus file and
// incoming video to an IVF/VP8 file. Video is reassembled into whole
// frames with a jitter buffer, so reordered packets are put back in order
// and a frame with a lost packet is dropped rather than written corrupt.
type Recorder struct {
	audio *oggwriter.OggWriter
	video *ivfwriter.IVFWriter
	vsb   *samplebuilder.SampleBuilder

	closeOnce sync.Once
	closeErr  error
}

// maxLateVideoPackets is how many packets the video jitter buffer holds
// before it gives up on a missing one.
const maxLateVideoPackets = 256

// NewRecorder creates the recording files now, so a bad path fails before
// the call starts. An empty path leaves that kind unrecorded.
func NewRecorder(audioPath, videoPath string) (*Recorder, error) {
	r := &Recorder{}
	if audioPath != "" {
		w, err := oggwriter.New(audioPath, opusClockRate, opusChannels)
		if err != nil {
			return nil, fmt.Errorf("media: create audio recording: %w", err)
		}
		r.audio = w
	}
	if videoPath != "" {
		w, err := ivfwriter.New(videoPath, ivfwriter.WithCodec("video/VP8"))
		if err != nil {
			if r.audio != nil {
				_ = r.audio.Close()
			}
			return nil, fmt.Errorf("media: create video recording: %w", err)
		}
		r.setVideo(w)
	}
	return r, nil
}

// newRecorderTo records to writers (tests and fuzzing).
func newRecorderTo(audio, video io.Writer) (*Recorder, error) {
	a, err := oggwriter.NewWith(audio, opusClockRate, opusChannels)
	if err != nil {
		return nil, err
	}
	v, err := ivfwriter.NewWith(video, ivfwriter.WithCodec("video/VP8"))
	if err != nil {
		return nil, err
	}
	r := &Recorder{audio: a}
	r.setVideo(v)
	return r, nil
}

func (r *Recorder) setVideo(w *ivfwriter.IVFWriter) {
	r.video = w
	r.vsb = samplebuilder.New(maxLateVideoPackets, &codecs.VP8Packet{}, vp8ClockRate)
}

// WriteRTP records p. It implements Sink.
func (r *Recorder) WriteRTP(kind Kind, p *rtp.Packet) error {
	switch kind {
	case KindAudio:
		if r.audio == nil {
			return nil
		}
		return r.audio.WriteRTP(p)
	case KindVideo:
		if r.video == nil {
			return nil
		}
		r.vsb.Push(p.Clone())
		return r.drainVideo()
	}
	return nil
}

func (r *Recorder) drainVideo() error {
	for s := r.vsb.Pop(); s != nil; s = r.vsb.Pop() {
		if len(s.Data) == 0 {
			continue
		}
		// Hand the whole frame to ivfwriter as one RTP packet with a
		// minimal VP8 payload descriptor (S=1, partition 0).
		payload := make([]byte, 1+len(s.Data))
		payload[0] = 0x10
		copy(payload[1:], s.Data)
		if err := r.video.WriteRTP(&rtp.Packet{
			Header:  rtp.Header{Version: 2, Marker: true, Timestamp: s.PacketTimestamp},
			Payload: payload,
		}); err != nil {
			return err
		}
	}
	return nil
}

// Close flushes the buffered video frames and finishes both files. It is
// idempotent.
func (r *Recorder) Close() error {
	r.closeOnce.Do(func() {
		var errs []error
		if r.audio != nil {
			errs = append(errs, r.audio.Close())
		}
		if r.video != nil {
			r.vsb.Flush()
			errs = append(errs, r.drainVideo(), r.video.Close())
		}
		r.closeErr = errors.Join(errs...)
	})
	return r.closeErr
}
