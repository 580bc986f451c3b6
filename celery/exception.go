package celery

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Python modules of the exceptions Celery peers expect.
const (
	ModuleBuiltins = "builtins"
	ModuleCelery   = "celery.exceptions"
	ModuleBilliard = "billiard.exceptions"
	ModuleKombu    = "kombu.exceptions"
)

// Exception is an error with a Python exception identity. It is stored in
// FAILURE, RETRY and REVOKED results as {"exc_type", "exc_message",
// "exc_module"}, which Python's AsyncResult.get() re-raises as that class
// (builtins and already-imported modules) or a synthesized one.
type Exception struct {
	Type   string // class name, e.g. "ValueError"
	Module string // e.g. "builtins"
	Args   []any  // the exception's args; usually one message string
	// Traceback is the text stored in the result's traceback field. Empty
	// means null, which is what Celery stores for revokes, hard time limits
	// and unknown tasks.
	Traceback string
}

// NewException returns an exception of the given type and module whose only
// argument is msg.
func NewException(typ, module, msg string) *Exception {
	return &Exception{Type: typ, Module: module, Args: []any{msg}}
}

// Error renders the exception like Python's traceback footer: "Type: msg".
func (e *Exception) Error() string {
	switch len(e.Args) {
	case 0:
		return e.Type
	case 1:
		if s, ok := e.Args[0].(string); ok {
			return e.Type + ": " + s
		}
	}
	parts := make([]string, len(e.Args))
	for i, a := range e.Args {
		parts[i] = fmt.Sprint(a)
	}
	return e.Type + ": " + strings.Join(parts, ", ")
}

// Message returns the exception text without the type prefix.
func (e *Exception) Message() string {
	return strings.TrimPrefix(strings.TrimPrefix(e.Error(), e.Type), ": ")
}

// Repr renders the exception as Python's repr() would, e.g. ValueError('boom');
// Celery puts this in task-failed events and revoke replies.
func (e *Exception) Repr() string {
	parts := make([]string, len(e.Args))
	for i, a := range e.Args {
		parts[i] = PyRepr(a)
	}
	return e.Type + "(" + strings.Join(parts, ", ") + ")"
}

// ExceptionInfo is the JSON shape of an encoded exception.
type ExceptionInfo struct {
	Type    string          `json:"exc_type"`
	Message json.RawMessage `json:"exc_message"`
	Module  string          `json:"exc_module"`
}

// MarshalJSON encodes the exception as Celery's exception dict.
func (e *Exception) MarshalJSON() ([]byte, error) {
	args := e.Args
	if args == nil {
		args = []any{}
	}
	msg, err := json.Marshal(args)
	if err != nil {
		return nil, err
	}
	return json.Marshal(ExceptionInfo{Type: e.Type, Message: msg, Module: e.Module})
}

// ExceptionFromJSON decodes an exception dict. A non-list exc_message becomes
// the single argument, as Python does.
func ExceptionFromJSON(raw []byte) (*Exception, error) {
	var info ExceptionInfo
	if err := Unmarshal(raw, &info); err != nil {
		return nil, fmt.Errorf("celery: result is not an exception dict: %w", err)
	}
	if info.Type == "" {
		return nil, fmt.Errorf("celery: result is not an exception dict (no exc_type)")
	}
	e := &Exception{Type: info.Type, Module: info.Module}
	if len(info.Message) > 0 {
		var args []any
		if err := Unmarshal(info.Message, &args); err == nil {
			e.Args = args
		} else {
			var one any
			if err := Unmarshal(info.Message, &one); err == nil && one != nil {
				e.Args = []any{one}
			}
		}
	}
	return e, nil
}

// Well-known exceptions.

// ErrNotRegistered is stored for a task name this worker does not know.
func ErrNotRegistered(name string) *Exception {
	return NewException("NotRegistered", ModuleCelery, name)
}

// ErrRevoked is TaskRevokedError with reason "revoked", "expired" or "terminated".
func ErrRevoked(reason string) *Exception {
	return NewException("TaskRevokedError", ModuleCelery, reason)
}

// ErrSoftTimeLimit is raised into a task when its soft time limit passes.
func ErrSoftTimeLimit() *Exception {
	return &Exception{Type: "SoftTimeLimitExceeded", Module: ModuleBilliard, Args: []any{}}
}

// ErrTimeLimit is stored when a task passes its hard time limit (seconds).
func ErrTimeLimit(hard float64) *Exception {
	return &Exception{Type: "TimeLimitExceeded", Module: ModuleBilliard, Args: []any{hard}}
}

// ErrMaxRetriesExceeded is stored when a task asks for a retry after its
// last allowed attempt and gave no exception of its own.
func ErrMaxRetriesExceeded(task, id string, args, kwargs json.RawMessage) *Exception {
	return NewException("MaxRetriesExceededError", ModuleCelery,
		fmt.Sprintf("Can't retry %s[%s] args:%s kwargs:%s", task, id, ReprJSON(args, "()"), ReprJSON(kwargs, "{}")))
}
