package celery_test

import (
	"encoding/json"
	"testing"

	"github.com/qagen/qagen/celery"
)

// TestControlRequestMatchesLikeKombu pins ControlRequest.Matches to kombu's
// Node.handle_message (kombu/pidbox.py) and kombu.matcher, which Python
// workers use to decide whether a pidbox request addresses them:
//
//	if destination: run if hostname in destination
//	elif pattern and matcher: run if match(hostname, pattern, matcher)
//	else: run
//
// with "glob" = fnmatch.fnmatch(hostname, pattern) and "pcre" =
// re.match(pattern, hostname) (anchored at the start only). Expected values
// were checked with /usr/bin/python3 (kombu 5.2.4).
func TestControlRequestMatchesLikeKombu(t *testing.T) {
	for _, tc := range []struct {
		body string
		node string
		want bool
	}{
		// Already agreeing cases.
		{`{"method":"ping","destination":null}`, "w1@h", true},
		{`{"method":"ping","destination":["w1@h"]}`, "w1@h", true},
		{`{"method":"ping","destination":["w2@h"]}`, "w1@h", false},
		{`{"method":"ping","pattern":"w1@*","matcher":"glob"}`, "w1@h", true},
		{`{"method":"ping","pattern":"w1@*","matcher":null}`, "x@h", true},
		{`{"method":"ping","pattern":"^w1","matcher":"pcre"}`, "w1@h", true},
		// An empty destination list is falsy in Python: everyone runs it.
		{`{"method":"ping","destination":[]}`, "w1@h", true},
		// re.match anchors at the start: "w1" does not address "aw1@h".
		{`{"method":"ping","pattern":"w1","matcher":"pcre"}`, "aw1@h", false},
		// fnmatch: [!...] negates, and * crosses "/".
		{`{"method":"ping","pattern":"w[!1]@*","matcher":"glob"}`, "w2@h", true},
		{`{"method":"ping","pattern":"a*@h","matcher":"glob"}`, "a/b@h", true},
	} {
		var req celery.ControlRequest
		if err := json.Unmarshal([]byte(tc.body), &req); err != nil {
			t.Fatal(err)
		}
		if got := req.Matches(tc.node); got != tc.want {
			t.Errorf("%s addresses %s: got %v, kombu says %v", tc.body, tc.node, got, tc.want)
		}
	}
}

func TestFnmatchClasses(t *testing.T) {
	for _, tc := range []struct {
		pattern, node string
		want          bool
	}{
		{"w[12]@h", "w2@h", true},
		{"w[!12]@h", "w2@h", false},
		{"w[^1]@h", "w^@h", true}, // a literal caret, as in Python
		{"w[^1]@h", "w2@h", false},
		{"w[@h", "w[@h", true}, // an unterminated class is a literal [
		{"w?@*.com", "w1@mail.example.com", true},
	} {
		p, m := tc.pattern, "glob"
		req := celery.ControlRequest{Pattern: &p, Matcher: &m}
		if got := req.Matches(tc.node); got != tc.want {
			t.Errorf("fnmatch(%q, %q) = %v, want %v", tc.node, tc.pattern, got, tc.want)
		}
	}
}
