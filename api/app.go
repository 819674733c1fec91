package api

import (
	"net/http"
	"sync"
)

// AppState is everything the web app's first screen needs, in one answer
// (GET /api/v1/app): on loopback a page load is bound by its number of
// round trips through the browser, not by the node.
type AppState struct {
	ID            ID             `json:"id"`
	Handles       []Handle       `json:"handles"`
	Conversations []Conversation `json:"conversations"`
	Requests      []Conversation `json:"requests"`
	Contacts      []Contact      `json:"contacts"`
	Calls         []Call         `json:"calls"` // live calls, then the newest 100 of the log
}

// app answers GET /api/v1/app, asking the backend for each part at once.
func (s *Server) app(r *http.Request) (any, error) {
	b, ctx := s.cfg.Backend, r.Context()
	var st AppState
	errs := make([]error, 6)
	var wg sync.WaitGroup
	wg.Go(func() { st.ID, errs[0] = b.ID(ctx) })
	wg.Go(func() { st.Handles, errs[1] = b.Handles(ctx) })
	wg.Go(func() { st.Conversations, errs[2] = b.Conversations(ctx) })
	wg.Go(func() { st.Requests, errs[3] = b.Requests(ctx) })
	wg.Go(func() { st.Contacts, errs[4] = b.Contacts(ctx) })
	wg.Go(func() { st.Calls, errs[5] = b.CallLog(ctx, 100) })
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return st, nil
}
