package producer

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/simulator"
)

// retyper serves the simulator with the DATE column declared DATETIME on
// the pages it is told to.
type retyper struct {
	once   atomic.Bool // page 0 of the next pass only
	always atomic.Bool // every page
}

// retypedPersons is a 12-row persons report read 4 rows a page through a
// retyper, after its first pass.
func retypedPersons(t *testing.T) (*env, *retyper) {
	e := newEnv(t, simulator.ReportSpec{Name: "persons", Kind: "persons", Rows: 12})
	rt, base := newRetyper(e)
	e.open(e.reportConfig("persons", func(rc *ReportConfig) { rc.PageSize, rc.Comet.BaseURL = 4, base }))
	e.poll("persons")
	return e, rt
}

func newRetyper(e *env) (*retyper, string) {
	rt := &retyper{}
	return rt, rewriting(e, func(path string, body []byte) []byte {
		if rt.always.Load() || (strings.Contains(path, "/run/0/") && rt.once.CompareAndSwap(true, false)) {
			body = bytes.Replace(body, []byte(`"DATE"`), []byte(`"DATETIME"`), 1)
		}
		return body
	})
}

// rewriting serves the simulator over HTTP with each body as rewrite
// makes it of the simulator's (path is the request's), and returns the
// base URL.
func rewriting(e *env, rewrite func(path string, body []byte) []byte) string {
	h := e.sim.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Header().Del("Content-Length")
		w.WriteHeader(rec.Code)
		w.Write(rewrite(r.URL.Path, rec.Body.Bytes()))
	}))
	e.t.Cleanup(srv.Close)
	return srv.URL
}

// TestColumnsChangedOnOnePage: a pass whose page 0 declares a column with
// another type than the pages after it publishes nothing (no schema event,
// no row re-rendered in that type), nor do the passes after it. A change of
// type on every page is published: one schema event, then every row in the
// new type.
func TestColumnsChangedOnOnePage(t *testing.T) {
	e, rt := retypedPersons(t)
	start := e.lastSeq()
	rt.once.Store(true)
	if _, err := e.p.Poll(context.Background(), "persons"); err == nil {
		t.Error("a pass whose pages disagree on the columns succeeded")
	}
	e.poll("persons")
	e.poll("persons")
	for _, ev := range e.eventsAfter(start) {
		if ev.Type != event.TypeSynced && ev.Type != event.TypeFailed {
			t.Errorf("published %s %s", ev.Type, ev.Event.Subject)
		}
	}
	e.assertKV("persons")

	// Every page says DATETIME from now on.
	start = e.lastSeq()
	rt.always.Store(true)
	e.poll("persons")
	e.poll("persons")
	c := count(e.eventsAfter(start))
	if c[event.TypeSchema] != 1 || c[event.TypeUpdated] != 12 || c[event.TypeCreated]+c[event.TypeDeleted] != 0 {
		t.Fatalf("a column retyped on every page published %v, want one schema event and 12 updates", c)
	}
	for _, ev := range e.eventsAfter(start) {
		if ev.Type == event.TypeUpdated && !strings.HasSuffix(ev.Row.After["dateOfBirth"].Raw, "T00:00:00.000Z") && !ev.Row.After["dateOfBirth"].IsNull() {
			t.Errorf("%s: dateOfBirth %q, want a DATETIME", ev.Event.Subject, ev.Row.After["dateOfBirth"].Raw)
		}
	}
}
