package celery

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Exchanges of remote control and events (control_exchange "celery").
const (
	PidboxExchange = "celery.pidbox"
	ReplyExchange  = "reply.celery.pidbox"
	EventExchange  = "celeryev"
)

// FanoutChannel is the pub/sub channel kombu's Redis transport uses for a
// fanout exchange: "/<db>.<exchange>", plus "/<routing key>" when the key is
// not empty (fanout_patterns). The global key prefix goes in front.
func FanoutChannel(db int, exchange, routingKey string) string {
	ch := "/" + strconv.Itoa(db) + "." + exchange
	if routingKey != "" {
		ch += "/" + routingKey
	}
	return ch
}

// ReplyQueue is the list a control client collects replies from.
func ReplyQueue(oid string) string { return oid + "." + ReplyExchange }

// MailboxQueue is a worker's pidbox queue name (a binding member only).
func MailboxQueue(nodename string) string { return nodename + "." + PidboxExchange }

// ReplyTo says where a control reply goes.
type ReplyTo struct {
	Exchange   string `json:"exchange"`
	RoutingKey string `json:"routing_key"`
}

// ControlRequest is the body of a pidbox message.
type ControlRequest struct {
	Method    string          `json:"method"`
	Arguments json.RawMessage `json:"arguments"`
	// Destination is nil for a broadcast, else the nodenames addressed.
	Destination []string `json:"destination"`
	Pattern     *string  `json:"pattern"`
	Matcher     *string  `json:"matcher"`
	// Ticket and ReplyTo are set when a reply is wanted (a "call"; without
	// them the request is a "cast").
	Ticket  string   `json:"ticket,omitempty"`
	ReplyTo *ReplyTo `json:"reply_to,omitempty"`
}

// Matches reports whether the request addresses nodename, as kombu's
// Node.handle_message decides: a non-empty destination list must name it;
// else a pattern with a matcher must match it (glob: fnmatch; pcre: re.match,
// anchored at the start); else every node is addressed.
func (r *ControlRequest) Matches(nodename string) bool {
	if len(r.Destination) > 0 {
		for _, d := range r.Destination {
			if d == nodename {
				return true
			}
		}
		return false
	}
	if r.Pattern != nil && *r.Pattern != "" && r.Matcher != nil && *r.Matcher != "" {
		var re *regexp.Regexp
		var err error
		switch *r.Matcher {
		case "glob":
			re, err = regexp.Compile(fnmatchRegexp(*r.Pattern))
		case "pcre":
			re, err = regexp.Compile(`^(?:` + *r.Pattern + `)`)
		default:
			return false
		}
		return err == nil && re.MatchString(nodename)
	}
	return true
}

