package backend

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/call"
	"github.com/callsign/callsign/contacts"
	"github.com/callsign/callsign/devices"
	"github.com/callsign/callsign/dht"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/media"
	"github.com/callsign/callsign/msg"
	"github.com/callsign/callsign/store"
)

// sentinels is every exported sentinel error of the domain packages a
// Backend method can meet, with the API code a person (and the CLI's exit
// code) should get for it. TestEverySentinelListed keeps the list whole.
var sentinels = map[string]struct {
	err  error
	code string
}{
	"contacts.ErrNotFound":       {contacts.ErrNotFound, api.CodeNotFound},
	"contacts.ErrPetnameTaken":   {contacts.ErrPetnameTaken, api.CodeConflict},
	"contacts.ErrInvalidPetname": {contacts.ErrInvalidPetname, api.CodeBadRequest},
	"contacts.ErrKeyChanged":     {contacts.ErrKeyChanged, api.CodeConflict},

	"identity.ErrInvalidHandle":    {identity.ErrInvalidHandle, api.CodeInvalidName},
	"identity.ErrInvalidAccountID": {identity.ErrInvalidAccountID, api.CodeInvalidName},
	"identity.ErrInvalidDeviceID":  {identity.ErrInvalidDeviceID, api.CodeInvalidName},
	"identity.ErrInvalidKey":       {identity.ErrInvalidKey, api.CodeInternal},
	"identity.ErrMalformedCert":    {identity.ErrMalformedCert, api.CodeInternal},
	"identity.ErrCertSignature":    {identity.ErrCertSignature, api.CodeInternal},
	"identity.ErrCertExpired":      {identity.ErrCertExpired, api.CodeInternal},
	"identity.ErrCertNotYetValid":  {identity.ErrCertNotYetValid, api.CodeInternal},

	"dht.ErrInvalidHandle": {dht.ErrInvalidHandle, api.CodeInvalidName},
	"dht.ErrNotFound":      {dht.ErrNotFound, api.CodeNotFound},
	"dht.ErrIncumbent":     {dht.ErrIncumbent, api.CodeConflict},
	"dht.ErrNoPeers":       {dht.ErrNoPeers, api.CodeUnavailable},
	"dht.ErrNotConfirmed":  {dht.ErrNotConfirmed, api.CodeUnavailable},
	"dht.ErrBusy":          {dht.ErrBusy, api.CodeUnavailable},
	"dht.ErrClosed":        {dht.ErrClosed, api.CodeUnavailable},
	"dht.ErrStaleSeq":      {dht.ErrStaleSeq, api.CodeUnavailable},
	"dht.ErrKeepRefused":   {dht.ErrKeepRefused, api.CodeUnavailable},
	"dht.ErrBackdated":     {dht.ErrBackdated, api.CodeUnavailable},
	"dht.ErrOutOfWindow":   {dht.ErrOutOfWindow, api.CodeUnavailable},
	"dht.ErrKeepStale":     {dht.ErrKeepStale, api.CodeUnavailable},
	"dht.ErrKeepFull":      {dht.ErrKeepFull, api.CodeUnavailable},
	"dht.ErrInvalidRecord": {dht.ErrInvalidRecord, api.CodeUnavailable},
	"dht.ErrBadSignature":  {dht.ErrBadSignature, api.CodeUnavailable},
	"dht.ErrExpired":       {dht.ErrExpired, api.CodeUnavailable},
	"dht.ErrFutureDated":   {dht.ErrFutureDated, api.CodeUnavailable},
	"dht.ErrWrongKey":      {dht.ErrWrongKey, api.CodeUnavailable},
	"dht.ErrBadPoW":        {dht.ErrBadPoW, api.CodeUnavailable},
	"dht.ErrMalformed":     {dht.ErrMalformed, api.CodeUnavailable},
	"dht.ErrTooLarge":      {dht.ErrTooLarge, api.CodeInternal},

	"msg.ErrTooLarge":          {msg.ErrTooLarge, api.CodeTooLarge},
	"msg.ErrBadRecipient":      {msg.ErrBadRecipient, api.CodeBadRequest},
	"msg.ErrNotYours":          {msg.ErrNotYours, api.CodeForbidden},
	"msg.ErrTooLate":           {msg.ErrTooLate, api.CodeConflict},
	"msg.ErrDeviceRevoked":     {msg.ErrDeviceRevoked, api.CodeConflict},
	"msg.ErrClosed":            {msg.ErrClosed, api.CodeUnavailable},
	"msg.ErrSignalTooLarge":    {msg.ErrSignalTooLarge, api.CodeInternal},
	"msg.ErrSignalUndelivered": {msg.ErrSignalUndelivered, api.CodeUnavailable},

	"call.ErrInCall":      {call.ErrInCall, api.CodeConflict},
	"call.ErrSelf":        {call.ErrSelf, api.CodeBadRequest},
	"call.ErrNotRinging":  {call.ErrNotRinging, api.CodeConflict},
	"call.ErrUnknownCall": {call.ErrUnknownCall, api.CodeNotFound},
	"call.ErrClosed":      {call.ErrClosed, api.CodeUnavailable},
	"call.ErrMalformed":   {call.ErrMalformed, api.CodeInternal},

	"media.ErrBadSDP":       {media.ErrBadSDP, api.CodeBadRequest},
	"media.ErrBadCandidate": {media.ErrBadCandidate, api.CodeBadRequest},
	"media.ErrBadClip":      {media.ErrBadClip, api.CodeBadRequest},
	"media.ErrSignal":       {media.ErrSignal, api.CodeConflict},
	"media.ErrEnded":        {media.ErrEnded, api.CodeConflict},
	"media.ErrWrongRole":    {media.ErrWrongRole, api.CodeConflict},
	"media.ErrTooMany":      {media.ErrTooMany, api.CodeBadRequest},
	"media.ErrClosed":       {media.ErrClosed, api.CodeUnavailable},
	"media.ErrBridged":      {media.ErrBridged, api.CodeInternal},

	"store.ErrCorrupt":            {store.ErrCorrupt, api.CodeInternal},
	"store.ErrNotFound":           {store.ErrNotFound, api.CodeNotFound},
	"store.ErrInvalid":            {store.ErrInvalid, api.CodeBadRequest},
	"store.ErrPetnameTaken":       {store.ErrPetnameTaken, api.CodeConflict},
	"store.ErrTxnTooBig":          {store.ErrTxnTooBig, api.CodeTooLarge},
	"store.ErrClosed":             {store.ErrClosed, api.CodeUnavailable},
	"store.ErrInUse":              {store.ErrInUse, api.CodeInternal},
	"store.ErrWrongPassphrase":    {store.ErrWrongPassphrase, api.CodeInternal},
	"store.ErrNeedPassphrase":     {store.ErrNeedPassphrase, api.CodeInternal},
	"store.ErrHasKeyFile":         {store.ErrHasKeyFile, api.CodeInternal},
	"store.ErrKeyFileMode":        {store.ErrKeyFileMode, api.CodeInternal},
	"store.ErrKeyMissing":         {store.ErrKeyMissing, api.CodeInternal},
	"store.ErrKeyMismatch":        {store.ErrKeyMismatch, api.CodeInternal},
	"store.ErrSchemaTooNew":       {store.ErrSchemaTooNew, api.CodeInternal},
	"store.ErrPortableKind":       {store.ErrPortableKind, api.CodeBadRequest},
	"store.ErrAccountInUse":       {store.ErrAccountInUse, api.CodeConflict},
	"store.ErrRestoreInterrupted": {store.ErrRestoreInterrupted, api.CodeInternal},

	"devices.ErrWrongPassphrase": {devices.ErrWrongPassphrase, api.CodeBadRequest},
	"devices.ErrBackupNewer":     {devices.ErrBackupNewer, api.CodeBadRequest},
	"devices.ErrBackupTruncated": {devices.ErrBackupTruncated, api.CodeBadRequest},
	"devices.ErrBackupDamaged":   {devices.ErrBackupDamaged, api.CodeBadRequest},
	"devices.ErrLinkBusy":        {devices.ErrLinkBusy, api.CodeConflict},
	"devices.ErrLinkSpent":       {devices.ErrLinkSpent, api.CodeBadRequest},
	"devices.ErrLinkWrongCode":   {devices.ErrLinkWrongCode, api.CodeBadRequest},
	"devices.ErrLinkExpired":     {devices.ErrLinkExpired, api.CodeBadRequest},
	"devices.ErrLinkCode":        {devices.ErrLinkCode, api.CodeBadRequest},
	"devices.ErrLinkDeclined":    {devices.ErrLinkDeclined, api.CodeConflict},
	"devices.ErrLinkCanceled":    {devices.ErrLinkCanceled, api.CodeConflict},
	"devices.ErrLinkMismatch":    {devices.ErrLinkMismatch, api.CodeConflict},
	"devices.ErrLinkFrame":       {devices.ErrLinkFrame, api.CodeUnavailable},
	"devices.ErrLinkTooLarge":    {devices.ErrLinkTooLarge, api.CodeTooLarge},
	"devices.ErrRevoked":         {devices.ErrRevoked, api.CodeConflict},
	"devices.ErrMalformed":       {devices.ErrMalformed, api.CodeInternal},
}

