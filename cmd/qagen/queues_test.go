package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/urfave/cli/v2"

	"github.com/qagen/qagen/celery"
	"github.com/qagen/qagen/internal/testenv"
)

// runCLI runs qagen with args (the binary name omitted), stdin in, and
// returns what it printed.
func runCLI(t *testing.T, in io.Reader, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	app := &cli.App{Name: "qagen", Writer: &out, ErrWriter: &out, Reader: in,
		Commands: []*cli.Command{callCommand(), queuesCommand(), purgeCommand()}}
	err := app.Run(interspersed(app, append([]string{"qagen"}, args...)))
	return out.String(), err
}

// queuesFixture fills a prefixed keyspace: queue q1 with messages at
// priorities 0, 0, 3 and 9 (sent with `qagen call`), q2 declared and empty,
// q3 with one message, remote-control and event bindings, one unacked
// message delivered 30 s ago and one dead letter.
type queuesFixture struct {
	url, prefix string
	conn        redis.Conn
}

func newQueuesFixture(t *testing.T) *queuesFixture {
	t.Helper()
	pool, _ := testenv.Redis(t, testenv.DBCommand)
	f := &queuesFixture{url: testenv.URL(testenv.DBCommand), prefix: testenv.Prefix(t), conn: pool.Get()}
	t.Cleanup(func() { f.conn.Close() })
	for _, prio := range []string{"0", "0", "3", "9"} {
		f.call(t, "q1", prio)
	}
	f.call(t, "q3", "0")
	sep := celery.Sep
	for key, member := range map[string]string{
		"_kombu.binding.q2":                  "q2" + sep + sep + "q2",
		"_kombu.binding.celery.pidbox":       sep + sep + "qa_worker@h.celery.pidbox",
		"_kombu.binding.reply.celery.pidbox": "abc" + sep + sep + "abc.reply.celery.pidbox",
		"_kombu.binding.celeryev":            "worker.#" + sep + sep + "celeryev.1234",
	} {
		f.do(t, "SADD", f.prefix+key, member)
	}
	// Another prefix's queue must not be discovered.
	f.do(t, "SADD", f.prefix+"other:_kombu.binding.elsewhere", "elsewhere"+sep+sep+"elsewhere")
	f.do(t, "HSET", f.prefix+"unacked", "tag1", `[{}, "", "q1"]`)
	f.do(t, "ZADD", f.prefix+"unacked_index", strconv.FormatFloat(float64(time.Now().Add(-30*time.Second).UnixMicro())/1e6, 'f', 6, 64), "tag1")
	f.do(t, "LPUSH", f.prefix+"qagen.dead", `{"reason":"test","dead_at":1,"message":"{}"}`)
	return f
}

func (f *queuesFixture) do(t *testing.T, cmd string, args ...any) {
	t.Helper()
	if _, err := f.conn.Do(cmd, args...); err != nil {
		t.Fatalf("%s %v: %v", cmd, args, err)
	}
}

func (f *queuesFixture) call(t *testing.T, queue, priority string) {
	t.Helper()
	if out, err := runCLI(t, nil, "call", "qagen.add", "--args", "[1, 2]", "-Q", queue, "--priority", priority,
		"--broker", f.url, "--result-backend", f.url, "--key-prefix", f.prefix); err != nil {
		t.Fatalf("call: %v: %s", err, out)
	}
}

func (f *queuesFixture) llen(t *testing.T, list string) int {
	t.Helper()
	n, err := redis.Int(f.conn.Do("LLEN", f.prefix+list))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (f *queuesFixture) report(t *testing.T, args ...string) queuesReport {
	t.Helper()
	out, err := runCLI(t, nil, append([]string{"queues", "--json", "--broker", f.url, "--key-prefix", f.prefix}, args...)...)
	if err != nil {
		t.Fatalf("queues: %v: %s", err, out)
	}
	var rep queuesReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("queues --json: %v: %s", err, out)
	}
	return rep
}

