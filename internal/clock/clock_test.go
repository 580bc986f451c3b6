package clock

import (
	"testing"
	"time"
)

func TestFakeTimersFireInOrderOnAdvance(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := NewFake(start)
	var fired []string
	c.AfterFunc(3*time.Second, func() { fired = append(fired, "3s") })
	c.AfterFunc(time.Second, func() { fired = append(fired, "1s") })
	stopped := c.AfterFunc(2*time.Second, func() { fired = append(fired, "2s") })
	if !stopped.Stop() {
		t.Fatal("Stop of a pending timer returned false")
	}
	c.Advance(999 * time.Millisecond)
	if len(fired) != 0 {
		t.Fatalf("fired early: %v", fired)
	}
	c.Advance(5 * time.Second)
	if len(fired) != 2 || fired[0] != "1s" || fired[1] != "3s" {
		t.Fatalf("fired %v", fired)
	}
	if got := c.Now(); !got.Equal(start.Add(5999 * time.Millisecond)) {
		t.Fatalf("now %v", got)
	}
	if c.Pending() != 0 {
		t.Fatalf("pending %d", c.Pending())
	}
}

func TestFakeTimerCallbackMaySchedule(t *testing.T) {
	c := NewFake(time.Unix(0, 0))
	var at []time.Time
	c.AfterFunc(time.Second, func() {
		at = append(at, c.Now())
		c.AfterFunc(time.Second, func() { at = append(at, c.Now()) })
	})
	c.Advance(10 * time.Second)
	if len(at) != 2 || at[0].Unix() != 1 || at[1].Unix() != 2 {
		t.Fatalf("chained timers fired at %v", at)
	}
}

func TestFakeTicker(t *testing.T) {
	c := NewFake(time.Unix(0, 0))
	tk := c.NewTicker(time.Minute)
	c.Advance(59 * time.Second)
	select {
	case <-tk.C():
		t.Fatal("ticked early")
	default:
	}
	c.Advance(time.Second)
	select {
	case now := <-tk.C():
		if now.Unix() != 60 {
			t.Fatalf("tick at %v", now)
		}
	default:
		t.Fatal("no tick")
	}
	tk.Stop()
	c.Advance(time.Hour)
	select {
	case <-tk.C():
		t.Fatal("tick after Stop")
	default:
	}
}