// TestAPIError maps every sentinel, however the call site wrapped it, to
// its code, keeping the error's words; what a call site adds (words, a
// hint, a network failure's mark) never changes the code.
func TestAPIError(t *testing.T) {
	for name, s := range sentinels {
		for _, err := range []error{
			s.err,
			fmt.Errorf("look up alice: %w", s.err),
			explain(s.err, "a hint of the call site", "the call site's words"),
			onNetwork(fmt.Errorf("resolve @alice: %w", s.err)),
		} {
			e, ok := apiError(err).(*api.Error)
			if !ok {
				t.Errorf("%s: %q is not an API error: %#v", name, err, apiError(err))
				continue
			}
			if e.Code != s.code || e.Message != err.Error() || e.Status == 0 {
				t.Errorf("%s: %q is %s %q (HTTP %d), want %s with the error's words", name, err, e.Code, e.Message, e.Status, s.code)
			}
			if x, ok := err.(*explained); ok && e.Hint != x.hint {
				t.Errorf("%s: the call site's hint became %q", name, e.Hint)
			}
		}
	}
}

// TestAPIErrorHints: a sentinel's default hint, the call site's instead,
// and the hint that says what to do about damaged data without showing it.
func TestAPIErrorHints(t *testing.T) {
	e := apiError(fmt.Errorf("send: %w: 70000 bytes", msg.ErrTooLarge)).(*api.Error)
	if e.Code != api.CodeTooLarge || !strings.Contains(e.Hint, "split it") {
		t.Errorf("too large: %+v", e)
	}
	e = apiError(explain(call.ErrNotRinging, "hang up instead: callsign hangup", "call c1 is not ringing here")).(*api.Error)
	if e.Code != api.CodeConflict || e.Hint != "hang up instead: callsign hangup" || e.Message != "call c1 is not ringing here" {
		t.Errorf("explained: %+v", e)
	}
	e = apiError(fmt.Errorf("read message m1: %w", store.ErrCorrupt)).(*api.Error)
	if e.Code != api.CodeInternal || !strings.Contains(e.Hint, "callsign store verify") {
		t.Errorf("damaged: %+v", e)
	}
}

