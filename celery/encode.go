package celery

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/qagen/qagen/internal/jsonstr"
)

// EncodeOptions control how a task message is written.
type EncodeOptions struct {
	// Protocol is 2 (the default) or 1.
	Protocol int
	// Compression is a name or MIME type accepted by NormalizeCompression.
	Compression string
}

// standardHeaders are written from TaskMessage fields; any other key in
// TaskMessage.Headers is passed through as a custom header.
var standardHeaders = map[string]bool{
	"lang": true, "task": true, "id": true, "shadow": true, "eta": true, "expires": true,
	"group": true, "group_index": true, "retries": true, "timelimit": true, "root_id": true,
	"parent_id": true, "argsrepr": true, "kwargsrepr": true, "origin": true, "ignore_result": true,
	"replaced_task_nesting": true, "stamped_headers": true, "stamps": true,
	"compression": true, "redelivered": true,
}

// EncodeTask writes m as a kombu envelope ready to LPUSH. The message needs
// ID, Task and DeliveryInfo.RoutingKey; a missing DeliveryTag is generated
// and stored back into m. Args and Kwargs default to [] and {}.
func EncodeTask(m *TaskMessage, opts EncodeOptions) ([]byte, error) {
	if m.ID == "" || m.Task == "" {
		return nil, errors.New("celery: a task message needs an id and a task name")
	}
	if m.DeliveryInfo.RoutingKey == "" {
		return nil, errors.New("celery: a task message needs a routing key (queue)")
	}
	if m.DeliveryTag == "" {
		m.DeliveryTag = uuid.NewString()
	}
	compression, err := NormalizeCompression(opts.Compression)
	if err != nil {
		return nil, err
	}
	var body []byte
	if opts.Protocol == 1 {
		body, err = m.appendV1Body(nil)
	} else {
		body = m.appendV2Body(make([]byte, 0, len(m.Args)+len(m.Kwargs)+96))
	}
	if err != nil {
		return nil, err
	}
	if compression != "" {
		if body, err = compress(compression, body); err != nil {
			return nil, err
		}
	}
	buf := make([]byte, 0, base64.StdEncoding.EncodedLen(len(body))+len(m.ArgsRepr)+len(m.KwargsRepr)+640)
	buf = append(buf, `{"body":"`...)
	buf = base64.StdEncoding.AppendEncode(buf, body)
	buf = append(buf, `","content-encoding":"utf-8","content-type":"application/json","headers":`...)
	if opts.Protocol == 1 {
		if compression != "" {
			buf = append(buf, `{"compression":`...)
			buf = appendString(buf, compression)
			buf = append(buf, '}')
		} else {
			buf = append(buf, "{}"...)
		}
	} else {
		buf, err = m.appendV2Headers(buf, compression)
		if err != nil {
			return nil, err
		}
	}
	buf = append(buf, `,"properties":{"correlation_id":`...)
	buf = appendString(buf, m.ID)
	buf = append(buf, `,"reply_to":`...)
	buf = appendString(buf, m.ReplyTo)
	buf = append(buf, `,"delivery_mode":2,"delivery_info":{"exchange":`...)
	buf = appendString(buf, m.DeliveryInfo.Exchange)
	buf = append(buf, `,"routing_key":`...)
	buf = appendString(buf, m.DeliveryInfo.RoutingKey)
	buf = append(buf, `},"priority":`...)
	buf = strconv.AppendInt(buf, int64(m.Priority), 10)
	buf = append(buf, `,"body_encoding":"base64","delivery_tag":`...)
	buf = appendString(buf, m.DeliveryTag)
	buf = append(buf, "}}"...)
	return buf, nil
}

func (m *TaskMessage) appendV2Body(buf []byte) []byte {
	buf = append(buf, '[')
	buf = appendRaw(buf, m.Args, "[]")
	buf = append(buf, ',')
	buf = appendRaw(buf, m.Kwargs, "{}")
	buf = append(buf, ',')
	buf = append(buf, m.EmbedJSON()...)
	return append(buf, ']')
}

func (m *TaskMessage) appendV1Body(buf []byte) ([]byte, error) {
	v := map[string]any{
		"task": m.Task, "id": m.ID,
		"args": rawOr(m.Args, "[]"), "kwargs": rawOr(m.Kwargs, "{}"),
		"group": nullIfEmpty(m.Group), "group_index": m.GroupIndex, "retries": m.Retries,
		"eta": timeOrNil(m.ETA), "expires": timeOrNil(m.Expires), "utc": true,
		"callbacks": m.Embed.Callbacks, "errbacks": m.Embed.Errbacks,
		"timelimit": m.TimeLimit, "taskset": nullIfEmpty(m.Group), "chord": m.Embed.Chord,
	}
	b, err := json.Marshal(v)
	return append(buf, b...), err
}

