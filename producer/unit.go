package producer

import (
	"encoding/json"
	"fmt"

	"github.com/qagen/qagen/celery"
	"github.com/qagen/qagen/tasks"
)

// State is where a unit of work stands.
type State string

// Unit states. Every chunk of a run ends succeeded, failed or missing.
const (
	StatePending   State = "pending"
	StateSucceeded State = "succeeded"
	StateFailed    State = "failed"
	// StateMissing: no final result arrived before the run stopped
	// (--timeout, a stall, Ctrl-C). --resume sends it again.
	StateMissing State = "missing"
)

// Unit is one task: one chunk (generate_qa_unified_async) or, with
// --batch-chunks, several (generate_qa_for_batch_async, one LLM request).
type Unit struct {
	TaskID   string            `json:"task_id"`
	ChunkIDs []string          `json:"chunk_ids"`
	Chunks   []json.RawMessage `json:"chunks"` // chunk dicts as sent
	Config   json.RawMessage   `json:"config"` // the dataset config dict as sent
	Tokens   int               `json:"tokens"`

	State    State          `json:"state"`
	Error    string         `json:"error,omitempty"`
	Attempts int            `json:"attempts,omitempty"`
	Provider string         `json:"provider,omitempty"`
	Model    string         `json:"model,omitempty"`
	Usage    *tasks.Usage   `json:"usage,omitempty"`
	Pairs    []tasks.QAPair `json:"pairs,omitempty"`
}

// Batch reports whether the unit is sent as a batch task.
func (u *Unit) Batch() bool { return len(u.Chunks) > 1 }

// apply records a task result: its pairs on success, its error otherwise.
func (u *Unit) apply(r *tasks.QAResult) {
	u.Provider, u.Model, u.Usage = r.Provider, r.Model, r.Usage
	if r.Success {
		u.State, u.Error, u.Pairs = StateSucceeded, "", r.QAPairs
		return
	}
	u.State, u.Pairs = StateFailed, nil
	if r.Error != nil {
		u.Error = *r.Error
	} else {
		u.Error = "the task reported success=false without an error"
	}
}

// applyMeta records a result read from the backend; it reports whether the
// state is final.
func (u *Unit) applyMeta(m *celery.ResultMeta) bool {
	switch m.Status {
	case celery.StateSuccess:
		var r tasks.QAResult
		if err := json.Unmarshal(m.Result, &r); err != nil {
			u.State, u.Error = StateFailed, fmt.Sprintf("result is not a Q&A task result: %v", err)
			return true
		}
		u.apply(&r)
		return true
	case celery.StateFailure, celery.StateRevoked:
		u.State = StateFailed
		if exc, err := m.Exception(); err == nil {
			u.Error = fmt.Sprintf("%s: %s", m.Status, exc.Error())
		} else {
			u.Error = string(m.Status)
		}
		return true
	case celery.StateRetry:
		u.Attempts++
	}
	return false
}
