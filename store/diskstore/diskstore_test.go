package diskstore

import (
	"context"
	"testing"

	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestQuery: a prefix query returns the entries under the prefix only,
// with sizes, and keys only when asked.
func TestQuery(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, k := range []string{"/csname/a", "/csname/b", "/csid/a", "/csnamex/c"} {
		if err := s.Put(ctx, ds.NewKey(k), []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, ds.NewKey("/csname/b")); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, ds.NewKey("/csname/none")); err != nil {
		t.Fatalf("delete of a missing key: %v", err)
	}
	res, err := s.Query(ctx, dsq.Query{Prefix: "/csname"})
	if err != nil {
		t.Fatal(err)
	}
	es, err := res.Rest()
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 || es[0].Key != "/csname/a" || string(es[0].Value) != "/csname/a" || es[0].Size != 9 {
		t.Fatalf("query /csname: %+v", es)
	}
	res, err = s.Query(ctx, dsq.Query{KeysOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if es, _ = res.Rest(); len(es) != 3 || es[0].Value != nil {
		t.Fatalf("query all, keys only: %+v", es)
	}
	if ok, err := s.Has(ctx, ds.NewKey("/csid/a")); !ok || err != nil {
		t.Fatalf("Has: %v %v", ok, err)
	}
	if n, err := s.GetSize(ctx, ds.NewKey("/csid/a")); n != 7 || err != nil {
		t.Fatalf("GetSize: %v %v", n, err)
	}
}

// TestReopen: what was put is there after the store is closed and opened.
func TestReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	k := ds.NewKey("/csname/ABC")
	if err := s.Put(ctx, k, []byte("record")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v, err := s.Get(ctx, k)
	if err != nil || string(v) != "record" {
		t.Fatalf("after reopen: %q, %v", v, err)
	}
	if _, err := s.Get(ctx, ds.NewKey("/csname/none")); err != ds.ErrNotFound {
		t.Fatalf("missing key: %v, want ds.ErrNotFound", err)
	}
}

// TestCountKeys: the keys under a prefix are counted, not those of a
// longer name sharing its first letters nor deleted ones.
func TestCountKeys(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, k := range []string{"/csname/a", "/csname/b", "/csname/c", "/csid/a", "/csnamex/c"} {
		if err := s.Put(ctx, ds.NewKey(k), []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, ds.NewKey("/csname/b")); err != nil {
		t.Fatal(err)
	}
	for prefix, want := range map[string]int{"/csname": 2, "/csid": 1, "/": 4, "/cskeep": 0} {
		if n, err := s.CountKeys(ctx, prefix); n != want || err != nil {
			t.Errorf("CountKeys(%s) = %d, %v; want %d", prefix, n, err, want)
		}
	}
}
