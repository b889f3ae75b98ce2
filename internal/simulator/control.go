package simulator

import (
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
)

// control registers the /_sim/ endpoints a test or a demo uses to change the
// data and read the counts:
//
//	GET  /_sim/stats
//	GET  /_sim/reports          (each report's spec: key, template id, shapes, rows)
//	GET  /_sim/reports/{name}/rows
//	POST /_sim/reports/{name}/insert?n=1&at=0
//	POST /_sim/reports/{name}/update?n=1
//	POST /_sim/reports/{name}/delete?n=1&at=-1
//	POST /_sim/reports/{name}/truncate
//	POST /_sim/reports/{name}/revoke?status=403
//	POST /_sim/reports/{name}/restore
//	POST /_sim/reports/{name}/columns?key=K&name=N
//	POST /_sim/reports/{name}/shape?name=SHAPE&value=V
//	     SHAPE: empty-strings, undeclared, repeat-keys, page-cap, template-path,
//	     params, page-result-ids, bad-cells, html-errors, grow, storm, maintenance;
//	     V as ParseShape reads it: name=page-cap&value=500, name=empty-strings
//	     (true), name=html-errors&value=off, name=params&value=k%3Dv%26k2%3Dv2,
//	     name=params (clears)
//	POST /_sim/webhook          (a webhook receiver for demos: counts deliveries)
//	GET  /_sim/webhook
func (s *Simulator) control(mux *http.ServeMux) {
	var hooks atomic.Int64
	mux.HandleFunc("POST /_sim/webhook", func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, io.LimitReader(req.Body, 1<<20))
		hooks.Add(1)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /_sim/webhook", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]int64{"received": hooks.Load()})
	})
	mux.HandleFunc("GET /_sim/stats", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Stats())
	})
	mux.HandleFunc("GET /_sim/reports", func(w http.ResponseWriter, _ *http.Request) {
		type info struct {
			ReportSpec
			Key []string `json:"key"`
		}
		var out []info
		for _, r := range s.Reports() {
			r.Rows = s.Len(r.Name)
			out = append(out, info{ReportSpec: r, Key: s.KeyColumns(r.Name)})
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET /_sim/reports/{name}/rows", func(w http.ResponseWriter, req *http.Request) {
		name := req.PathValue("name")
		if s.Columns(name) == nil {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such report"})
			return
		}
		writeJSON(w, http.StatusOK, s.Rows(name))
	})
	mux.HandleFunc("POST /_sim/reports/{name}/{action}", func(w http.ResponseWriter, req *http.Request) {
		name, q := req.PathValue("name"), req.URL.Query()
		intArg := func(k string, def int) int {
			if v, err := strconv.Atoi(q.Get(k)); err == nil {
				return v
			}
			return def
		}
		var err error
		switch req.PathValue("action") {
		case "insert":
			err = s.Insert(name, intArg("n", 1), intArg("at", 0))
		case "update":
			err = s.Update(name, intArg("n", 1))
		case "delete":
			err = s.Delete(name, intArg("n", 1), intArg("at", -1))
		case "truncate":
			err = s.Truncate(name)
		case "revoke":
			err = s.Revoke(name, intArg("status", 403))
		case "restore":
			err = s.Restore(name)
		case "columns":
			err = s.AddColumn(name, q.Get("key"), q.Get("name"))
		case "shape":
			// Shapes by their names in ParseShape; an unknown name or a bad
			// value is a 400 whose error names it.
			err = s.setShape(name, q.Get("name"), q.Get("value"))
		default:
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "unknown action"})
			return
		}
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		sh, _ := s.Shapes(name)
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "rows": s.Len(name), "shapes": sh})
	})
}
