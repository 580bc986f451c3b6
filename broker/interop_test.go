package broker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/qagen/qagen/broker"
	"github.com/qagen/qagen/internal/testenv"
)

// python runs a script with Debian's python3-celery and returns its stdout.
func python(t *testing.T, script string, args ...string) string {
	t.Helper()
	testenv.RequirePython(t)
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(c, testenv.Python, append([]string{"-c", script}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("python: %v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
	}
	return strings.TrimSpace(stdout.String())
}

// unackedEntry decodes an unacked value into its three parts.
func unackedEntry(t *testing.T, v string) (env map[string]any, exchange, routingKey string) {
	t.Helper()
	var entry []json.RawMessage
	if err := json.Unmarshal([]byte(v), &entry); err != nil || len(entry) != 3 {
		t.Fatalf("unacked value is not [envelope, exchange, routing_key]: %v: %s", err, v)
	}
	if err := json.Unmarshal(entry[0], &env); err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(entry[1], &exchange)
	json.Unmarshal(entry[2], &routingKey)
	return env, exchange, routingKey
}

const pyRestoreVisible = `
import sys
from kombu import Connection
url, prefix = sys.argv[1], sys.argv[2]
c = Connection(url, transport_options={'visibility_timeout': 60, 'global_keyprefix': prefix})
ch = c.default_channel
ch.qos.restore_visible()
c.release()
print("ok")
`

// TestInteropPythonRestoresGoDeliveries: what Go writes to unacked is
// understood by kombu's own visibility-timeout restore.
func TestInteropPythonRestoresGoDeliveries(t *testing.T) {
	t.Parallel()
	testenv.RequirePython(t)
	e := newEnv(t, false, broker.Options{})
	e.publish(msg("old", "Q", 0), msg("old9", "Q", 9), msg("fresh", "Q", 0))
	ds := e.fetch([]string{"Q"}, 10)
	if len(ds) != 3 {
		t.Fatalf("fetched %d", len(ds))
	}
	e.age(5*time.Minute, "old", "old9")

	if out := python(t, pyRestoreVisible, testenv.URL(testenv.DBBroker), e.prefix); out != "ok" {
		t.Fatalf("python: %s", out)
	}
	if e.unacked("fresh") == "" {
		t.Fatal("kombu restored a delivery younger than its visibility timeout")
	}
	for _, tag := range []string{"old", "old9"} {
		if e.unacked(tag) != "" {
			t.Fatalf("kombu did not restore %s", tag)
		}
		if _, ok := e.score(tag); ok {
			t.Fatalf("kombu left %s in unacked_index", tag)
		}
	}
	// kombu 5.2.4 puts restored messages on the base list whatever their
	// priority (fixed in 5.4); Go consumes all lists, so it gets both back.
	if n := len(e.list("Q")); n != 2 {
		t.Fatalf("base list holds %d messages, want 2", n)
	}
	ds = e.fetch([]string{"Q"}, 10)
	if len(ds) != 2 {
		t.Fatalf("refetched %d", len(ds))
	}
	got := map[string]bool{}
	for _, d := range ds {
		h, i, tag, _ := redelivered(t, string(d.Raw))
		if !h || !i || d.Tag != tag || d.Queue != "Q" || d.DeadLettered {
			t.Errorf("refetched %+v (headers.redelivered=%v delivery_info.redelivered=%v)", d, h, i)
		}
		got[d.Tag] = true
		if _, ex, rk := unackedEntry(t, e.unacked(d.Tag)); ex != "" || rk != "Q" {
			t.Errorf("re-registered %s with %q/%q", d.Tag, ex, rk)
		}
	}
	if !got["old"] || !got["old9"] {
		t.Fatalf("refetched %v", got)
	}
}

const pySendTask = `
import sys, json
from celery import Celery
from kombu import Connection, Exchange, Queue
url, prefix, q = sys.argv[1], sys.argv[2], sys.argv[3]
app = Celery('interop', broker=url)
app.conf.broker_transport_options = {'global_keyprefix': prefix}
r1 = app.send_task('tests.add', args=[2, 3], queue=q)
r2 = app.send_task('tests.add', args=[4, 5], queue=q, priority=5)
with Connection(url, transport_options={'global_keyprefix': prefix}) as c:
    ex = Exchange('interop_ex', type='direct')
    c.Producer().publish({'hello': 'world'}, exchange=ex, routing_key='rk',
                         declare=[Queue(q, ex, routing_key='rk')], serializer='json')
print(json.dumps([r1.id, r2.id]))
`

// TestInteropPythonPublishes: messages sent by Celery and by a plain kombu
// producer (through a named exchange) are fetched and registered by Go.
func TestInteropPythonPublishes(t *testing.T) {
	t.Parallel()
	testenv.RequirePython(t)
	e := newEnv(t, false, broker.Options{})
	out := python(t, pySendTask, testenv.URL(testenv.DBBroker), e.prefix, "pyq")
	var ids []string
	if err := json.Unmarshal([]byte(out), &ids); err != nil || len(ids) != 2 {
		t.Fatalf("python output %q: %v", out, err)
	}
	// Celery declared the queue the way Go does.
	if m := e.strings("SMEMBERS", e.k("_kombu.binding.pyq")); len(m) != 1 || m[0] != "pyq"+sep+sep+"pyq" {
		t.Fatalf("_kombu.binding.pyq = %q; keys %q", m, e.strings("KEYS", e.prefix+"*"))
	}
	if l := e.list("pyq" + sep + "3"); len(l) != 1 {
		t.Fatalf("priority 5 task not in pyq\\x06\\x163: %q", l)
	}
	ds := e.fetch([]string{"pyq"}, 10)
	if len(ds) != 3 {
		t.Fatalf("fetched %d, want 3", len(ds))
	}
	// Base list first (FIFO: task 1, then the kombu message), then step 3.
	var taskIDs []string
	for i, d := range ds {
		var env struct {
			Headers    map[string]any `json:"headers"`
			Properties struct {
				DeliveryTag  string `json:"delivery_tag"`
				DeliveryInfo struct {
					Exchange   string `json:"exchange"`
					RoutingKey string `json:"routing_key"`
				} `json:"delivery_info"`
			} `json:"properties"`
		}
		if err := json.Unmarshal(d.Raw, &env); err != nil {
			t.Fatal(err)
		}
		if d.Queue != "pyq" || d.DeadLettered || d.Tag == "" || d.Tag != env.Properties.DeliveryTag {
			t.Fatalf("delivery %d: %+v (envelope tag %q)", i, d, env.Properties.DeliveryTag)
		}
		stored := e.unacked(d.Tag)
		if want := "[" + string(d.Raw) + ", "; !strings.HasPrefix(stored, want) {
			t.Fatalf("unacked value does not start with the envelope as popped: %s", stored)
		}
		_, ex, rk := unackedEntry(t, stored)
		if ex != env.Properties.DeliveryInfo.Exchange || rk != env.Properties.DeliveryInfo.RoutingKey {
			t.Fatalf("unacked exchange/routing key %q/%q, envelope %+v", ex, rk, env.Properties.DeliveryInfo)
		}
		if id, _ := env.Headers["id"].(string); id != "" {
			taskIDs = append(taskIDs, id)
			if ex != "" || rk != "pyq" || env.Headers["task"] != "tests.add" {
				t.Fatalf("celery task routed via %q/%q: %v", ex, rk, env.Headers)
			}
		} else if ex != "interop_ex" || rk != "rk" {
			t.Fatalf("kombu message routed via %q/%q", ex, rk)
		}
	}
	if strings.Join(taskIDs, ",") != strings.Join(ids, ",") {
		t.Fatalf("task order %v, want %v", taskIDs, ids)
	}
	if ds[2].List != "pyq"+sep+"3" {
		t.Fatalf("priority task came from %q", ds[2].List)
	}
	// The named-exchange message restores through the binding kombu made.
	var named string
	for _, d := range ds {
		if _, ex, _ := unackedEntry(t, e.unacked(d.Tag)); ex == "interop_ex" {
			named = d.Tag
		}
	}
	if n, err := e.b.Restore(ctx(), named); err != nil || n != 1 {
		t.Fatalf("Restore via interop_ex = %d, %v", n, err)
	}
	if l := e.list("pyq"); len(l) != 1 || !strings.Contains(l[0], named) {
		t.Fatalf("pyq after restore = %q", l)
	}
}

const pyConsumeAndDie = `
import os, sys
from kombu import Connection
url, prefix, q = sys.argv[1], sys.argv[2], sys.argv[3]
c = Connection(url, transport_options={'global_keyprefix': prefix})
ch = c.default_channel
m = ch.basic_get(q, no_ack=False)
print(m.delivery_tag, flush=True)
os._exit(0)  # die holding the message: no restore on close
`

// TestInteropGoRestoresPythonDeliveries: Go's visibility restore handles
// the unacked entries a Python consumer left behind.
func TestInteropGoRestoresPythonDeliveries(t *testing.T) {
	t.Parallel()
	testenv.RequirePython(t)
	e := newEnv(t, true, broker.Options{VisibilityTimeout: 10 * time.Second})
	e.publish(msg("py-held", "Q", 0))
	tag := python(t, pyConsumeAndDie, testenv.URL(testenv.DBBroker), e.prefix, "Q")
	if tag != "py-held" {
		t.Fatalf("python took %q", tag)
	}
	stored := e.unacked(tag)
	if want := "[" + string(envelope("py-held", "", "Q", 0)) + `, "", "Q"]`; stored != want {
		t.Fatalf("python unacked value\n got %s\nwant %s", stored, want)
	}
	if n, err := e.b.RestoreVisible(ctx()); err != nil || n != 0 {
		t.Fatalf("RestoreVisible before the timeout = %d, %v", n, err)
	}
	e.clock.Advance(time.Minute)
	if n, err := e.b.RestoreVisible(ctx()); err != nil || n != 1 {
		t.Fatalf("RestoreVisible = %d, %v", n, err)
	}
	ds := e.fetch([]string{"Q"}, 1)
	if len(ds) != 1 || ds[0].Tag != tag {
		t.Fatalf("refetched %+v", ds)
	}
	if h, i, _, _ := redelivered(t, string(ds[0].Raw)); !h || !i {
		t.Fatalf("not flagged: %s", ds[0].Raw)
	}
}