// TestAPIErrorOthers: what no sentinel explains.
func TestAPIErrorOthers(t *testing.T) {
	// A network failure kad-dht words its own way is unavailable, with the
	// call site's hint.
	e, ok := apiError(explain(onNetwork(errors.New("failed to find any peer in table")), "the node needs peers to look names up", "resolve @bob: failed")).(*api.Error)
	if !ok || e.Code != api.CodeUnavailable || e.Hint != "the node needs peers to look names up" {
		t.Errorf("network: %#v", apiError(onNetwork(errors.New("x"))))
	}
	// A store miss for ids the request named is the request's fault.
	if e, ok := apiError(badRequest(fmt.Errorf("mark read: %w", store.ErrNotFound))).(*api.Error); !ok || e.Code != api.CodeBadRequest {
		t.Errorf("bad request: %#v", e)
	}
	if e, ok := apiError(badRequest(errors.New("no such id"))).(*api.Error); !ok || e.Code != api.CodeBadRequest {
		t.Errorf("bad request without a sentinel: %#v", e)
	}
	// An API error passes through, even wrapped; anything else stays as it
	// is (the server reports it as internal, a context's end as
	// unavailable).
	ae := api.Errorf(api.CodeForbidden, "h", "no")
	if got := apiError(fmt.Errorf("x: %w", ae)); got != ae {
		t.Errorf("API error: %#v", got)
	}
	for _, err := range []error{errors.New("disk on fire"), context.Canceled, fmt.Errorf("resolve: %w", context.DeadlineExceeded)} {
		if got := apiError(err); got != err {
			t.Errorf("%v became %#v", err, got)
		}
	}
	if apiError(nil) != nil {
		t.Error("nil is an error")
	}
}

