package simulator

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"
)

// ReportPath is the route of COMET's saved-report API.
const ReportPath = "/data-backend/api/public/areports/run/"

// Handler returns the HTTP handler: the COMET API, at ReportPath
// {page}/{size}/ and at ReportPath {templateID}/{page}/{size}/ (for reports
// with the TemplatePath shape), plus the control endpoint under /_sim/.
func (s *Simulator) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+ReportPath+"{page}/{size}/{$}", s.serveReport)
	mux.HandleFunc("GET "+ReportPath+"{page}/{size}", s.serveReport)
	mux.HandleFunc("GET "+ReportPath+"{tid}/{page}/{size}/{$}", s.serveReport)
	mux.HandleFunc("GET "+ReportPath+"{tid}/{page}/{size}", s.serveReport)
	s.control(mux)
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeHTML answers as a web server in front of COMET does: with status 200
// the maintenance page, otherwise an error page.
func writeHTML(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if status == http.StatusOK {
		_, _ = w.Write([]byte("<!DOCTYPE html>\n<html><head><title>COMET - Maintenance</title></head>" +
			"<body><h1>COMET is down for maintenance</h1><p>We will be back shortly.</p></body></html>\n"))
		return
	}
	text := http.StatusText(status)
	fmt.Fprintf(w, "<!DOCTYPE html>\n<html><head><title>%d %s</title></head><body><center><h1>%d %s</h1></center><hr><center>nginx</center></body></html>\n",
		status, text, status, text)
}

func (s *Simulator) refuse(w http.ResponseWriter, status int, msg string) {
	s.mu.Lock()
	s.refused++
	s.mu.Unlock()
	writeJSON(w, status, map[string]any{"status": status, "error": msg})
}

// admission is what a report's shapes decide about one request before its
// page is computed.
type admission struct {
	storm, maintenance bool   // answer 503, or 200 with the maintenance page
	wrongPath          bool   // answer 404
	badParam           string // answer 400 naming this parameter
	html               bool   // failures are HTML pages
}

// admit counts a request made with the report's key and applies the shapes
// that can answer it instead of a page. A request a fault answers does not
// count a storm or a maintenance down. Called with s.mu held.
func (r *report) admit(req *http.Request, q url.Values, page int, pageOK, faulty bool) admission {
	sh := &r.spec.Shapes
	r.stats.requests++
	if pageOK {
		if r.stats.pages == nil {
			r.stats.pages = map[int]int{}
		}
		r.stats.pages[page]++
	}
	a := admission{html: sh.HTMLErrors}
	if tid := req.PathValue("tid"); tid == "" {
		a.wrongPath = sh.TemplatePath
	} else {
		n, err := strconv.Atoi(tid)
		a.wrongPath = !sh.TemplatePath || err != nil || n != r.spec.TemplateID
	}
	if a.wrongPath {
		r.stats.wrongPath++
	}
	for _, k := range slices.Sorted(maps.Keys(sh.Params)) {
		if vs := q[k]; len(vs) != 1 || vs[0] != sh.Params[k] {
			a.badParam = k
			r.stats.badParams++
			break
		}
	}
	if !faulty {
		switch {
		case sh.Storm > 0:
			sh.Storm--
			a.storm = true
		case sh.Maintenance > 0:
			sh.Maintenance--
			a.maintenance = true
		}
	}
	return a
}

func (s *Simulator) serveReport(w http.ResponseWriter, req *http.Request) {
	page, err1 := strconv.Atoi(req.PathValue("page"))
	size, err2 := strconv.Atoi(req.PathValue("size"))
	q := req.URL.Query()
	key := q.Get("API_KEY")

	s.mu.Lock()
	r, known := s.byKey[key]
	var limited bool
	if known {
		wnd := s.users[r.spec.User]
		if wnd == nil {
			wnd = &window{}
			s.users[r.spec.User] = wnd
		}
		limited = wnd.arrive(s.cfg.Now(), s.cfg.RateLimit, s.cfg.ArrivalNoise)
	}
	latency, errRate, truncRate := s.cfg.Latency, s.cfg.ErrorRate, s.cfg.TruncateRate
	fail, trunc := s.rng.Float64() < errRate, s.rng.Float64() < truncRate
	var fault Fault
	var faulty bool
	var adm admission
	if known {
		fault, faulty = r.nextFault()
		adm = r.admit(req, q, page, err1 == nil, faulty)
	}
	s.mu.Unlock()

	if latency > 0 {
		select {
		case <-time.After(latency):
		case <-req.Context().Done():
			return
		}
	}
	switch {
	case !known:
		s.refuse(w, http.StatusUnauthorized, "invalid API key")
		return
	case faulty && fault.Status != 0:
		if fault.RetryAfter != "" {
			w.Header().Set("Retry-After", fault.RetryAfter)
		}
		if fault.HTML || adm.html && fault.Status >= 500 {
			writeHTML(w, fault.Status)
			return
		}
		writeJSON(w, fault.Status, map[string]any{"status": fault.Status, "error": "injected fault"})
		return
	case adm.storm:
		if adm.html {
			writeHTML(w, http.StatusServiceUnavailable)
			return
		}
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": 503, "error": "service unavailable"})
		return
	case adm.maintenance:
		writeHTML(w, http.StatusOK)
		return
	case limited:
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusTooManyRequests, map[string]any{"status": 429, "error": "too many requests"})
		return
	case adm.wrongPath:
		writeJSON(w, http.StatusNotFound, map[string]any{"status": 404, "error": "not found"})
		return
	case adm.badParam != "":
		writeJSON(w, http.StatusBadRequest, map[string]any{"status": 400, "error": "missing or wrong report parameter " + adm.badParam})
		return
	case err1 != nil || err2 != nil || page < 0:
		s.refuse(w, http.StatusBadRequest, "invalid page or page size")
		return
	case size < 1 || size > 1000:
		s.refuse(w, http.StatusBadRequest, "page size must be between 1 and 1000")
		return
	case fail:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte("<html><body>Internal Server Error</body></html>"))
		return
	}

	body, hook, revoked := func() ([]byte, func(string, int), int) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if r.revoked != 0 {
			return nil, nil, r.revoked
		}
		b := r.encodePage(s.rng, page, size, r.requestURL(req, page, size, key))
		if grow := r.spec.Shapes.Grow; page == 0 && grow > 0 {
			// Once page 0 is computed, so that the client's next request
			// sees the new rows whenever it is sent.
			r.insert(s.rng, grow, 0)
		}
		return b, s.hook, 0
	}()
	if revoked != 0 {
		s.refuse(w, revoked, "report not available")
		return
	}
	if hook != nil {
		hook(r.spec.Name, page)
	}

	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if trunc || faulty {
		// Promise the whole body, send half: the client sees an unexpected EOF.
		_, _ = w.Write(body[:len(body)/2])
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		panic(http.ErrAbortHandler)
	}
	_, _ = w.Write(body)
}
