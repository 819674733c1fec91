package media_test

import (
	"context"
	"fmt"

	"github.com/callsign/callsign/media"
)

// Package call's side of an outgoing call's connection: create it, send
// the offer and the trickled candidates over the E2E session, apply the
// answer, follow what the engine detects, close it when the call ends.
// send stands for the signalling.
func Example() {
	send := func(kind, payload string) {}
	engine, err := media.NewEngine(media.Config{
		ICEServers: []media.ICEServer{
			{URLs: []string{"stun:relay.example.org:3478"}},
			{URLs: []string{"turn:relay.example.org:3478?transport=udp"}, Username: "1767225600", Credential: "short-lived"},
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer engine.Close()

	call, err := engine.NewCall(media.CallConfig{
		ID: "c1", Outgoing: true,
		Source: media.Sources(media.Tone(), media.Pattern()),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer call.Close()
	offer, err := call.Offer(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	send("offer", offer)
	go func() {
		for c := range call.Candidates() {
			send("candidate", c)
		}
	}()
	// ... when the answer arrives: call.SetAnswer(answer)
	// ... for each remote candidate: call.AddRemoteCandidate(candidate)
	// ... until the call ends (hung up, declined, or a final event):
	go func() {
		for ev := range call.Events() {
			fmt.Println(ev.Kind, ev.Path) // connected direct, ice-failed, ...
		}
	}()
	call.Close()
}
