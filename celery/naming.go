package celery

import "strconv"

// Sep is kombu's separator in priority list names and binding members.
const Sep = "\x06\x16"

// DefaultPrioritySteps are kombu's priority_steps.
var DefaultPrioritySteps = []int{0, 3, 6, 9}

// PriorityScheme says how a logical queue is split into Redis lists.
type PriorityScheme struct {
	Steps []int  // ascending, starting at 0
	Sep   string // separator between queue name and step
}

// DefaultPriorityScheme is kombu's default.
var DefaultPriorityScheme = PriorityScheme{Steps: DefaultPrioritySteps, Sep: Sep}

func (p PriorityScheme) steps() []int {
	if len(p.Steps) == 0 {
		return DefaultPrioritySteps
	}
	return p.Steps
}

func (p PriorityScheme) sep() string {
	if p.Sep == "" {
		return Sep
	}
	return p.Sep
}

// Step rounds a message priority (clamped to 0..9) down to its step.
func (p PriorityScheme) Step(priority int) int {
	priority = min(max(priority, 0), 9)
	step := 0
	for _, s := range p.steps() {
		if s <= priority {
			step = s
		}
	}
	return step
}

// List is the Redis list that holds messages of the given priority.
func (p PriorityScheme) List(queue string, priority int) string {
	return p.listForStep(queue, p.Step(priority))
}

func (p PriorityScheme) listForStep(queue string, step int) string {
	if step == 0 {
		return queue
	}
	return queue + p.sep() + strconv.Itoa(step)
}

// Lists returns every list of queue, lowest step (consumed first) first.
func (p PriorityScheme) Lists(queue string) []string {
	out := make([]string, 0, len(p.steps()))
	for _, s := range p.steps() {
		out = append(out, p.listForStep(queue, s))
	}
	return out
}

// ConsumeOrder returns the BRPOP key order kombu uses for several queues:
// every queue at step 0, then every queue at the next step, and so on.
func (p PriorityScheme) ConsumeOrder(queues []string) []string {
	out := make([]string, 0, len(queues)*len(p.steps()))
	for _, s := range p.steps() {
		for _, q := range queues {
			out = append(out, p.listForStep(q, s))
		}
	}
	return out
}

// QueueOf recovers the queue name from a list name (cut at the last Sep).
func (p PriorityScheme) QueueOf(list string) string {
	sep := p.sep()
	for i := len(list) - len(sep); i >= 0; i-- {
		if list[i:i+len(sep)] == sep {
			return list[:i]
		}
	}
	return list
}

// BindingKey is the set of bindings of an exchange.
func BindingKey(exchange string) string { return "_kombu.binding." + exchange }

// BindingMember is one binding: routing_key SEP pattern SEP queue.
func BindingMember(routingKey, pattern, queue string) string {
	return routingKey + Sep + pattern + Sep + queue
}
