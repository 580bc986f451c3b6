package celery_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/qagen/qagen/celery"
)

// resultSkips are files in result/ that are not celery-task-meta values.
var resultSkips = map[string]string{
	"chord_j_member_0.json":  "member of the chord .j zset ([1, task_id, state, result]), not a task meta",
	"groupresult_saved.json": "celery-taskset-meta GroupResult ({\"result\": [[gid, null], [...]]}), not a task meta",
	"chord_s_key.txt":        "chord size counter (.s), a bare integer",
	"chord_t_key.txt":        "chord add_to_chord counter (.t), a bare integer",
	"v2_chord_size_key.txt":  "chord size counter written by the producer, a bare integer",
}

// parseDateDone reads a fixture date_done independently of ParseTime: 5.2.6
// writes naive UTC, 5.4+ writes an offset.
func parseDateDone(tb testing.TB, s string) time.Time {
	tb.Helper()
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t
	}
	t, err := time.ParseInLocation("2006-01-02T15:04:05.999999999", s, time.UTC)
	if err != nil {
		tb.Fatalf("fixture date_done %q: %v", s, err)
	}
	return t
}

func TestFixtureResults(t *testing.T) {
	for _, version := range fixtureVersions {
		dir := fixtureDir(t, version, "result")
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		sort.Strings(names)
		parsed, states := 0, map[celery.State]int{}
		naive, aware := 0, 0
		for _, name := range names {
			path := filepath.Join(dir, name)
			t.Run(version+"/"+name, func(t *testing.T) {
				data := readFile(t, path)
				if reason, skip := resultSkips[name]; skip {
					// Not a meta: ParseResult must refuse it rather than
					// invent a status.
					if r, err := celery.ParseResult(data); err == nil {
						t.Errorf("ParseResult accepted a non-meta: %+v", r)
					}
					t.Skip(reason)
				}
				if !strings.HasSuffix(name, ".json") {
					t.Fatalf("unexpected non-JSON file %s (add it to resultSkips with a reason)", name)
				}
				var raw map[string]json.RawMessage
				if err := json.Unmarshal(data, &raw); err != nil {
					t.Fatal(err)
				}
				r, err := celery.ParseResult(data)
				if err != nil {
					t.Fatalf("ParseResult: %v", err)
				}
				parsed++
				states[r.Status]++
				checkResultAgainstRaw(t, r, raw)
				if ds, ok := field[string](t, raw, "date_done"); ok {
					if strings.ContainsAny(ds[len(ds)-6:], "+-Z") {
						aware++
					} else {
						naive++
					}
				}
				checkResultRoundTrip(t, r, data)
			})
		}
		if parsed < 20 {
			t.Errorf("%s: parsed only %d metas", version, parsed)
		}
		for _, s := range []celery.State{celery.StateSuccess, celery.StateFailure, celery.StateRetry, celery.StateRevoked, celery.StateStarted} {
			if states[s] == 0 {
				t.Errorf("%s: no %s meta among the fixtures", version, s)
			}
		}
		switch version {
		case "celery-5.2.6":
			if naive == 0 || aware != 0 {
				t.Errorf("5.2.6: %d naive and %d aware date_done, want only naive", naive, aware)
			}
		case "celery-5.5.3":
			if aware == 0 || naive != 0 {
				t.Errorf("5.5.3: %d naive and %d aware date_done, want only aware", naive, aware)
			}
		}
	}
}