func lengths(q queueInfo) string {
	var s []string
	for _, l := range q.Lists {
		s = append(s, l.Name+"="+strconv.Itoa(l.Length))
	}
	return strings.Join(s, " ")
}

func TestQueuesDiscoversAndCounts(t *testing.T) {
	f := newQueuesFixture(t)
	rep := f.report(t)
	var names []string
	for _, q := range rep.Queues {
		names = append(names, q.Name)
	}
	// Declared queues plus the default one; no pidbox, reply, event or
	// other-prefix queues.
	if got := strings.Join(names, ","); got != "q1,q2,q3,qa_generation" {
		t.Fatalf("queues %q", got)
	}
	if got := lengths(rep.Queues[0]); got != "q1=2 q1:3=1 q1:6=0 q1:9=1" || rep.Queues[0].Total != 4 {
		t.Errorf("q1: %s, total %d", got, rep.Queues[0].Total)
	}
	if rep.Queues[1].Total != 0 || rep.Queues[2].Total != 1 || rep.Queues[3].Total != 0 {
		t.Errorf("totals %+v", rep.Queues)
	}
	if rep.Unacked != 1 || rep.OldestUnackedAge == nil || *rep.OldestUnackedAge < 29 || *rep.OldestUnackedAge > 120 {
		t.Errorf("unacked %d, oldest %v", rep.Unacked, rep.OldestUnackedAge)
	}
	if rep.DeadLetters != 1 || rep.DeadLetterKey != "qagen.dead" {
		t.Errorf("dead letters %d in %q", rep.DeadLetters, rep.DeadLetterKey)
	}
	if rep.KeyPrefix != f.prefix || rep.Broker != f.url {
		t.Errorf("broker %q, prefix %q", rep.Broker, rep.KeyPrefix)
	}

	// -Q: exactly those queues, in that order.
	rep = f.report(t, "-Q", "q3,q1")
	if len(rep.Queues) != 2 || rep.Queues[0].Name != "q3" || rep.Queues[1].Name != "q1" || rep.Queues[1].Total != 4 {
		t.Errorf("-Q q3,q1: %+v", rep.Queues)
	}

	// The text view.
	out, err := runCLI(t, nil, "queues", "-Q", "q1", "--broker", f.url, "--key-prefix", f.prefix)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"broker: " + f.url,
		"QUEUE   TOTAL       Q     Q:3     Q:6     Q:9\n",
		"q1          4       2       1       0       1\n",
		"unacked: 1 (oldest 30s ago)",
		"dead letters: 1 (qagen.dead)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestQueuesEmptyPrefix(t *testing.T) {
	// A prefix with nothing under it: only the default queue, nothing unacked.
	testenv.Redis(t, testenv.DBCommand)
	f := &queuesFixture{url: testenv.URL(testenv.DBCommand), prefix: testenv.Prefix(t) + "[*?]"}
	rep := f.report(t)
	if len(rep.Queues) != 1 || rep.Queues[0].Name != "qa_generation" || rep.Queues[0].Total != 0 {
		t.Errorf("queues %+v", rep.Queues)
	}
	if rep.Unacked != 0 || rep.OldestUnackedAge != nil || rep.DeadLetters != 0 {
		t.Errorf("report %+v", rep)
	}
}

func TestQueuesHidesPassword(t *testing.T) {
	const secret = "s3cr3t-pw"
	for _, args := range [][]string{
		{"queues", "--broker", "redis://:" + secret + "@" + testenv.Addr() + "/15"},
		{"queues", "--broker", "redis://:" + secret + "@127.0.0.1:1/0"},
		{"purge", "-f", "-Q", "x", "--broker", "redis://:" + secret + "@127.0.0.1:1/0"},
	} {
		out, err := runCLI(t, nil, args...)
		if err == nil {
			t.Errorf("%v: no error", args)
			continue
		}
		if strings.Contains(err.Error()+out, secret) {
			t.Errorf("%v leaks the password: %v %s", args, err, out)
		}
	}
}

