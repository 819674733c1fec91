package api

import (
	"encoding/json"
	"net/http"
	"testing"
)

// TestAppState: the web app's first screen comes in one authenticated
// answer, with every part filled in.
func TestAppState(t *testing.T) {
	s, _, token := startServer(t)
	req, _ := http.NewRequest("GET", "http://"+s.Addr()+"/api/v1/app", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without the token: %d", resp.StatusCode)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st map[string]json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != 200 {
		t.Fatalf("status %d, %v", resp.StatusCode, err)
	}
	for _, k := range []string{"id", "handles", "conversations", "requests", "contacts", "calls"} {
		if _, ok := st[k]; !ok {
			t.Errorf("no %q in the app state", k)
		}
	}
	var id ID
	if err := json.Unmarshal(st["id"], &id); err != nil || id.Account != "csa1test" {
		t.Errorf("id %s: %v", st["id"], err)
	}
}