// fnmatchRegexp translates a shell pattern as Python's fnmatch.translate
// does: * and ? match any character (including "/"), [!...] negates.
func fnmatchRegexp(pat string) string {
	var b strings.Builder
	b.WriteString(`(?s)^`)
	for i := 0; i < len(pat); i++ {
		c := pat[i]
		switch c {
		case '*':
			b.WriteString(`.*`)
		case '?':
			b.WriteString(`.`)
		case '[':
			j := i + 1
			if j < len(pat) && pat[j] == '!' {
				j++
			}
			if j < len(pat) && pat[j] == ']' {
				j++
			}
			for j < len(pat) && pat[j] != ']' {
				j++
			}
			if j >= len(pat) {
				b.WriteString(`\[`)
				continue
			}
			class := strings.ReplaceAll(pat[i+1:j], `\`, `\\`)
			if strings.HasPrefix(class, "!") {
				class = "^" + class[1:]
			} else if strings.HasPrefix(class, "^") || strings.HasPrefix(class, "[") {
				class = `\` + class
			}
			b.WriteString("[" + class + "]")
			i = j
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString(`$`)
	return b.String()
}

// DecodeControlRequest reads a pidbox message published on the control
// channel. Only JSON is accepted.
func DecodeControlRequest(raw []byte) (*ControlRequest, error) {
	_, body, err := decodeJSONEnvelope(raw)
	if err != nil {
		return nil, err
	}
	var req ControlRequest
	if err := Unmarshal(body, &req); err != nil {
		return nil, NewException("DecodeError", ModuleKombu, "control request is not a JSON object: "+err.Error())
	}
	if req.Method == "" {
		return nil, NewException("DecodeError", ModuleKombu, "control request has no method")
	}
	if len(req.Arguments) == 0 || string(req.Arguments) == "null" {
		req.Arguments = json.RawMessage("{}")
	}
	return &req, nil
}

// decodeJSONEnvelope parses an envelope and returns its JSON body.
func decodeJSONEnvelope(raw []byte) (*Envelope, []byte, error) {
	env, err := ParseEnvelope(raw)
	if err != nil {
		return nil, nil, err
	}
	body, err := env.DecodeBody(compressionHeader(env.Headers), nil)
	if err != nil {
		return nil, nil, err
	}
	return env, body, nil
}

func compressionHeader(headers json.RawMessage) string {
	var h struct {
		Compression string `json:"compression"`
	}
	_ = Unmarshal(headers, &h)
	return h.Compression
}

// envelopeOut is an outgoing kombu envelope for control and events.
type envelopeOut struct {
	Body            string        `json:"body"`
	ContentEncoding string        `json:"content-encoding"`
	ContentType     string        `json:"content-type"`
	Headers         any           `json:"headers"`
	Properties      propertiesOut `json:"properties"`
}

type propertiesOut struct {
	DeliveryMode int          `json:"delivery_mode"`
	DeliveryInfo DeliveryInfo `json:"delivery_info"`
	Priority     int          `json:"priority"`
	BodyEncoding string       `json:"body_encoding"`
	DeliveryTag  string       `json:"delivery_tag"`
}

func encodeEnvelope(body []byte, headers any, mode int, exchange, routingKey string) []byte {
	out, _ := json.Marshal(envelopeOut{
		Body: base64.StdEncoding.EncodeToString(body), ContentEncoding: "utf-8", ContentType: ContentTypeJSON,
		Headers: headers,
		Properties: propertiesOut{DeliveryMode: mode, DeliveryInfo: DeliveryInfo{Exchange: exchange, RoutingKey: routingKey},
			BodyEncoding: "base64", DeliveryTag: uuid.NewString()},
	})
	return out
}

// EncodeControlRequest builds the envelope a control client publishes on
// the pidbox channel. expires is the absolute deadline for replies (0: none).
func EncodeControlRequest(req *ControlRequest, clock int64, expires time.Time) ([]byte, error) {
	if req.Arguments == nil {
		req.Arguments = json.RawMessage("{}")
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	exp := 0.0
	if !expires.IsZero() {
		exp = float64(expires.UnixMicro()) / 1e6
	}
	return encodeEnvelope(body, map[string]any{"clock": clock, "expires": exp}, 2, PidboxExchange, ""), nil
}

// EncodeControlReply builds a worker's reply {nodename: result}, with the
// request's ticket in the headers, to LPUSH on the client's reply queue.
func EncodeControlReply(nodename string, result json.RawMessage, ticket string, clock int64, routingKey string) []byte {
	body, _ := json.Marshal(map[string]json.RawMessage{nodename: result})
	return encodeEnvelope(body, map[string]any{"ticket": ticket, "clock": clock}, 1, ReplyExchange, routingKey)
}

// ControlReply is one decoded reply.
type ControlReply struct {
	Ticket  string
	Clock   int64
	Replies map[string]json.RawMessage // nodename -> result
}

// DecodeControlReply reads a reply envelope.
func DecodeControlReply(raw []byte) (*ControlReply, error) {
	env, body, err := decodeJSONEnvelope(raw)
	if err != nil {
		return nil, err
	}
	var h struct {
		Ticket string `json:"ticket"`
		Clock  int64  `json:"clock"`
	}
	_ = Unmarshal(env.Headers, &h)
	r := &ControlReply{Ticket: h.Ticket, Clock: h.Clock}
	if err := Unmarshal(body, &r.Replies); err != nil {
		return nil, NewException("DecodeError", ModuleKombu, "control reply is not {nodename: result}: "+err.Error())
	}
	return r, nil
}

// EventRoutingKey is the routing key of an event type: "task-succeeded"
// travels as "task.succeeded".
func EventRoutingKey(eventType string) string { return strings.ReplaceAll(eventType, "-", ".") }

// EncodeEvent wraps one event (or a JSON list of events, routing key
// "task.multi") in the envelope monitors expect.
func EncodeEvent(hostname, routingKey string, body []byte) []byte {
	return encodeEnvelope(body, map[string]string{"hostname": hostname}, 1, EventExchange, routingKey)
}

// UTCOffset is an event's utcoffset: hours with the POSIX sign (time.timezone
// // 3600), so UTC+2 is -2.
func UTCOffset(t time.Time) int {
	_, east := t.Zone()
	return floorDiv(-east, 3600)
}

func floorDiv(a, b int) int {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// ControlError is the reply of a command that failed, {"error": "..."}.
func ControlError(format string, args ...any) json.RawMessage {
	b, _ := json.Marshal(map[string]string{"error": fmt.Sprintf(format, args...)})
	return b
}