// TestEverySentinelListed reads the domain packages' sources: every
// exported Err variable must be in sentinels (and so get a code in
// errorCodes), so a new one can't reach a person as "internal" unnoticed.
func TestEverySentinelListed(t *testing.T) {
	for _, pkg := range []string{"contacts", "identity", "dht", "msg", "call", "media", "store", "devices"} {
		for _, d := range decls(t, filepath.Join("..", "..", pkg)) {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.VAR {
				continue
			}
			for _, spec := range g.Specs {
				for _, n := range spec.(*ast.ValueSpec).Names {
					if strings.HasPrefix(n.Name, "Err") && n.IsExported() {
						if _, ok := sentinels[pkg+"."+n.Name]; !ok {
							t.Errorf("%s.%s has no API code: add it to errorCodes (errors.go) and to sentinels here", pkg, n.Name)
						}
					}
				}
			}
		}
	}
}

// decls are the top-level declarations of the package in dir, tests left
// out.
func decls(t *testing.T, dir string) []ast.Decl {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("%s: no sources (%v)", dir, err)
	}
	var out []ast.Decl
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, file.Decls...)
	}
	return out
}

// TestEveryMethodMapsErrors reads this package's sources: every method of
// api.Backend that returns an error starts by deferring mapError, so no
// domain error reaches the API unmapped.
func TestEveryMethodMapsErrors(t *testing.T) {
	first := map[string]ast.Stmt{} // method name → its first statement
	for _, d := range decls(t, ".") {
		if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv != nil && fn.Body != nil && len(fn.Body.List) > 0 {
			first[fn.Name.Name] = fn.Body.List[0]
		}
	}
	errType := reflect.TypeFor[error]()
	backend := reflect.TypeFor[api.Backend]()
	for i := range backend.NumMethod() {
		m := backend.Method(i)
		if n := m.Type.NumOut(); n == 0 || m.Type.Out(n-1) != errType {
			continue
		}
		d, ok := first[m.Name].(*ast.DeferStmt)
		if !ok {
			t.Errorf("%s does not start with defer mapError(&err)", m.Name)
			continue
		}
		if id, ok := d.Call.Fun.(*ast.Ident); !ok || id.Name != "mapError" {
			t.Errorf("%s defers something else than mapError first", m.Name)
		}
	}
}
