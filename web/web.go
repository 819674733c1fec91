// Package web holds callsign's web app, embedded in the binary with go:embed
// and served by the node's local API on loopback. It needs no build step: it
// is plain HTML and JavaScript that talk to /api/v1 with the bearer token
// the node prints in the web app's address (after #token=, so it never
// reaches a server log).
//
// It must not import anything but the standard library.
package web

import (
	"embed"
	"io/fs"
)

//go:embed app
var files embed.FS

// FS returns the web app's files, index.html at the root.
func FS() fs.FS {
	sub, err := fs.Sub(files, "app")
	if err != nil {
		panic("bug: web app not embedded: " + err.Error())
	}
	return sub
}
