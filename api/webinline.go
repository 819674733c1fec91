package api

import (
	"crypto/sha256"
	"encoding/base64"
	"regexp"
	"strings"
)

// On a cold load the page waits for every file it names before its first
// screen, and here each request spends 25–50 ms inside Chromium before it
// is even sent, more than the node takes to answer it (docs/BENCHMARKS.md,
// "page ready"). So the node puts two of them into the page itself: the
// early script, which then asks for the first screen's data as the parser
// meets it instead of a request later, and the style sheet, which the page
// would otherwise wait for before it runs its module. They run under the
// page's CSP by their hashes ('sha256-…'), not by allowing inline script
// or style: an injected script has no hash there. The joined module stays
// a file: the browser keeps it (immutable) and its compiled code, which a
// reload and a second visit gain more from than a cold load gains from
// having it inline (measured: docs/BENCHMARKS.md). The files stay served
// under their own names too, for a tab opened before an upgrade.

// inlinable finds the tags whose files the page carries: an async classic
// script (1: async, it runs whenever it arrives, so at once is what it
// asked for) and a style sheet (2), named under a version.
var inlinable = regexp.MustCompile(`<script src="/v/[0-9a-f]+/([^"]+)" async></script>|` +
	`<link rel="stylesheet" href="/v/[0-9a-f]+/([^"]+)">`)

// maxInline keeps a page small enough to be worth revalidating on every
// load; a larger file is left for the browser to fetch and keep.
const maxInline = 128 << 10

// inlinePage returns page with the files of its inlinable tags in place,
// and the CSP hashes of the scripts and styles it now carries. A file
// whose text would end its element early, or open an HTML comment inside
// it, stays a reference.
func inlinePage(page string, files map[string]*webFile) (string, []string, []string) {
	var scripts, styles []string
	page = inlinable.ReplaceAllStringFunc(page, func(tag string) string {
		m := inlinable.FindStringSubmatch(tag)
		p, open, end, hashes := m[1], "<script>", "</script", &scripts
		if m[2] != "" {
			p, open, end, hashes = m[2], "<style>", "</style", &styles
		}
		f := files[p]
		if f == nil || len(f.raw) > maxInline {
			return tag
		}
		body := string(f.raw)
		if low := strings.ToLower(body); strings.Contains(low, end) || strings.Contains(low, "<!--") {
			return tag
		}
		sum := sha256.Sum256(f.raw)
		*hashes = append(*hashes, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
		return open + body + end + ">"
	})
	return page, scripts, styles
}

// withHashes is policy with the hashes added to its script-src and
// style-src.
func withHashes(policy string, scripts, styles []string) string {
	for _, d := range []struct {
		name   string
		hashes []string
	}{{"script-src 'self'", scripts}, {"style-src 'self'", styles}} {
		if len(d.hashes) > 0 {
			policy = strings.Replace(policy, d.name, d.name+" "+strings.Join(d.hashes, " "), 1)
		}
	}
	return policy
}
