package simulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/cometstream/cometstream/internal/event"
)

// ReportPath is the route of COMET's saved-report API.
const ReportPath = "/data-backend/api/public/areports/run/"

// Handler returns the HTTP handler: the COMET API plus the control endpoint
// under /_sim/.
func (s *Simulator) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+ReportPath+"{page}/{size}/{$}", s.serveReport)
	mux.HandleFunc("GET "+ReportPath+"{page}/{size}", s.serveReport)
	s.control(mux)
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Simulator) refuse(w http.ResponseWriter, status int, msg string) {
	s.mu.Lock()
	s.refused++
	s.mu.Unlock()
	writeJSON(w, status, map[string]any{"status": status, "error": msg})
}

func (s *Simulator) serveReport(w http.ResponseWriter, req *http.Request) {
	page, err1 := strconv.Atoi(req.PathValue("page"))
	size, err2 := strconv.Atoi(req.PathValue("size"))
	key := req.URL.Query().Get("API_KEY")

	s.mu.Lock()
	r, known := s.byKey[key]
	var limited bool
	if known {
		wnd := s.users[r.spec.User]
		if wnd == nil {
			wnd = &window{}
			s.users[r.spec.User] = wnd
		}
		limited = wnd.arrive(s.cfg.Now(), s.cfg.RateLimit)
	}
	latency, errRate, truncRate := s.cfg.Latency, s.cfg.ErrorRate, s.cfg.TruncateRate
	fail, trunc := s.rng.Float64() < errRate, s.rng.Float64() < truncRate
	var fault Fault
	var faulty bool
	if known {
		fault, faulty = r.nextFault()
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
		writeJSON(w, fault.Status, map[string]any{"status": fault.Status, "error": "injected fault"})
		return
	case limited:
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusTooManyRequests, map[string]any{"status": 429, "error": "too many requests"})
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
		return r.encodePage(page, size, key, reqBase(req)), s.hook, 0
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

func reqBase(req *http.Request) string {
	scheme := "http"
	if req.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + req.Host
}

// encodePage renders one page as COMET does. Called with s.mu held.
func (r *report) encodePage(page, size int, key, base string) []byte {
	total := len(r.rows)
	lastPage := 0
	if total > 0 {
		lastPage = (total+size-1)/size - 1
	}
	b := make([]byte, 0, 1024+size*64*len(r.columns))
	b = append(b, `{"reportName":`...)
	b = event.AppendString(b, "Simulated "+r.spec.Name)
	b = append(b, `,"columnTypes":[`...)
	for i, c := range r.columns {
		if i > 0 {
			b = append(b, ',')
		}
		b = event.AppendString(b, string(c.Type))
	}
	b = append(b, `],"columnNames":[`...)
	for i, c := range r.columns {
		if i > 0 {
			b = append(b, ',')
		}
		b = event.AppendString(b, c.Name)
	}
	b = append(b, `],"columnKeys":[`...)
	for i, c := range r.columns {
		if i > 0 {
			b = append(b, ',')
		}
		b = event.AppendString(b, c.Key)
	}
	b = append(b, `],"results":[`...)
	start := page * size
	for i := start; i < start+size && i < total; i++ {
		if i > start {
			b = append(b, ',')
		}
		b = append(b, `{"#result_id#":`...)
		b = strconv.AppendInt(b, int64(i), 10)
		for j, c := range r.columns {
			b = append(b, ',')
			b = event.AppendString(b, c.Key)
			b = append(b, ':')
			x := r.rows[i][j]
			switch {
			case x.raw:
				b = append(b, x.s...)
			case x.null:
				b = append(b, "null"...)
			case c.Type == event.TypeString || c.Type == event.TypeImageLink:
				b = event.AppendString(b, x.s)
			default:
				b = append(b, x.s...)
			}
		}
		b = append(b, '}')
	}
	reqURL := fmt.Sprintf("%s%s%d/%d/?API_KEY=%s", base, ReportPath, page, size, url.QueryEscape(key))
	b = fmt.Appendf(b, `],"totalSize":%d,"page":%d,"pageSize":%d,"lastPage":%d,"sortField":null,"sortDirection":null,"locale":"en","pivot":false,"curl":`, total, page, size, lastPage)
	b = event.AppendString(b, "curl -X GET '"+reqURL+"'")
	b = append(b, `,"apiKeyRequestURL":`...)
	b = event.AppendString(b, reqURL)
	b = append(b, `,"reportTemplateID":4711}`...)
	return b
}
