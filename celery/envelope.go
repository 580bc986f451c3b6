package celery

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
)

// Content types of kombu's serializers.
const (
	ContentTypeJSON    = "application/json"
	ContentTypeYAML    = "application/x-yaml"
	ContentTypePickle  = "application/x-python-serialize"
	ContentTypeMsgpack = "application/x-msgpack"
)

var serializerTypes = map[string]string{
	"json": ContentTypeJSON, "yaml": ContentTypeYAML, "pickle": ContentTypePickle, "msgpack": ContentTypeMsgpack,
}

// ContentTypeOf maps a serializer name (json, yaml, ...) to its MIME type;
// MIME types are returned unchanged, as Celery's accept_content allows both.
func ContentTypeOf(name string) string {
	if ct, ok := serializerTypes[name]; ok {
		return ct
	}
	return name
}

// DefaultAccept is Celery's default accept_content: JSON only.
var DefaultAccept = []string{ContentTypeJSON}

// DeliveryInfo says where a message was published.
type DeliveryInfo struct {
	Exchange    string `json:"exchange"`
	RoutingKey  string `json:"routing_key"`
	Redelivered bool   `json:"redelivered,omitempty"`
}

// Properties are the envelope properties kombu reads.
type Properties struct {
	CorrelationID string       `json:"correlation_id,omitempty"`
	ReplyTo       string       `json:"reply_to"`
	DeliveryMode  int          `json:"delivery_mode"`
	DeliveryInfo  DeliveryInfo `json:"delivery_info"`
	Priority      LenientInt   `json:"priority"`
	BodyEncoding  string       `json:"body_encoding,omitempty"`
	DeliveryTag   string       `json:"delivery_tag"`
	// Expiration is kombu's per-message TTL in milliseconds as a string. The
	// Redis transport ignores it; it is kept for fidelity.
	Expiration json.RawMessage `json:"expiration,omitempty"`
	// Origin is set on messages re-published by Task.retry.
	Origin string `json:"origin,omitempty"`
}

// Envelope is one element of a kombu Redis list (or one pub/sub payload).
type Envelope struct {
	Body            string          `json:"body"`
	ContentEncoding string          `json:"content-encoding,omitempty"`
	ContentType     string          `json:"content-type"`
	Headers         json.RawMessage `json:"headers"`
	Properties      Properties      `json:"properties"`
}

// ParseEnvelope decodes the outer JSON of a message.
func ParseEnvelope(raw []byte) (*Envelope, error) {
	var env Envelope
	if err := Unmarshal(raw, &env); err != nil {
		return nil, NewException("DecodeError", ModuleKombu, "message envelope is not valid JSON: "+err.Error())
	}
	return &env, nil
}

// DecodeBody returns the envelope body as serialized bytes: base64 decoded when
// body_encoding says so, decompressed per the compression header, and checked
// against accept (MIME types). Only JSON bodies can be decoded by qagen; other
// accepted types are reported as such, never executed.
func (e *Envelope) DecodeBody(compression string, accept []string) ([]byte, error) {
	var body []byte
	switch e.Properties.BodyEncoding {
	case "base64":
		b, err := base64.StdEncoding.DecodeString(e.Body)
		if err != nil {
			if b, err = base64.RawStdEncoding.DecodeString(e.Body); err != nil {
				return nil, NewException("DecodeError", ModuleKombu, "message body is not valid base64: "+err.Error())
			}
		}
		body = b
	case "", "utf-8":
		body = []byte(e.Body)
	default:
		return nil, NewException("DecodeError", ModuleKombu, fmt.Sprintf("unknown body_encoding %q", e.Properties.BodyEncoding))
	}
	if compression != "" {
		b, err := decompress(compression, body)
		if err != nil {
			return nil, NewException("DecodeError", ModuleKombu, fmt.Sprintf("cannot decompress %s body: %v", compression, err))
		}
		body = b
	}
	if e.ContentType == "" {
		return nil, NewException("ContentDisallowed", ModuleKombu, "message has no content-type")
	}
	if !accepted(e.ContentType, accept) {
		return nil, NewException("ContentDisallowed", ModuleKombu,
			fmt.Sprintf("Refusing to deserialize untrusted content of type %s (accept: %v)", e.ContentType, accept))
	}
	if e.ContentType != ContentTypeJSON {
		return nil, NewException("ContentDisallowed", ModuleKombu,
			fmt.Sprintf("content type %s is accepted but qagen decodes JSON only", e.ContentType))
	}
	return body, nil
}

func accepted(ct string, accept []string) bool {
	if accept == nil {
		accept = DefaultAccept
	}
	for _, a := range accept {
		if ContentTypeOf(a) == ct {
			return true
		}
	}
	return false
}

// LenientInt decodes a JSON number, numeric string or null the way kombu's
// int() conversions do; anything else decodes as 0 without an error.
type LenientInt int

// UnmarshalJSON implements json.Unmarshaler.
func (n *LenientInt) UnmarshalJSON(b []byte) error {
	s := string(b)
	if len(s) >= 2 && s[0] == '"' {
		if u, err := strconv.Unquote(s); err == nil {
			s = u
		}
	}
	if i, err := strconv.Atoi(s); err == nil {
		*n = LenientInt(i)
		return nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && f > -1e18 && f < 1e18 {
		*n = LenientInt(int(f))
		return nil
	}
	*n = 0
	return nil
}
