// Package e2e runs `qagen generate` end to end, as a user does: the binary
// (built once by TestMain) against `qagen fake-llm`, Go workers (`qagen
// worker`), a real Python Celery 5.2.6 worker serving the same task name
// (testdata/python/qa_standin.py), or in-process, over Redis database 6
// (testenv.DBE2E). Every test has its own queue and kombu key prefix, so
// the pre-flight worker check of one test never sees another test's
// workers, and the tests run in parallel.
//
//	go test ./internal/e2e -count=1 -v
package e2e
