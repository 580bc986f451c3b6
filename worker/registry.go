package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/qagen/qagen/celery"
)

// DefaultMaxRetries and DefaultRetryDelay are Celery's task defaults.
const (
	DefaultMaxRetries = 3
	DefaultRetryDelay = 180 * time.Second
)

// TaskOptions are per-task settings, like the attributes of a Celery task.
type TaskOptions struct {
	// MaxRetries bounds retries; negative means unlimited (Celery's None).
	MaxRetries int
	// RetryDelay is the countdown of a retry that names none
	// (default_retry_delay).
	RetryDelay time.Duration
	// TimeLimit and SoftTimeLimit override the worker defaults when > 0;
	// the message's timelimit header overrides both.
	TimeLimit     time.Duration
	SoftTimeLimit time.Duration
	// IgnoreResult suppresses SUCCESS results (failures are still stored).
	IgnoreResult bool
	// AcksLate overrides the worker's acks_late setting when non-nil.
	AcksLate *bool
	// RateLimit is Celery's per-worker rate_limit ("10/s", "100/m").
	RateLimit string
}

// TaskOption sets a TaskOptions field.
type TaskOption func(*TaskOptions)

// WithMaxRetries sets max_retries; negative means unlimited.
func WithMaxRetries(n int) TaskOption { return func(o *TaskOptions) { o.MaxRetries = n } }

// WithRetryDelay sets default_retry_delay.
func WithRetryDelay(d time.Duration) TaskOption { return func(o *TaskOptions) { o.RetryDelay = d } }

// WithTimeLimits sets the task's hard and soft time limits.
func WithTimeLimits(hard, soft time.Duration) TaskOption {
	return func(o *TaskOptions) { o.TimeLimit, o.SoftTimeLimit = hard, soft }
}

// WithIgnoreResult makes the task not store SUCCESS results.
func WithIgnoreResult() TaskOption { return func(o *TaskOptions) { o.IgnoreResult = true } }

// WithAcksLate overrides the worker's acks_late for this task.
func WithAcksLate(late bool) TaskOption { return func(o *TaskOptions) { o.AcksLate = &late } }

// WithRateLimit sets Celery's per-worker rate limit ("10/s", "100/m", "1000/h").
func WithRateLimit(spec string) TaskOption { return func(o *TaskOptions) { o.RateLimit = spec } }

// handler runs a task on raw JSON args and kwargs and returns the encoded
// result.
type handler func(ctx context.Context, args, kwargs json.RawMessage) (json.RawMessage, error)

type taskDef struct {
	name   string
	params []string // for error messages and `registered`
	run    handler
	opts   TaskOptions
}

// Registry maps task names to handlers.
type Registry struct {
	tasks map[string]*taskDef
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{tasks: map[string]*taskDef{}} }

// Names lists the registered task names, sorted.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.tasks))
	for n := range r.tasks {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (r *Registry) lookup(name string) *taskDef { return r.tasks[name] }

// Register adds a task whose arguments are bound to the struct type A the
// way Python binds a call to a function signature: positional args fill the
// exported fields in order, kwargs fill them by name. A field's name is its
// `celery:"name"` tag or its snake_case field name; `celery:"name,optional"`
// marks a parameter with a default (the zero value, or whatever the field
// already holds in the zero A). A field of type json.RawMessage takes any
// JSON value. The result R is encoded as JSON.
//
// Use A = RawArgs to receive the arguments undecoded.
func Register[A, R any](r *Registry, name string, fn func(ctx context.Context, args A) (R, error), opts ...TaskOption) {
	b, err := newBinder[A](name)
	if err != nil {
		panic(err)
	}
	o := TaskOptions{MaxRetries: DefaultMaxRetries, RetryDelay: DefaultRetryDelay}
	for _, opt := range opts {
		opt(&o)
	}
	r.tasks[name] = &taskDef{name: name, params: b.names(), opts: o,
		run: func(ctx context.Context, args, kwargs json.RawMessage) (json.RawMessage, error) {
			a, err := b.bind(args, kwargs)
			if err != nil {
				return nil, &ArgumentError{Exc: err.(*celery.Exception)}
			}
			res, err := fn(ctx, a)
			if err != nil {
				return nil, err
			}
			out, err := json.Marshal(res)
			if err != nil {
				return nil, celery.NewException("EncodeError", celery.ModuleKombu, "cannot encode the result of "+name+" as JSON: "+err.Error())
			}
			return out, nil
		}}
}

// ArgumentError means a message's arguments do not fit the task's
// signature (Python's TypeError); the worker stores FAILURE and keeps the
// message in the dead-letter list.
type ArgumentError struct{ Exc *celery.Exception }

func (e *ArgumentError) Error() string { return e.Exc.Error() }
func (e *ArgumentError) Unwrap() error { return e.Exc }

// RawArgs receives a task's arguments undecoded.
type RawArgs struct {
	Args   json.RawMessage // JSON array
	Kwargs json.RawMessage // JSON object
}

type param struct {
	name     string
	index    int
	optional bool
	raw      bool // json.RawMessage field
}

type binder[A any] struct {
	task   string
	raw    bool
	params []param
	byName map[string]int
}

var rawMessageType = reflect.TypeOf(json.RawMessage(nil))

func newBinder[A any](task string) (*binder[A], error) {
	b := &binder[A]{task: task, byName: map[string]int{}}
	t := reflect.TypeOf((*A)(nil)).Elem()
	if t == reflect.TypeOf(RawArgs{}) {
		b.raw = true
		return b, nil
	}
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("worker: task %s: argument type %s must be a struct", task, t)
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("celery")
		if tag == "-" {
			continue
		}
		name, flags, _ := strings.Cut(tag, ",")
		if name == "" {
			name = snakeCase(f.Name)
		}
		if _, dup := b.byName[name]; dup {
			return nil, fmt.Errorf("worker: task %s: two parameters named %q", task, name)
		}
		b.byName[name] = len(b.params)
		b.params = append(b.params, param{name: name, index: i, optional: flags == "optional", raw: f.Type == rawMessageType})
	}
	return b, nil
}