func checkResultAgainstRaw(t *testing.T, r *celery.ResultMeta, raw map[string]json.RawMessage) {
	t.Helper()
	status, _ := field[string](t, raw, "status")
	if string(r.Status) != status {
		t.Errorf("Status = %q, want %q", r.Status, status)
	}
	if want := status == "SUCCESS" || status == "FAILURE" || status == "REVOKED"; r.Status.Ready() != want {
		t.Errorf("%s.Ready() = %v", r.Status, !want)
	}
	taskID, _ := field[string](t, raw, "task_id")
	if r.TaskID != taskID || taskID == "" {
		t.Errorf("TaskID = %q, want %q", r.TaskID, taskID)
	}
	assertJSONEqual(t, "result", r.Result, raw["result"])
	assertJSONEqual(t, "children", r.Children, raw["children"])
	tb, _ := field[string](t, raw, "traceback")
	if r.Traceback != tb {
		t.Errorf("Traceback = %q, want %q", r.Traceback, tb)
	}
	for _, c := range []struct{ key, got string }{{"group_id", r.GroupID}, {"parent_id", r.ParentID}} {
		if want, _ := field[string](t, raw, c.key); c.got != want {
			t.Errorf("%s = %q, want %q", c.key, c.got, want)
		}
	}
	if ds, ok := field[string](t, raw, "date_done"); ok {
		want := parseDateDone(t, ds)
		if r.DateDone == nil || !r.DateDone.Equal(want) {
			t.Errorf("DateDone = %v, want %v (%q)", r.DateDone, want, ds)
		} else {
			_, gotOff := r.DateDone.Zone()
			_, wantOff := want.Zone()
			if gotOff != wantOff {
				t.Errorf("DateDone offset %d, want %d (%q)", gotOff, wantOff, ds)
			}
		}
	} else if r.DateDone != nil {
		t.Errorf("DateDone = %v, want nil", r.DateDone)
	}

	// Extended fields.
	if name, ok := field[string](t, raw, "name"); ok {
		e := r.Extended
		if e == nil {
			t.Fatalf("Extended = nil, want name %q", name)
		}
		worker, _ := field[string](t, raw, "worker")
		queue, _ := field[string](t, raw, "queue")
		retries, _ := field[int](t, raw, "retries")
		if e.Name != name || e.Worker != worker || e.Queue != queue || e.Retries != retries {
			t.Errorf("Extended = %+v, want name=%q worker=%q queue=%q retries=%d", e, name, worker, queue, retries)
		}
		assertJSONEqual(t, "extended args", e.Args, raw["args"])
		assertJSONEqual(t, "extended kwargs", e.Kwargs, raw["kwargs"])
	} else if r.Extended != nil {
		t.Errorf("Extended = %+v, want nil", r.Extended)
	}

	// Exceptions.
	var excDict map[string]json.RawMessage
	isExc := json.Unmarshal(raw["result"], &excDict) == nil && excDict["exc_type"] != nil
	exc, err := r.Exception()
	switch {
	case status == "FAILURE" || status == "REVOKED":
		if !isExc {
			t.Fatalf("fixture %s without exception dict", status)
		}
		fallthrough
	case isExc:
		if err != nil {
			t.Fatalf("Exception(): %v", err)
		}
		typ, _ := field[string](t, excDict, "exc_type")
		mod, _ := field[string](t, excDict, "exc_module")
		if exc.Type != typ || exc.Module != mod {
			t.Errorf("exception %s.%s, want %s.%s", exc.Module, exc.Type, mod, typ)
		}
		args, err := json.Marshal(exc.Args)
		if err != nil {
			t.Fatal(err)
		}
		assertJSONEqual(t, "exception args", args, excDict["exc_message"])
		if exc.Traceback != tb {
			t.Errorf("exception traceback %q, want %q", exc.Traceback, tb)
		}
		// Re-encoding the exception yields the same dict.
		enc, err := json.Marshal(exc)
		if err != nil {
			t.Fatal(err)
		}
		assertJSONEqual(t, "re-encoded exception", enc, raw["result"])
	default:
		if err == nil {
			t.Errorf("Exception() on a %s meta with result %s returned %+v", status, raw["result"], exc)
		}
	}
}

// checkResultRoundTrip re-encodes a parsed meta: the key order must be the
// fixture's and the values must survive.
func checkResultRoundTrip(t *testing.T, r *celery.ResultMeta, data []byte) {
	t.Helper()
	out, err := json.Marshal(r)
	if err != nil {
		t.Fatalf("MarshalJSON: %v", err)
	}
	if !json.Valid(out) {
		t.Fatalf("MarshalJSON wrote invalid JSON: %s", out)
	}
	gotKeys, wantKeys := objectKeys(t, out), objectKeys(t, data)
	if strings.Join(gotKeys, ",") != strings.Join(wantKeys, ",") {
		t.Errorf("key order\n got: %v\nwant: %v", gotKeys, wantKeys)
	}
	var got, want map[string]json.RawMessage
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	for k, w := range want {
		if k == "date_done" && string(w) != "null" {
			var gs, ws string
			_ = json.Unmarshal(got[k], &gs)
			_ = json.Unmarshal(w, &ws)
			if !parseDateDone(t, gs).Equal(parseDateDone(t, ws)) {
				t.Errorf("date_done %s, want the instant of %s", gs, ws)
			}
			continue
		}
		assertJSONEqual(t, "round-tripped "+k, got[k], w)
	}
	back, err := celery.ParseResult(out)
	if err != nil {
		t.Fatalf("ParseResult(MarshalJSON): %v", err)
	}
	if back.Status != r.Status || back.TaskID != r.TaskID || back.Traceback != r.Traceback ||
		(back.DateDone == nil) != (r.DateDone == nil) || (back.DateDone != nil && !back.DateDone.Equal(*r.DateDone)) {
		t.Errorf("round trip changed the meta:\n got %+v\nwant %+v", back, r)
	}
}

