package worker

import (
	"context"
	"encoding/json"
	"time"

	"github.com/qagen/qagen/celery"
)

// Request describes the task being run, like Celery's task.request.
type Request struct {
	ID       string
	Task     string
	Args     json.RawMessage
	Kwargs   json.RawMessage
	Retries  int
	ETA      *time.Time
	Expires  *time.Time
	RootID   string
	ParentID string
	GroupID  string
	// Hostname is the worker's nodename, e.g. qa_worker@host.
	Hostname     string
	DeliveryInfo celery.DeliveryInfo
	Priority     int
	Redelivered  bool
	// TimeLimit and SoftTimeLimit are the limits in force (0: none).
	TimeLimit     time.Duration
	SoftTimeLimit time.Duration

	msg *celery.TaskMessage
}

// Header returns a message header, including custom ones.
func (r *Request) Header(name string) (json.RawMessage, bool) { return r.msg.Header(name) }

type requestKey struct{}

// RequestFrom returns the request of the task running with ctx, or nil.
func RequestFrom(ctx context.Context) *Request {
	r, _ := ctx.Value(requestKey{}).(*Request)
	return r
}

// WithRequest attaches a request to ctx; tests use it to call task bodies
// directly.
func WithRequest(ctx context.Context, r *Request) context.Context {
	return context.WithValue(ctx, requestKey{}, r)
}
