// Package interop holds the cross-language test suite: the qagen Go worker
// and producer against Debian's real Python Celery 5.2.6 (kombu 5.2.4,
// redis-py 4.3.4), run with /usr/bin/python3, over Redis database 14
// (testenv.DBInterop).
//
// The tests build cmd/qagen once (TestMain), start worker processes on
// queues of their own, and drive the Python side with the scripts in
// testdata/python, which print one JSON line of observations each.
//
// control_test.go drives the Go worker's remote control and events with the
// real Python tools: the `celery` command line (inspect, status, control,
// with testdata/python/celeryconfig_interop.py for the key prefix),
// app.control, app.events.Receiver and celery.events.state.State
// (testdata/python/control.py). Each of its workers has a key prefix of its
// own, which the pidbox and event channels carry, so parallel tests never
// answer each other's broadcasts.
//
//	go test ./internal/interop -count=1 -v
//
// The tests mostly wait (task sleeps, ETAs, visibility timeouts), so unless
// -parallel is given they run with a parallelism of 8 instead of GOMAXPROCS.
// With QAGEN_INTEROP_RACE=1 the workers are built with -race, and a worker
// that reports a data race fails its test.
package interop
