package celery

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Signature is the JSON form of celery.canvas.Signature, as embedded in
// callbacks, errbacks, chains and chords.
type Signature struct {
	Task        string          `json:"task"`
	Args        json.RawMessage `json:"args"`
	Kwargs      json.RawMessage `json:"kwargs"`
	Options     json.RawMessage `json:"options"`
	SubtaskType *string         `json:"subtask_type"`
	Immutable   bool            `json:"immutable"`
}

// Embed is the third element of a protocol v2 body.
type Embed struct {
	Callbacks []Signature `json:"callbacks"`
	Errbacks  []Signature `json:"errbacks"`
	// Chain holds the rest of a chain in reverse: the last element runs next.
	Chain []Signature `json:"chain"`
	Chord *Signature  `json:"chord"`
}

// TimeLimit is the timelimit header: hard first, then soft, in seconds;
// nil means "not set" and leaves the worker's default in force.
type TimeLimit [2]*float64

// Hard returns the hard limit, or 0.
func (t TimeLimit) Hard() float64 {
	if t[0] == nil {
		return 0
	}
	return *t[0]
}

// Soft returns the soft limit, or 0.
func (t TimeLimit) Soft() float64 {
	if t[1] == nil {
		return 0
	}
	return *t[1]
}

// TaskMessage is a decoded task message, protocol v1 and v2 alike.
type TaskMessage struct {
	// Protocol is 1 or 2.
	Protocol int

	ID       string
	Task     string
	Shadow   string
	Args     json.RawMessage // JSON array
	Kwargs   json.RawMessage // JSON object
	Embed    Embed
	embedRaw json.RawMessage

	ETA        *time.Time
	Expires    *time.Time
	Group      string
	GroupIndex *int
	Retries    int
	TimeLimit  TimeLimit
	RootID     string
	ParentID   string
	ArgsRepr   string
	KwargsRepr string
	Origin     string
	// IgnoreResult suppresses the SUCCESS write (failures are still stored).
	IgnoreResult        bool
	ReplacedTaskNesting int
	StampedHeaders      []string
	Stamps              json.RawMessage
	// Headers holds custom headers to send (a JSON object; standard keys in
	// it are ignored by EncodeTask). For a decoded v2 message, RawHeaders
	// returns every header it carried.
	Headers json.RawMessage
	// raw is the envelope the message was decoded from.
	raw []byte

	// Transport fields.
	ContentType     string
	ContentEncoding string
	Compression     string
	Priority        int
	DeliveryTag     string
	DeliveryInfo    DeliveryInfo
	Redelivered     bool
	ReplyTo         string
	CorrelationID   string
}

// v2Headers are the protocol v2 headers qagen reads.
type v2Headers struct {
	Lang                string          `json:"lang"`
	Task                string          `json:"task"`
	ID                  string          `json:"id"`
	Shadow              string          `json:"shadow"`
	ETA                 string          `json:"eta"`
	Expires             string          `json:"expires"`
	Group               string          `json:"group"`
	GroupIndex          *int            `json:"group_index"`
	Retries             LenientInt      `json:"retries"`
	TimeLimit           TimeLimit       `json:"timelimit"`
	RootID              string          `json:"root_id"`
	ParentID            string          `json:"parent_id"`
	ArgsRepr            string          `json:"argsrepr"`
	KwargsRepr          string          `json:"kwargsrepr"`
	Origin              string          `json:"origin"`
	IgnoreResult        bool            `json:"ignore_result"`
	ReplacedTaskNesting LenientInt      `json:"replaced_task_nesting"`
	StampedHeaders      []string        `json:"stamped_headers"`
	Stamps              json.RawMessage `json:"stamps"`
	Compression         string          `json:"compression"`
	Redelivered         bool            `json:"redelivered"`
}

// v1Body is a protocol v1 body: the whole task in one object.
type v1Body struct {
	Task       string          `json:"task"`
	ID         string          `json:"id"`
	Args       json.RawMessage `json:"args"`
	Kwargs     json.RawMessage `json:"kwargs"`
	Group      string          `json:"group"`
	Taskset    string          `json:"taskset"`
	GroupIndex *int            `json:"group_index"`
	Retries    LenientInt      `json:"retries"`
	ETA        string          `json:"eta"`
	Expires    string          `json:"expires"`
	UTC        *bool           `json:"utc"`
	Callbacks  []Signature     `json:"callbacks"`
	Errbacks   []Signature     `json:"errbacks"`
	TimeLimit  TimeLimit       `json:"timelimit"`
	Chord      *Signature      `json:"chord"`
}

// MessageError is a message that cannot be run. TaskID and Task are filled
// in when the message revealed them, so a FAILURE can be stored for clients.
type MessageError struct {
	TaskID string
	Task   string
	Exc    *Exception
}

