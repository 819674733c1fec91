// Package files holds the attachments of messages — files, photos and
// voice notes — and moves them between nodes (issue 14).
//
// A file is sealed once, under its own random key, in chunks (seal.go:
// the STREAM construction with ChaCha20-Poly1305), and kept sealed in the
// node's files directory under the SHA-256 of its sealed bytes (Store). The
// message that carries it holds a Ref: the hash, the key, the size, the
// name and media type, a photo's thumbnail, a voice note's length. A
// recipient's node fetches the sealed bytes from the sender's device over
// /callsign/file/1.0.0 (Service.Fetch): a download that stops half way
// keeps what arrived and resumes from there, and the file appears in the
// store only whole and matching its hash, or not at all.
//
// The package knows no messages, accounts or storage engine: the node
// decides who may fetch what (Config.Allow) and when to fetch.
package files