func (m *TaskMessage) appendV2Headers(buf []byte, compression string) ([]byte, error) {
	buf = append(buf, `{"lang":"go","task":`...)
	buf = appendString(buf, m.Task)
	buf = append(buf, `,"id":`...)
	buf = appendString(buf, m.ID)
	buf = append(buf, `,"shadow":`...)
	buf = appendNullableString(buf, m.Shadow)
	buf = append(buf, `,"eta":`...)
	buf = appendTime(buf, m.ETA)
	buf = append(buf, `,"expires":`...)
	buf = appendTime(buf, m.Expires)
	buf = append(buf, `,"group":`...)
	buf = appendNullableString(buf, m.Group)
	buf = append(buf, `,"group_index":`...)
	if m.GroupIndex != nil {
		buf = strconv.AppendInt(buf, int64(*m.GroupIndex), 10)
	} else {
		buf = append(buf, "null"...)
	}
	buf = append(buf, `,"retries":`...)
	buf = strconv.AppendInt(buf, int64(m.Retries), 10)
	buf = append(buf, `,"timelimit":[`...)
	buf = appendLimit(buf, m.TimeLimit[0])
	buf = append(buf, ',')
	buf = appendLimit(buf, m.TimeLimit[1])
	buf = append(buf, `],"root_id":`...)
	root := m.RootID
	if root == "" {
		root = m.ID
	}
	buf = appendString(buf, root)
	buf = append(buf, `,"parent_id":`...)
	buf = appendNullableString(buf, m.ParentID)
	buf = append(buf, `,"argsrepr":`...)
	argsrepr := m.ArgsRepr
	if argsrepr == "" {
		argsrepr = ReprJSON(m.Args, "()")
	}
	buf = appendString(buf, argsrepr)
	buf = append(buf, `,"kwargsrepr":`...)
	kwargsrepr := m.KwargsRepr
	if kwargsrepr == "" {
		kwargsrepr = ReprJSON(m.Kwargs, "{}")
	}
	buf = appendString(buf, kwargsrepr)
	buf = append(buf, `,"origin":`...)
	buf = appendString(buf, m.Origin)
	buf = append(buf, `,"ignore_result":`...)
	buf = strconv.AppendBool(buf, m.IgnoreResult)
	buf = append(buf, `,"replaced_task_nesting":`...)
	buf = strconv.AppendInt(buf, int64(m.ReplacedTaskNesting), 10)
	buf = append(buf, `,"stamped_headers":`...)
	if m.StampedHeaders != nil {
		b, _ := json.Marshal(m.StampedHeaders)
		buf = append(buf, b...)
	} else {
		buf = append(buf, "null"...)
	}
	buf = append(buf, `,"stamps":`...)
	buf = appendRaw(buf, m.Stamps, "{}")
	if compression != "" {
		buf = append(buf, `,"compression":`...)
		buf = appendString(buf, compression)
	}
	if len(m.Headers) > 0 {
		var custom map[string]json.RawMessage
		if err := Unmarshal(m.Headers, &custom); err != nil {
			return nil, errors.New("celery: custom headers must be a JSON object")
		}
		for k, v := range custom {
			if standardHeaders[k] {
				continue
			}
			buf = append(buf, ',')
			buf = appendString(buf, k)
			buf = append(buf, ':')
			v, _ = replaceNonFinite(v) // never write NaN/Infinity
			buf = append(buf, v...)
		}
	}
	return append(buf, '}'), nil
}

func appendLimit(buf []byte, v *float64) []byte {
	if v == nil {
		return append(buf, "null"...)
	}
	return strconv.AppendFloat(buf, *v, 'f', -1, 64)
}

func appendTime(buf []byte, t *time.Time) []byte {
	if t == nil {
		return append(buf, "null"...)
	}
	return appendString(buf, t.Format(TimeLayout))
}

func timeOrNil(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.Format(TimeLayout)
}

func appendRaw(buf []byte, raw json.RawMessage, def string) []byte {
	if isNull(raw) {
		return append(buf, def...)
	}
	return append(buf, raw...)
}

func rawOr(raw json.RawMessage, def string) json.RawMessage {
	if isNull(raw) {
		return json.RawMessage(def)
	}
	return raw
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func appendNullableString(buf []byte, s string) []byte {
	if s == "" {
		return append(buf, "null"...)
	}
	return appendString(buf, s)
}

// appendString appends s as a JSON string. Non-ASCII text is kept as UTF-8;
// invalid UTF-8 becomes U+FFFD.
func appendString(buf []byte, s string) []byte { return jsonstr.AppendHexControls(buf, s) }
