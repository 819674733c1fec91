package api

import (
	"context"
	"encoding/json"
)

// MaxPageBytes caps the encoded size of a conversation page: 1000
// messages of 64 KiB would be 64 MiB and more, so a page stops before it
// would exceed 4 MiB (with at least one message), and Next continues. The
// Client reads responses of up to 16 MiB.
const MaxPageBytes = 4 << 20

// messagePage asks b for the page p selects and, if its encoding would
// exceed MaxPageBytes, again for fewer messages: as many as fit, counted
// from the page's start (oldest first) or, with Newest, from its end, so
// the backend's Next continues exactly after them.
func messagePage(ctx context.Context, b Backend, name string, p PageRequest) (MessagePage, error) {
	for {
		page, err := b.Messages(ctx, name, p)
		if err != nil {
			return page, err
		}
		n := fitting(page.Messages, p.Newest)
		if n == len(page.Messages) {
			return page, nil
		}
		p.Limit = n // fewer than the page held: the loop ends
	}
}

// fitting returns how many of ms, from the start (or from the end, with
// fromEnd), fit in MaxPageBytes as writeJSON encodes them; at least one.
func fitting(ms []Message, fromEnd bool) int {
	const overhead = 512 // per message: indentation, field names, times
	total := 1024        // the page's own fields
	for _, m := range ms {
		total += 6*len(m.Text) + overhead // \u00XX escapes at worst
	}
	if total <= MaxPageBytes {
		return len(ms)
	}
	total = 1024
	for i := range ms {
		m := ms[i]
		if fromEnd {
			m = ms[len(ms)-1-i]
		}
		b, err := json.Marshal(m)
		if err != nil {
			return max(i, 1)
		}
		if total += len(b) + overhead; total > MaxPageBytes {
			return max(i, 1)
		}
	}
	return len(ms)
}