func (e *MessageError) Error() string {
	if e.TaskID != "" {
		return fmt.Sprintf("task %s[%s]: %v", e.Task, e.TaskID, e.Exc)
	}
	return e.Exc.Error()
}

// Unwrap exposes the Python-side exception.
func (e *MessageError) Unwrap() error { return e.Exc }

// DecodeOptions control how task messages are read.
type DecodeOptions struct {
	// Accept lists the content types (or serializer names) to accept;
	// nil means JSON only.
	Accept []string
	// NaiveLocation is the zone of eta/expires strings without an offset
	// when a v1 message says utc=false; nil means UTC.
	NaiveLocation *time.Location
}

// DecodeTask decodes a raw envelope into a task message. Every failure is a
// *MessageError carrying the task id when one could be read.
func DecodeTask(raw []byte, opts DecodeOptions) (*TaskMessage, error) {
	env, h, err := scanTaskEnvelope(raw)
	if err != nil {
		// Tell a broken envelope from malformed headers, for the message.
		if _, perr := ParseEnvelope(raw); perr != nil {
			return nil, &MessageError{Exc: perr.(*Exception)}
		}
		return nil, &MessageError{Exc: NewException("DecodeError", ModuleKombu, "message headers are malformed: "+err.Error())}
	}
	m, err := decodeTask(env, h, opts)
	if m != nil {
		m.raw = raw
		if m.Protocol == 2 {
			m.Headers = env.Headers
		}
	}
	return m, err
}

// DecodeEnvelope decodes a parsed envelope into a task message.
func DecodeEnvelope(env *Envelope, opts DecodeOptions) (*TaskMessage, error) {
	var h v2Headers
	if len(env.Headers) > 0 && !bytes.Equal(env.Headers, []byte("null")) {
		if err := Unmarshal(env.Headers, &h); err != nil {
			return nil, &MessageError{Exc: NewException("DecodeError", ModuleKombu, "message headers are malformed: "+err.Error())}
		}
	}
	m, err := decodeTask(env, &h, opts)
	if m != nil && m.Protocol == 2 {
		m.Headers = env.Headers
	}
	return m, err
}

func decodeTask(env *Envelope, h *v2Headers, opts DecodeOptions) (*TaskMessage, error) {
	m := &TaskMessage{
		ContentType:     env.ContentType,
		ContentEncoding: env.ContentEncoding,
		Compression:     h.Compression,
		Priority:        int(env.Properties.Priority),
		DeliveryTag:     env.Properties.DeliveryTag,
		DeliveryInfo:    env.Properties.DeliveryInfo,
		Redelivered:     h.Redelivered || env.Properties.DeliveryInfo.Redelivered,
		ReplyTo:         env.Properties.ReplyTo,
		CorrelationID:   env.Properties.CorrelationID,
	}
	if h.Task != "" {
		m.Protocol = 2
		m.ID, m.Task = h.ID, h.Task
	}
	fail := func(typ, module, msg string) error {
		return &MessageError{TaskID: m.ID, Task: m.Task, Exc: NewException(typ, module, msg)}
	}
	body, err := env.DecodeBody(h.Compression, opts.Accept)
	if err != nil {
		return nil, &MessageError{TaskID: m.ID, Task: m.Task, Exc: err.(*Exception)}
	}
	if m.Protocol == 2 {
		if m.ID == "" {
			return nil, fail("InvalidTaskError", ModuleCelery, "task message has no id header")
		}
		if err := m.decodeV2Body(body); err != nil {
			return nil, fail("DecodeError", ModuleKombu, err.Error())
		}
		// Celery's trace raises InvalidTaskError for kwargs that are not a
		// mapping; the v1 path below classifies shapes the same way.
		if err := m.checkArgShapes(); err != nil {
			return nil, fail("InvalidTaskError", ModuleCelery, err.Error())
		}
		m.Shadow, m.Group, m.GroupIndex = h.Shadow, h.Group, h.GroupIndex
		m.Retries, m.TimeLimit = int(h.Retries), h.TimeLimit
		m.RootID, m.ParentID, m.Origin = h.RootID, h.ParentID, h.Origin
		m.ArgsRepr, m.KwargsRepr, m.IgnoreResult = h.ArgsRepr, h.KwargsRepr, h.IgnoreResult
		m.ReplacedTaskNesting, m.StampedHeaders, m.Stamps = int(h.ReplacedTaskNesting), h.StampedHeaders, h.Stamps
		if err := m.setTimes(h.ETA, h.Expires, nil); err != nil {
			return nil, fail("InvalidTaskError", ModuleCelery, err.Error())
		}
		return m, nil
	}
	// Not v2: a v1 body is an object with a "task" key.
	var b v1Body
	if err := Unmarshal(body, &b); err != nil || b.Task == "" {
		if err == nil {
			err = fmt.Errorf("no task name in headers or body")
		}
		return nil, fail("InvalidTaskError", ModuleCelery, "unknown message format (neither protocol 1 nor 2): "+err.Error())
	}
	m.Protocol = 1
	m.ID, m.Task = b.ID, b.Task
	if m.ID == "" {
		return nil, fail("InvalidTaskError", ModuleCelery, "task message has no id")
	}
	m.Args, m.Kwargs = b.Args, b.Kwargs
	if err := m.checkArgShapes(); err != nil {
		return nil, fail("InvalidTaskError", ModuleCelery, err.Error())
	}
	m.Group = b.Group
	if m.Group == "" {
		m.Group = b.Taskset
	}
	m.GroupIndex, m.Retries, m.TimeLimit = b.GroupIndex, int(b.Retries), b.TimeLimit
	m.Embed = Embed{Callbacks: b.Callbacks, Errbacks: b.Errbacks, Chord: b.Chord}
	m.RootID = m.ID
	var naive *time.Location
	if b.UTC != nil && !*b.UTC {
		naive = opts.NaiveLocation
	}
	if err := m.setTimes(b.ETA, b.Expires, naive); err != nil {
		return nil, fail("InvalidTaskError", ModuleCelery, err.Error())
	}
	return m, nil
}

