package celery

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// State is a Celery task state.
type State string

// Task states. PENDING is never stored: it is what a missing key means.
const (
	StatePending  State = "PENDING"
	StateReceived State = "RECEIVED"
	StateStarted  State = "STARTED"
	StateSuccess  State = "SUCCESS"
	StateFailure  State = "FAILURE"
	StateRetry    State = "RETRY"
	StateRevoked  State = "REVOKED"
	StateRejected State = "REJECTED"
)

// Ready reports whether a client stops waiting on this state.
func (s State) Ready() bool {
	return s == StateSuccess || s == StateFailure || s == StateRevoked
}

// Extended holds the result_extended fields.
type Extended struct {
	Name    string
	Args    json.RawMessage
	Kwargs  json.RawMessage
	Worker  string
	Retries int
	Queue   string
}

// ResultMeta is the value of celery-task-meta-<id>.
type ResultMeta struct {
	Status State
	// Result is the JSON return value for SUCCESS, the exception dict for
	// FAILURE/RETRY/REVOKED, {"pid","hostname"} for STARTED.
	Result json.RawMessage
	// Traceback is empty for null.
	Traceback string
	// Children is the JSON list of result tuples; nil writes [].
	Children json.RawMessage
	// DateDone is nil for states that are not ready. It is written in its
	// own location (Celery 5.5 uses the app timezone).
	DateDone *time.Time
	GroupID  string
	ParentID string
	Extended *Extended
	TaskID   string
}

// MarshalJSON writes the meta with Celery's key order: status, result,
// traceback, children, date_done, [group_id], [parent_id], [extended], task_id.
func (r *ResultMeta) MarshalJSON() ([]byte, error) {
	return r.AppendJSON(make([]byte, 0, len(r.Result)+len(r.Traceback)+160)), nil
}

// AppendJSON appends the encoded meta to buf.
func (r *ResultMeta) AppendJSON(buf []byte) []byte {
	buf = append(buf, `{"status":`...)
	buf = appendString(buf, string(r.Status))
	buf = append(buf, `,"result":`...)
	buf = appendRaw(buf, r.Result, "null")
	buf = append(buf, `,"traceback":`...)
	buf = appendNullableString(buf, r.Traceback)
	buf = append(buf, `,"children":`...)
	buf = appendRaw(buf, r.Children, "[]")
	buf = append(buf, `,"date_done":`...)
	buf = appendTime(buf, r.DateDone)
	if r.GroupID != "" {
		buf = append(buf, `,"group_id":`...)
		buf = appendString(buf, r.GroupID)
	}
	if r.ParentID != "" {
		buf = append(buf, `,"parent_id":`...)
		buf = appendString(buf, r.ParentID)
	}
	if e := r.Extended; e != nil {
		buf = append(buf, `,"name":`...)
		buf = appendString(buf, e.Name)
		buf = append(buf, `,"args":`...)
		buf = appendRaw(buf, e.Args, "[]")
		buf = append(buf, `,"kwargs":`...)
		buf = appendRaw(buf, e.Kwargs, "{}")
		buf = append(buf, `,"worker":`...)
		buf = appendString(buf, e.Worker)
		buf = append(buf, `,"retries":`...)
		buf = strconv.AppendInt(buf, int64(e.Retries), 10)
		buf = append(buf, `,"queue":`...)
		buf = appendString(buf, e.Queue)
	}
	buf = append(buf, `,"task_id":`...)
	buf = appendString(buf, r.TaskID)
	return append(buf, '}')
}

type resultJSON struct {
	Status    State           `json:"status"`
	Result    json.RawMessage `json:"result"`
	Traceback *string         `json:"traceback"`
	Children  json.RawMessage `json:"children"`
	DateDone  *string         `json:"date_done"`
	GroupID   string          `json:"group_id"`
	ParentID  string          `json:"parent_id"`
	Name      *string         `json:"name"`
	Args      json.RawMessage `json:"args"`
	Kwargs    json.RawMessage `json:"kwargs"`
	Worker    string          `json:"worker"`
	Retries   int             `json:"retries"`
	Queue     string          `json:"queue"`
	TaskID    string          `json:"task_id"`
}

// ParseResult decodes a stored result meta (Celery 5.2 naive or 5.4+ aware
// date_done; NaN tolerated).
func ParseResult(data []byte) (*ResultMeta, error) {
	var j resultJSON
	if err := Unmarshal(data, &j); err != nil {
		return nil, fmt.Errorf("celery: result meta is not valid JSON: %w", err)
	}
	if j.Status == "" {
		return nil, fmt.Errorf("celery: result meta has no status")
	}
	r := &ResultMeta{Status: j.Status, Result: j.Result, Children: j.Children,
		GroupID: j.GroupID, ParentID: j.ParentID, TaskID: j.TaskID}
	if j.Traceback != nil {
		r.Traceback = *j.Traceback
	}
	if j.DateDone != nil && *j.DateDone != "" {
		t, err := ParseTime(*j.DateDone, nil)
		if err != nil {
			return nil, err
		}
		r.DateDone = &t
	}
	if j.Name != nil {
		r.Extended = &Extended{Name: *j.Name, Args: j.Args, Kwargs: j.Kwargs, Worker: j.Worker, Retries: j.Retries, Queue: j.Queue}
	}
	return r, nil
}

// Exception decodes the stored exception of a FAILURE, RETRY or REVOKED
// result; the traceback text is attached.
func (r *ResultMeta) Exception() (*Exception, error) {
	e, err := ExceptionFromJSON(r.Result)
	if err != nil {
		return nil, err
	}
	e.Traceback = r.Traceback
	return e, nil
}

// ResultKey is the backend key (and pub/sub channel) of a task's result.
func ResultKey(taskID string) string { return "celery-task-meta-" + taskID }

// ResultTuple encodes an AsyncResult as Celery writes it in "children":
// [[id, null], null].
func ResultTuple(id string) json.RawMessage {
	buf := append([]byte(`[[`), appendString(nil, id)...)
	return append(buf, `,null],null]`...)
}
