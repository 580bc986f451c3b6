package celery

import (
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// TimeLayout is how dates go on the wire: always six fraction digits and a
// numeric offset. Celery 5.2.6 reads fraction digits as a raw microsecond
// count and rejects nine digits, so shorter or longer fractions are unsafe.
const TimeLayout = "2006-01-02T15:04:05.000000-07:00"

// FormatTime formats t in its own location with TimeLayout.
func FormatTime(t time.Time) string { return t.Format(TimeLayout) }

// iso8601 follows the grammar of celery/utils/iso8601.py: optional parts from
// the month on, any single separator between date and time, optional
// fraction of any length, and a zone of Z, ±HH:MM, ±HHMM or ±HH.
var iso8601 = regexp.MustCompile(`^(\d{4})(?:-(\d{1,2})(?:-(\d{1,2})(?:.(\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?(Z|[-+]\d{2}(?::?\d{2})?)?)?)?)?$`)

// ParseTime parses the ISO-8601 timestamps Celery peers write (eta, expires,
// date_done). A timestamp without a zone is naive and is read in naive
// (UTC when naive is nil), as Celery does with enable_utc.
func ParseTime(s string, naive *time.Location) (time.Time, error) {
	m := iso8601.FindStringSubmatch(s)
	if m == nil {
		return time.Time{}, fmt.Errorf("celery: invalid ISO-8601 time %q", s)
	}
	num := func(i, def int) int {
		if m[i] == "" {
			return def
		}
		n, _ := strconv.Atoi(m[i])
		return n
	}
	year, month, day := num(1, 0), num(2, 1), num(3, 1)
	hour, minute, second := num(4, 0), num(5, 0), num(6, 0)
	if year < 1 || month < 1 || month > 12 || day < 1 || day > daysIn(year, month) || hour > 23 || minute > 59 || second > 59 {
		return time.Time{}, fmt.Errorf("celery: invalid ISO-8601 time %q", s)
	}
	nsec := 0
	if frac := m[7]; frac != "" {
		if len(frac) > 9 {
			frac = frac[:9]
		}
		n, _ := strconv.Atoi(frac)
		for i := len(frac); i < 9; i++ {
			n *= 10
		}
		nsec = n
	}
	loc := naive
	if loc == nil {
		loc = time.UTC
	}
	switch zone := m[8]; {
	case zone == "Z":
		loc = time.UTC
	case zone != "":
		sign := 1
		if zone[0] == '-' {
			sign = -1
		}
		digits := zone[1:]
		if len(digits) > 2 && digits[2] == ':' {
			digits = digits[:2] + digits[3:]
		}
		h, _ := strconv.Atoi(digits[:2])
		mm := 0
		if len(digits) >= 4 {
			mm, _ = strconv.Atoi(digits[2:4])
		}
		if h > 23 || mm > 59 {
			return time.Time{}, fmt.Errorf("celery: invalid UTC offset in ISO-8601 time %q", s)
		}
		offset := sign * (h*3600 + mm*60)
		if offset == 0 {
			loc = time.UTC
		} else {
			loc = time.FixedZone("", offset)
		}
	}
	return time.Date(year, time.Month(month), day, hour, minute, second, nsec, loc), nil
}

// daysIn is the number of days in the month, so that an impossible date such
// as February 30 is refused (as Python's datetime does) instead of rolling
// over into the next month.
func daysIn(year, month int) int {
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}