func TestPurge(t *testing.T) {
	f := newQueuesFixture(t)
	base := []string{"purge", "--broker", f.url, "--key-prefix", f.prefix}
	untouched := func(what string) {
		t.Helper()
		if n := f.llen(t, "q1") + f.llen(t, "q1"+celery.Sep+"3") + f.llen(t, "q1"+celery.Sep+"9"); n != 4 {
			t.Fatalf("%s: q1 holds %d messages, want 4", what, n)
		}
	}

	// Without -Q: refused.
	if _, err := runCLI(t, nil, append(base, "-f")...); err == nil || !strings.Contains(err.Error(), "-Q") {
		t.Fatalf("purge without -Q: %v", err)
	}
	// Without a terminal and without -f: refused, nothing deleted.
	_, err := runCLI(t, strings.NewReader("y\n"), append(base, "-Q", "q1")...)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), "-f") {
		t.Fatalf("purge without -f, no terminal: %v", err)
	}
	untouched("refused purge")

	// On a terminal: asks; anything but y/yes keeps the messages.
	orig := isInteractive
	isInteractive = func(io.Reader) bool { return true }
	t.Cleanup(func() { isInteractive = orig })
	out, err := runCLI(t, strings.NewReader("n\n"), append(base, "-Q", "q1")...)
	if err == nil || !strings.Contains(out, "About to delete 4 waiting messages from q1") {
		t.Fatalf("declined purge: %v: %s", err, out)
	}
	untouched("declined purge")
	out, err = runCLI(t, strings.NewReader("yes\n"), append(base, "-Q", "q1,q2")...)
	if err != nil || !strings.Contains(out, "Purged 4 messages from 2 known task queues.") {
		t.Fatalf("confirmed purge: %v: %s", err, out)
	}
	for _, l := range celery.DefaultPriorityScheme.Lists("q1") {
		if n := f.llen(t, l); n != 0 {
			t.Errorf("%q still holds %d", l, n)
		}
	}

	// -f: no question; other queues, unacked and dead letters untouched.
	f.call(t, "q2", "6")
	out, err = runCLI(t, nil, append(base, "-f", "-Q", "q2")...)
	if err != nil || !strings.Contains(out, "Purged 1 message from 1 known task queue.") || strings.Contains(out, "About to") {
		t.Fatalf("purge -f: %v: %s", err, out)
	}
	rep := f.report(t, "-Q", "q1,q2,q3")
	if rep.Queues[0].Total != 0 || rep.Queues[1].Total != 0 || rep.Queues[2].Total != 1 {
		t.Errorf("after purge: %+v", rep.Queues)
	}
	if rep.Unacked != 1 || rep.DeadLetters != 1 {
		t.Errorf("purge touched unacked (%d) or dead letters (%d)", rep.Unacked, rep.DeadLetters)
	}
	// The binding stays: the queue is emptied, not deleted.
	if ok, _ := redis.Bool(f.conn.Do("EXISTS", f.prefix+"_kombu.binding.q1")); !ok {
		t.Error("purge removed the binding")
	}
}

func TestIsControlBinding(t *testing.T) {
	for _, tc := range []struct {
		exchange, queue string
		want            bool
	}{
		{"qa_generation", "qa_generation", false},
		{"celery", "celery", false},
		{"celery.pidbox", "qa_worker@h.celery.pidbox", true},
		{"reply.celery.pidbox", "abc.reply.celery.pidbox", true},
		{"celeryev", "celeryev.1234", true},
		{"other.pidbox", "x", true},
		{"tasks", "celeryev.x", true},
	} {
		if got := isControlBinding(tc.exchange, tc.queue); got != tc.want {
			t.Errorf("isControlBinding(%q, %q) = %v", tc.exchange, tc.queue, got)
		}
	}
	if got := globEscape(`a*b?c[d]e\f`); got != `a\*b\?c\[d\]e\\f` {
		t.Errorf("globEscape = %q", got)
	}
}
