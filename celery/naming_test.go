package celery_test

import (
	"strings"
	"testing"

	"github.com/qagen/qagen/celery"
)

func TestPrioritySchemeDefault(t *testing.T) {
	p := celery.DefaultPriorityScheme
	steps := map[int]int{-5: 0, 0: 0, 1: 0, 2: 0, 3: 3, 4: 3, 5: 3, 6: 6, 8: 6, 9: 9, 10: 9, 255: 9}
	for prio, want := range steps {
		if got := p.Step(prio); got != want {
			t.Errorf("Step(%d) = %d, want %d", prio, got, want)
		}
	}
	for prio, want := range map[int]string{0: "celery", 2: "celery", 5: "celery\x06\x163", 6: "celery\x06\x166", 9: "celery\x06\x169", 99: "celery\x06\x169"} {
		if got := p.List("celery", prio); got != want {
			t.Errorf("List(celery, %d) = %q, want %q", prio, got, want)
		}
	}
	got := p.ConsumeOrder([]string{"a", "b"})
	want := []string{"a", "b", "a\x06\x163", "b\x06\x163", "a\x06\x166", "b\x06\x166", "a\x06\x169", "b\x06\x169"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("ConsumeOrder = %q, want %q", got, want)
	}
	if len(p.ConsumeOrder(nil)) != 0 {
		t.Errorf("ConsumeOrder(nil) not empty")
	}
	for list, want := range map[string]string{"celery": "celery", "celery\x06\x169": "celery", "a\x06\x16b\x06\x163": "a\x06\x16b", "": ""} {
		if got := p.QueueOf(list); got != want {
			t.Errorf("QueueOf(%q) = %q, want %q", list, got, want)
		}
	}
	if celery.Sep != "\x06\x16" {
		t.Errorf("Sep = %q", celery.Sep)
	}
	if got := celery.BindingMember("rk", "pat", "q"); got != "rk\x06\x16pat\x06\x16q" {
		t.Errorf("BindingMember = %q", got)
	}
}

func TestPrioritySchemeCustom(t *testing.T) {
	p := celery.PriorityScheme{Steps: []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, Sep: ":"}
	for prio := 0; prio <= 9; prio++ {
		if p.Step(prio) != prio {
			t.Errorf("Step(%d) = %d", prio, p.Step(prio))
		}
	}
	if got := p.List("qa_generation", 9); got != "qa_generation:9" {
		t.Errorf("List = %q", got)
	}
	if got := p.List("qa_generation", 0); got != "qa_generation" {
		t.Errorf("List(0) = %q", got)
	}
	lists := p.Lists("q")
	if len(lists) != 10 || lists[0] != "q" || lists[1] != "q:1" || lists[9] != "q:9" {
		t.Errorf("Lists = %q", lists)
	}
	if got := p.QueueOf("qa_generation:7"); got != "qa_generation" {
		t.Errorf("QueueOf = %q", got)
	}
	// Steps that do not start at every value round down.
	coarse := celery.PriorityScheme{Steps: []int{0, 5}}
	if coarse.Step(4) != 0 || coarse.Step(7) != 5 || coarse.List("q", 7) != "q\x06\x165" {
		t.Errorf("coarse: %d %d %q", coarse.Step(4), coarse.Step(7), coarse.List("q", 7))
	}
}

func TestContentTypeOf(t *testing.T) {
	for in, want := range map[string]string{
		"json": "application/json", "yaml": "application/x-yaml", "pickle": "application/x-python-serialize",
		"msgpack": "application/x-msgpack", "application/json": "application/json", "text/plain": "text/plain",
	} {
		if got := celery.ContentTypeOf(in); got != want {
			t.Errorf("ContentTypeOf(%q) = %q, want %q", in, got, want)
		}
	}
}