func (b *binder[A]) names() []string {
	if b.raw {
		return []string{"*args", "**kwargs"}
	}
	out := make([]string, len(b.params))
	for i, p := range b.params {
		out[i] = p.name
		if p.optional {
			out[i] += "=…"
		}
	}
	return out
}

func typeError(format string, a ...any) error {
	return celery.NewException("TypeError", celery.ModuleBuiltins, fmt.Sprintf(format, a...))
}

func (b *binder[A]) bind(args, kwargs json.RawMessage) (A, error) {
	var a A
	if b.raw {
		*(any(&a).(*RawArgs)) = RawArgs{Args: args, Kwargs: kwargs}
		return a, nil
	}
	var pos []json.RawMessage
	if len(args) > 0 {
		if err := celery.Unmarshal(args, &pos); err != nil {
			return a, typeError("%s() args must be a list: %v", b.task, err)
		}
	}
	var kw map[string]json.RawMessage
	if len(kwargs) > 0 {
		if err := celery.Unmarshal(kwargs, &kw); err != nil {
			return a, typeError("%s() kwargs must be a mapping: %v", b.task, err)
		}
	}
	if len(pos) > len(b.params) {
		return a, typeError("%s() takes %d positional arguments but %d were given", b.task, len(b.params), len(pos))
	}
	v := reflect.ValueOf(&a).Elem()
	set := make([]bool, len(b.params))
	assign := func(p param, raw json.RawMessage) error {
		field := v.Field(p.index)
		if p.raw {
			field.SetBytes(append([]byte(nil), raw...))
			return nil
		}
		if celery.HasMarkers(raw) {
			var err error
			if raw, err = celery.UnwrapMarkers(raw); err != nil {
				return typeError("%s() argument '%s': %v", b.task, p.name, err)
			}
		}
		if err := celery.Unmarshal(raw, field.Addr().Interface()); err != nil {
			return typeError("%s() argument '%s' has the wrong type: %s", b.task, p.name, describeJSONError(err, raw))
		}
		return nil
	}
	for i, raw := range pos {
		if err := assign(b.params[i], raw); err != nil {
			return a, err
		}
		set[i] = true
	}
	for name, raw := range kw {
		i, ok := b.byName[name]
		if !ok {
			return a, typeError("%s() got an unexpected keyword argument '%s'", b.task, name)
		}
		if set[i] {
			return a, typeError("%s() got multiple values for argument '%s'", b.task, name)
		}
		if err := assign(b.params[i], raw); err != nil {
			return a, err
		}
		set[i] = true
	}
	var missing []string
	for i, p := range b.params {
		if !set[i] && !p.optional {
			missing = append(missing, "'"+p.name+"'")
		}
	}
	if len(missing) > 0 {
		return a, typeError("%s() missing %d required argument(s): %s", b.task, len(missing), strings.Join(missing, ", "))
	}
	return a, nil
}

func describeJSONError(err error, raw json.RawMessage) string {
	var ute *json.UnmarshalTypeError
	if e, ok := err.(*json.UnmarshalTypeError); ok {
		ute = e
		return fmt.Sprintf("got JSON %s %s, want %s", ute.Value, abbreviate(raw), ute.Type)
	}
	return err.Error()
}

func abbreviate(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) > 40 {
		return string(b[:40]) + "…"
	}
	return string(b)
}

func snakeCase(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i, r := range rs {
		if unicode.IsUpper(r) {
			if i > 0 && (unicode.IsLower(rs[i-1]) || (i+1 < len(rs) && unicode.IsLower(rs[i+1]))) {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(r))
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}