// TestFixtureExceptionsMatchHelpers checks the well-known exception helpers
// against what Python stored.
func TestFixtureExceptionsMatchHelpers(t *testing.T) {
	for _, version := range fixtureVersions {
		dir := fixtureDir(t, version, "result")
		load := func(name string) *celery.ResultMeta {
			r, err := celery.ParseResult(readFile(t, filepath.Join(dir, name)))
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		revoked := load("revoked.json")
		enc, _ := json.Marshal(celery.ErrRevoked("revoked"))
		assertJSONEqual(t, version+" ErrRevoked", enc, revoked.Result)

		final := load("retry_me_final.json")
		enc, _ = json.Marshal(celery.ErrMaxRetriesExceeded("celery_tasks.retry_me", final.TaskID, json.RawMessage("[]"), json.RawMessage("{}")))
		assertJSONEqual(t, version+" ErrMaxRetriesExceeded", enc, final.Result)

		fail := load("failure_fail.json")
		exc, err := fail.Exception()
		if err != nil {
			t.Fatal(err)
		}
		if exc.Error() != "ValueError: boom" || exc.Message() != "boom" || exc.Repr() != "ValueError('boom')" {
			t.Errorf("Error/Message/Repr = %q / %q / %q", exc.Error(), exc.Message(), exc.Repr())
		}
		if !strings.HasSuffix(exc.Traceback, "ValueError: boom\n") {
			t.Errorf("traceback %q", exc.Traceback)
		}

		// A chain step's children hold the next step's result tuple.
		step1 := load("chain_step1.json")
		want := "[" + string(celery.ResultTuple("821b145a-fe0d-5da8-879d-d6e31f8a3909")) + "]"
		assertJSONEqual(t, "children", step1.Children, []byte(want))

		// RETRY without exc stores null: there is no exception to decode.
		retry := load("retry_me_retry.json")
		if retry.DateDone != nil || retry.Status.Ready() {
			t.Errorf("RETRY meta: date_done %v ready %v", retry.DateDone, retry.Status.Ready())
		}
		if _, err := retry.Exception(); err == nil {
			t.Errorf("Exception() on RETRY with null result succeeded")
		}
	}
	// Naive 5.2.6 date_done is UTC.
	r, err := celery.ParseResult(readFile(t, filepath.Join(fixtureDir(t, "celery-5.2.6", "result"), "success_add.json")))
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 11, 26, 23, 33, 39, 139842000, time.UTC); r.DateDone == nil || !r.DateDone.Equal(want) || r.DateDone.Location() != time.UTC {
		t.Errorf("5.2.6 date_done = %v, want %v UTC", r.DateDone, want)
	}
	r, err = celery.ParseResult(readFile(t, filepath.Join(fixtureDir(t, "celery-5.5.3", "result"), "prod_success_generate_qa.json")))
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 11, 27, 0, 39, 2, 778215000, time.UTC); r.DateDone == nil || !r.DateDone.Equal(want) {
		t.Errorf("5.5.3 prod date_done = %v, want %v", r.DateDone, want)
	} else if _, off := r.DateDone.Zone(); off != 9*3600 {
		t.Errorf("5.5.3 prod date_done offset %d, want +09:00", off)
	}
	out, _ := json.Marshal(r)
	if !strings.Contains(string(out), `"date_done":"2026-11-27T09:39:02.778215+09:00"`) {
		t.Errorf("re-encoded prod meta lost the +09:00 date_done: %s", out)
	}
}
