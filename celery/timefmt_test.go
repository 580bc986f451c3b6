package celery_test

import (
	"testing"
	"time"

	"github.com/qagen/qagen/celery"
)

func TestParseTime(t *testing.T) {
	tokyo := time.FixedZone("", 9*3600)
	ist := time.FixedZone("", -(5*3600 + 30*60))
	cases := []struct {
		in     string
		want   time.Time
		offset int // expected zone offset in seconds
	}{
		{"2024-01-02T03:04:05Z", time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), 0},
		{"2024-01-02T03:04:05.678901Z", time.Date(2024, 1, 2, 3, 4, 5, 678901000, time.UTC), 0},
		{"2024-01-02T03:04:05+00:00", time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), 0},
		{"2026-11-27T09:39:30.138767+09:00", time.Date(2026, 11, 27, 9, 39, 30, 138767000, tokyo), 9 * 3600},
		{"2024-01-02T03:04:05-0530", time.Date(2024, 1, 2, 3, 4, 5, 0, ist), -(5*3600 + 30*60)},
		{"2024-01-02T03:04:05-05:30", time.Date(2024, 1, 2, 3, 4, 5, 0, ist), -(5*3600 + 30*60)},
		{"2024-01-02T03:04:05+09", time.Date(2024, 1, 2, 3, 4, 5, 0, tokyo), 9 * 3600},
		// Naive means UTC (5.2.6 date_done).
		{"2026-11-26T23:33:39.139842", time.Date(2026, 11, 26, 23, 33, 39, 139842000, time.UTC), 0},
		{"2024-01-02T03:04:05", time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), 0},
		// No fraction, no seconds, date only, year-month.
		{"2024-01-02T03:04", time.Date(2024, 1, 2, 3, 4, 0, 0, time.UTC), 0},
		{"2024-01-02", time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC), 0},
		{"2024-03", time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), 0},
		{"2024-1-2T03:04:05", time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), 0},
		// Celery's grammar accepts any separator between date and time.
		{"2024-01-02 03:04:05+00:00", time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), 0},
		// Fractions are decimal fractions of a second, whatever their length.
		{"2024-01-02T03:04:05.5Z", time.Date(2024, 1, 2, 3, 4, 5, 500000000, time.UTC), 0},
		{"2024-01-02T03:04:05.123Z", time.Date(2024, 1, 2, 3, 4, 5, 123000000, time.UTC), 0},
		{"2024-01-02T03:04:05.123456Z", time.Date(2024, 1, 2, 3, 4, 5, 123456000, time.UTC), 0},
		{"2024-01-02T03:04:05.123456789Z", time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.UTC), 0},
		{"2024-01-02T03:04:05.000000001Z", time.Date(2024, 1, 2, 3, 4, 5, 1, time.UTC), 0},
		{"2024-01-02T03:04:05.1234567891234Z", time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.UTC), 0},
		{"2024-01-02T03:04:05,25Z", time.Date(2024, 1, 2, 3, 4, 5, 250000000, time.UTC), 0},
		{"2024-02-29T00:00:00Z", time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC), 0},
	}
	for _, c := range cases {
		got, err := celery.ParseTime(c.in, nil)
		if err != nil {
			t.Errorf("ParseTime(%q): %v", c.in, err)
			continue
		}
		if !got.Equal(c.want) {
			t.Errorf("ParseTime(%q) = %s, want %s", c.in, got.Format(time.RFC3339Nano), c.want.Format(time.RFC3339Nano))
		}
		if _, off := got.Zone(); off != c.offset {
			t.Errorf("ParseTime(%q) offset = %d, want %d", c.in, off, c.offset)
		}
		// The wall clock is kept as written, in the given offset.
		if got.Hour() != c.want.Hour() || got.Day() != c.want.Day() {
			t.Errorf("ParseTime(%q) wall clock %s", c.in, got)
		}
	}
}

func TestParseTimeNaiveLocation(t *testing.T) {
	tokyo := time.FixedZone("JST", 9*3600)
	got, err := celery.ParseTime("2024-01-02T03:04:05", tokyo)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2024, 1, 1, 18, 4, 5, 0, time.UTC); !got.Equal(want) {
		t.Errorf("naive in Tokyo = %v, want %v", got, want)
	}
	// An explicit zone wins over the naive location.
	got, err = celery.ParseTime("2024-01-02T03:04:05Z", tokyo)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC); !got.Equal(want) {
		t.Errorf("Z with naive Tokyo = %v, want %v", got, want)
	}
}

func TestParseTimeInvalid(t *testing.T) {
	for _, in := range []string{
		"",
		"garbage",
		"24-01-02",
		"2024-01-02T03:04:05Zjunk",
		"2024-01-02T03:04:05+9:00",
		"2024-01-02T03:04:05.Z",
		"2024-01-02T03:04:05 +00:00",
		"2024-01-02T3:04:05",
		"2024-13-01T00:00:00",
		"2024-00-10T00:00:00",
		"2024-01-00T00:00:00",
		"2024-01-32T00:00:00",
		"2024-02-30T00:00:00", // no such day: Python's datetime() refuses it
		"2023-02-29T00:00:00",
		"2024-04-31T00:00:00",
		"2024-01-02T24:00:00",
		"2024-01-02T23:60:00",
		"2024-01-02T23:59:60", // no leap seconds in Python's datetime (all of 5.2.6, 5.3, 5.4+ refuse it)
		"9999-12-31T23:59:60", // and rolling it over would leave year 10000, which FormatTime cannot write
		"2024-01-02T23:59:61",
		"2024-01-02T03:04:05+24:00", // |offset| must be < 24h
		"2024-01-02T03:04:05+05:60",
		"0000-01-01T00:00:00", // datetime.MINYEAR is 1
		"2024-01-02T03:04:05.123456\n",
		" 2024-01-02T03:04:05",
		"２０２４-01-02",
	} {
		if got, err := celery.ParseTime(in, nil); err == nil {
			t.Errorf("ParseTime(%q) = %v, want an error", in, got)
		}
	}
}

func TestFormatParseRoundTrip(t *testing.T) {
	zones := []*time.Location{time.UTC, time.FixedZone("", 9*3600), time.FixedZone("", -(3*3600 + 30*60)), time.FixedZone("", 14*3600)}
	for _, loc := range zones {
		for _, ns := range []int{0, 1, 999, 1000, 123456789, 999999999} {
			in := time.Date(2026, 11, 27, 23, 59, 59, ns, loc)
			s := celery.FormatTime(in)
			if !wireTime.MatchString(s) {
				t.Errorf("FormatTime = %q, not wire format", s)
			}
			got, err := celery.ParseTime(s, nil)
			if err != nil {
				t.Fatalf("ParseTime(FormatTime) %q: %v", s, err)
			}
			if !got.Equal(in.Truncate(time.Microsecond)) {
				t.Errorf("round trip %q = %v, want %v", s, got, in.Truncate(time.Microsecond))
			}
			if celery.FormatTime(got) != s {
				t.Errorf("FormatTime(ParseTime(%q)) = %q", s, celery.FormatTime(got))
			}
		}
	}
}