func (m *TaskMessage) decodeV2Body(body []byte) error {
	args, kwargs, embed, allNull, err := scanBody(body)
	if err != nil {
		return err
	}
	m.Args, m.Kwargs, m.embedRaw = args, kwargs, embed
	if !allNull {
		if err := Unmarshal(m.embedRaw, &m.Embed); err != nil {
			return fmt.Errorf("task embed is malformed: %v", err)
		}
	}
	return nil
}

func (m *TaskMessage) checkArgShapes() error {
	if isNull(m.Args) {
		m.Args = json.RawMessage("[]")
	} else if firstByte(m.Args) != '[' {
		return fmt.Errorf("task args must be a list, got %s", abbreviate(m.Args))
	}
	if isNull(m.Kwargs) {
		m.Kwargs = json.RawMessage("{}")
	} else if firstByte(m.Kwargs) != '{' {
		return fmt.Errorf("task kwargs must be a mapping, got %s", abbreviate(m.Kwargs))
	}
	return nil
}

func (m *TaskMessage) setTimes(eta, expires string, naive *time.Location) error {
	if eta != "" {
		t, err := ParseTime(eta, naive)
		if err != nil {
			return fmt.Errorf("bad eta: %v", err)
		}
		m.ETA = &t
	}
	if expires != "" {
		t, err := ParseTime(expires, naive)
		if err != nil {
			return fmt.Errorf("bad expires: %v", err)
		}
		m.Expires = &t
	}
	return nil
}

// EmbedJSON returns the embed as it arrived (v2), or re-encoded.
func (m *TaskMessage) EmbedJSON() json.RawMessage {
	if len(m.embedRaw) > 0 {
		return m.embedRaw
	}
	b, _ := json.Marshal(m.Embed)
	return b
}

// Name is the display name: the shadow name when set, else the task name.
func (m *TaskMessage) Name() string {
	if m.Shadow != "" {
		return m.Shadow
	}
	return m.Task
}

// RawHeaders returns all headers of a decoded v2 message (including custom
// ones from apply_async(headers=...)), or Headers for a message built in Go.
func (m *TaskMessage) RawHeaders() json.RawMessage {
	if len(m.Headers) > 0 || len(m.raw) == 0 || m.Protocol != 2 {
		return m.Headers
	}
	var env struct {
		Headers json.RawMessage `json:"headers"`
	}
	if Unmarshal(m.raw, &env) == nil {
		m.Headers = env.Headers
	}
	return m.Headers
}

// Header returns the raw value of a header, including custom ones.
func (m *TaskMessage) Header(name string) (json.RawMessage, bool) {
	hs := m.RawHeaders()
	if len(hs) == 0 {
		return nil, false
	}
	var all map[string]json.RawMessage
	if Unmarshal(hs, &all) != nil {
		return nil, false
	}
	v, ok := all[name]
	return v, ok
}

func isNull(b json.RawMessage) bool {
	b = bytes.TrimSpace(b)
	return len(b) == 0 || bytes.Equal(b, []byte("null"))
}

func firstByte(b json.RawMessage) byte {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

func abbreviate(b []byte) string {
	if len(b) > 60 {
		return string(b[:60]) + "..."
	}
	return string(b)
}
