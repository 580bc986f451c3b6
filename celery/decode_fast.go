package celery

import (
	"encoding/json"
	"fmt"
)

// scanTaskEnvelope reads an envelope and its v2 headers in one pass over
// the bytes. It is DecodeTask's fast path; ParseEnvelope with
// DecodeEnvelope is the reflection-based equivalent.
func scanTaskEnvelope(raw []byte) (*Envelope, *v2Headers, error) {
	s := &scanner{data: raw}
	env := &Envelope{}
	h := &v2Headers{}
	err := s.object(func(key []byte) error {
		var err error
		switch string(key) {
		case "body":
			env.Body, err = s.strOrNull()
		case "content-encoding":
			env.ContentEncoding, err = s.strOrNull()
		case "content-type":
			env.ContentType, err = s.strOrNull()
		case "headers":
			if s.peek() == 'n' {
				_, err = s.skip()
				return err
			}
			start := s.pos
			err = s.object(func(key []byte) error { return scanHeader(s, h, key) })
			env.Headers = raw[start:s.pos]
		case "properties":
			err = s.object(func(key []byte) error { return scanProperty(s, &env.Properties, key) })
		default:
			_, err = s.skip()
		}
		return err
	})
	if err == nil {
		err = s.end()
	}
	if err != nil {
		return nil, nil, err
	}
	return env, h, nil
}

func scanHeader(s *scanner, h *v2Headers, key []byte) error {
	var err error
	switch string(key) {
	case "lang":
		h.Lang, err = s.strOrNull()
	case "task":
		h.Task, err = s.strOrNull()
	case "id":
		h.ID, err = s.strOrNull()
	case "shadow":
		h.Shadow, err = s.strOrNull()
	case "eta":
		h.ETA, err = s.strOrNull()
	case "expires":
		h.Expires, err = s.strOrNull()
	case "group":
		h.Group, err = s.strOrNull()
	case "group_index":
		h.GroupIndex, err = s.intOrNull()
	case "retries":
		var n int
		n, err = s.lenientInt()
		h.Retries = LenientInt(n)
	case "root_id":
		h.RootID, err = s.strOrNull()
	case "parent_id":
		h.ParentID, err = s.strOrNull()
	case "argsrepr":
		h.ArgsRepr, err = s.strOrNull()
	case "kwargsrepr":
		h.KwargsRepr, err = s.strOrNull()
	case "origin":
		h.Origin, err = s.strOrNull()
	case "ignore_result":
		h.IgnoreResult, err = s.boolOrNull()
	case "redelivered":
		h.Redelivered, err = s.boolOrNull()
	case "compression":
		h.Compression, err = s.strOrNull()
	case "replaced_task_nesting":
		var n int
		n, err = s.lenientInt()
		h.ReplacedTaskNesting = LenientInt(n)
	case "timelimit", "stamped_headers", "stamps":
		var raw []byte
		if raw, err = s.skip(); err != nil {
			return err
		}
		switch string(key) {
		case "timelimit":
			err = unmarshalField(raw, &h.TimeLimit, "timelimit")
		case "stamped_headers":
			err = unmarshalField(raw, &h.StampedHeaders, "stamped_headers")
		default:
			h.Stamps = append(json.RawMessage(nil), raw...)
		}
	default:
		_, err = s.skip()
	}
	return err
}

func scanProperty(s *scanner, p *Properties, key []byte) error {
	var err error
	switch string(key) {
	case "correlation_id":
		p.CorrelationID, err = s.strOrNull()
	case "reply_to":
		p.ReplyTo, err = s.strOrNull()
	case "delivery_mode":
		var n int
		n, err = s.lenientInt()
		p.DeliveryMode = n
	case "priority":
		var n int
		n, err = s.lenientInt()
		p.Priority = LenientInt(n)
	case "body_encoding":
		p.BodyEncoding, err = s.strOrNull()
	case "delivery_tag":
		p.DeliveryTag, err = s.strOrNull()
	case "origin":
		p.Origin, err = s.strOrNull()
	case "expiration":
		var raw []byte
		raw, err = s.skip()
		p.Expiration = append(json.RawMessage(nil), raw...)
	case "delivery_info":
		if s.peek() == 'n' {
			_, err = s.skip()
			return err
		}
		err = s.object(func(key []byte) error {
			var err error
			switch string(key) {
			case "exchange":
				p.DeliveryInfo.Exchange, err = s.strOrNull()
			case "routing_key":
				p.DeliveryInfo.RoutingKey, err = s.strOrNull()
			case "redelivered":
				p.DeliveryInfo.Redelivered, err = s.boolOrNull()
			default:
				_, err = s.skip()
			}
			return err
		})
	default:
		_, err = s.skip()
	}
	return err
}

func unmarshalField(raw []byte, v any, name string) error {
	if err := Unmarshal(raw, v); err != nil {
		return fmt.Errorf("header %s: %w", name, err)
	}
	return nil
}

// scanBody splits a v2 body into args, kwargs and embed without building
// them. An embed whose members are all null decodes to the zero Embed
// without reflection.
func scanBody(body []byte) (args, kwargs, embed json.RawMessage, allNull bool, err error) {
	// Python writes non-finite floats as bare NaN/Infinity; they become null
	// so that nothing downstream (results, re-published retries) writes them.
	body, _ = replaceNonFinite(body)
	s := &scanner{data: body}
	n := 0
	err = s.array(func(i int) error {
		raw, err := s.skip()
		if err != nil {
			return err
		}
		switch i {
		case 0:
			args = raw
		case 1:
			kwargs = raw
		case 2:
			embed = raw
		}
		n = i + 1
		return nil
	})
	if err == nil {
		err = s.end()
	}
	if err != nil {
		return nil, nil, nil, false, fmt.Errorf("task body is not a JSON array [args, kwargs, embed]: %v", err)
	}
	if n != 3 {
		return nil, nil, nil, false, fmt.Errorf("task body has %d elements, want 3 [args, kwargs, embed]", n)
	}
	allNull = true
	if isNullValue(embed) {
		return args, kwargs, embed, true, nil
	}
	es := &scanner{data: embed}
	if es.peek() != '{' {
		return args, kwargs, embed, false, nil
	}
	_ = es.object(func([]byte) error {
		raw, err := es.skip()
		if err == nil && !isNullValue(raw) {
			allNull = false
		}
		return err
	})
	return args, kwargs, embed, allNull, nil
}
