package simulator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cometstream/cometstream/event"
)

// ReportSpec describes one simulated saved report.
type ReportSpec struct {
	// Name is the report's name in URLs of the control endpoint.
	Name string
	// Kind is the generator: one of Kinds ("persons", "matches", "fees",
	// "hostile", "events").
	Kind string
	// Rows is the initial number of rows.
	Rows int
	// APIKey defaults to a key derived from the seed and the name.
	APIKey string
	// User groups reports that share one rate limit, as COMET users do.
	User string
	// TemplateID is the report's reportTemplateID, also the template id in
	// its path when Shapes.TemplatePath is on; it defaults to 4711 plus the
	// report's index in Config.Reports.
	TemplateID int
	// Shapes are the behaviours of real deployments the report starts with;
	// SetShapes changes them later.
	Shapes Shapes
}

// Config configures a Simulator.
type Config struct {
	Seed    uint64
	Reports []ReportSpec
	// RateLimit is the calls per second allowed per user; 0 disables the limit.
	RateLimit int
	// ArrivalNoise is how much the simulator's own clock may be late when
	// it notes a call: it notes a call when its handler runs, which a busy
	// process (a test under the race detector, on two cores) delays by tens
	// of milliseconds. A call then breaks the limit only when the calls
	// before it crowd into a second less ArrivalNoise. 0: the strictest
	// reading.
	ArrivalNoise time.Duration
	// Latency delays every response.
	Latency time.Duration
	// ErrorRate and TruncateRate are the shares of requests answered with a
	// 500 or with a body cut in half.
	ErrorRate, TruncateRate float64
	// Now is the clock used for rate limiting.
	Now func() time.Time
}

// DefaultReports are the reports served when Config.Reports is empty.
func DefaultReports() []ReportSpec {
	return []ReportSpec{
		{Name: "persons", Kind: "persons", Rows: 2000, User: "federation"},
		{Name: "matches", Kind: "matches", Rows: 500, User: "federation"},
		{Name: "fees", Kind: "fees", Rows: 300, User: "finance"},
	}
}

// Simulator is an in-memory COMET. Its methods are safe for concurrent use.
type Simulator struct {
	mu      sync.Mutex
	cfg     Config
	rng     *rand.Rand
	reports map[string]*report
	byKey   map[string]*report
	users   map[string]*window
	hook    func(report string, page int)
	refused int
}

type report struct {
	spec    ReportSpec
	gen     generator
	columns []event.Column
	rows    []row
	serial  int
	revoked int // HTTP status while revoked, 0 when served
	faults  []Fault
	// extra columns added at run time, with their generators
	extra []func(r *rand.Rand) cell
	stats reportCounts
}

// New returns a simulator with its reports generated from the seed. It
// returns an error for an unknown kind, a name or an API key used twice, and
// shapes SetShapes would refuse.
func New(cfg Config) (*Simulator, error) {
	if len(cfg.Reports) == 0 {
		cfg.Reports = DefaultReports()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Simulator{
		cfg:     cfg,
		rng:     rand.New(rand.NewPCG(cfg.Seed, 0x636f6d6574)),
		reports: map[string]*report{},
		byKey:   map[string]*report{},
		users:   map[string]*window{},
	}
	for i, spec := range cfg.Reports {
		mk, ok := Kinds[spec.Kind]
		if !ok {
			return nil, fmt.Errorf("report %q: unknown kind %q", spec.Name, spec.Kind)
		}
		if _, dup := s.reports[spec.Name]; dup {
			return nil, fmt.Errorf("report %q defined twice", spec.Name)
		}
		if spec.APIKey == "" {
			sum := sha256.Sum256([]byte(fmt.Sprintf("%d/%s", cfg.Seed, spec.Name)))
			spec.APIKey = "sim-" + hex.EncodeToString(sum[:12])
		}
		if spec.User == "" {
			spec.User = "default"
		}
		if spec.TemplateID == 0 {
			spec.TemplateID = 4711 + i
		}
		if _, dup := s.byKey[spec.APIKey]; dup {
			return nil, fmt.Errorf("report %q reuses an API key", spec.Name)
		}
		g := mk()
		shapes := spec.Shapes
		spec.Shapes = Shapes{}
		r := &report{spec: spec, gen: g, columns: slices.Clone(g.columns)}
		r.rows = make([]row, 0, spec.Rows)
		for i := 0; i < spec.Rows; i++ {
			r.rows = append(r.rows, g.make(s.rng, r.serial))
			r.serial++
		}
		if err := r.setShapes(s.rng, shapes); err != nil {
			return nil, err
		}
		s.reports[spec.Name] = r
		s.byKey[spec.APIKey] = r
	}
	return s, nil
}

// Reports returns the specs of the served reports, API keys, template ids
// and current shapes included.
func (s *Simulator) Reports() []ReportSpec {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ReportSpec, 0, len(s.reports))
	for _, r := range s.reports {
		spec := r.spec
		spec.Shapes = spec.Shapes.clone()
		out = append(out, spec)
	}
	slices.SortFunc(out, func(a, b ReportSpec) int { return cmpString(a.Name, b.Name) })
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Key returns the API key of a report.
func (s *Simulator) Key(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.reports[name]; ok {
		return r.spec.APIKey
	}
	return ""
}

// KeyColumns returns the natural key columns of a report; ["*"]
// (event.ContentKey) for a report keyed by content, such as events.
func (s *Simulator) KeyColumns(name string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.reports[name]; ok {
		return slices.Clone(r.gen.key)
	}
	return nil
}

// OnPage sets a function called after each page is computed and before it
// is sent, with the simulator unlocked: a test can change data there to land
// between two pages of one pass. nil removes it.
func (s *Simulator) OnPage(f func(report string, page int)) {
	s.mu.Lock()
	s.hook = f
	s.mu.Unlock()
}

// SetMisbehaviour changes latency and failure rates at run time.
func (s *Simulator) SetMisbehaviour(latency time.Duration, errorRate, truncateRate float64) {
	s.mu.Lock()
	s.cfg.Latency, s.cfg.ErrorRate, s.cfg.TruncateRate = latency, errorRate, truncateRate
	s.mu.Unlock()
}

func (s *Simulator) report(name string) (*report, error) {
	r, ok := s.reports[name]
	if !ok {
		return nil, fmt.Errorf("no report %q", name)
	}
	return r, nil
}

// Insert adds n new rows at position at (0 is the top, which shifts every
// later row down; a negative or too large position appends).
func (s *Simulator) Insert(name string, n, at int) error {
	return s.locked(name, func(r *report) error {
		r.insert(s.rng, n, at)
		return nil
	})
}

// insert adds n new rows at position at. Called with s.mu held.
func (r *report) insert(rng *rand.Rand, n, at int) {
	for range n {
		x := r.newRow(rng)
		pos := at
		if pos < 0 || pos > len(r.rows) {
			pos = len(r.rows)
		}
		r.rows = slices.Insert(r.rows, pos, x)
	}
}

func (r *report) newRow(rng *rand.Rand) row {
	x := r.gen.make(rng, r.serial)
	r.serial++
	for _, f := range r.extra {
		x = append(x, f(rng))
	}
	return x
}

// Update changes non-key values of n random rows.
func (s *Simulator) Update(name string, n int) error {
	return s.locked(name, func(r *report) error {
		for range min(n, len(r.rows)) {
			i := s.rng.IntN(len(r.rows))
			x := slices.Clone(r.rows[i])
			r.gen.change(s.rng, x)
			r.rows[i] = x
		}
		return nil
	})
}

// UpdateAt changes non-key values of the row at position i.
func (s *Simulator) UpdateAt(name string, i int) error {
	return s.locked(name, func(r *report) error {
		if i < 0 || i >= len(r.rows) {
			return fmt.Errorf("report %q has no row %d", name, i)
		}
		x := slices.Clone(r.rows[i])
		before := fmt.Sprint(x)
		for fmt.Sprint(x) == before {
			r.gen.change(s.rng, x)
		}
		r.rows[i] = x
		return nil
	})
}

// Delete removes n rows starting at position at (negative: random rows).
func (s *Simulator) Delete(name string, n, at int) error {
	return s.locked(name, func(r *report) error {
		for range min(n, len(r.rows)) {
			i := at
			if i < 0 || i >= len(r.rows) {
				i = s.rng.IntN(len(r.rows))
			}
			r.rows = slices.Delete(r.rows, i, i+1)
		}
		return nil
	})
}

// Move moves the row at position from to position to, shifting the rows
// between: the report holds the same rows, in another order (COMET
// ordering rows that tie on its sort column differently from one request
// to the next).
func (s *Simulator) Move(name string, from, to int) error {
	return s.locked(name, func(r *report) error {
		if from < 0 || from >= len(r.rows) || to < 0 || to >= len(r.rows) {
			return fmt.Errorf("report %q has no row %d or %d", name, from, to)
		}
		x := r.rows[from]
		r.rows = slices.Insert(slices.Delete(r.rows, from, from+1), to, x)
		return nil
	})
}

// Truncate removes every row: an emptied or re-filtered report.
func (s *Simulator) Truncate(name string) error {
	return s.locked(name, func(r *report) error {
		r.rows = nil
		return nil
	})
}

// RandomChange applies one random insert (at the top), update or delete to
// a random report and returns which.
func (s *Simulator) RandomChange() (string, string) {
	s.mu.Lock()
	names := make([]string, 0, len(s.reports))
	for n := range s.reports {
		names = append(names, n)
	}
	slices.Sort(names)
	name := names[s.rng.IntN(len(names))]
	op := s.rng.IntN(10)
	s.mu.Unlock()
	switch {
	case op < 4:
		_ = s.Insert(name, 1, 0)
		return name, "insert"
	case op < 8:
		_ = s.Update(name, 1)
		return name, "update"
	default:
		_ = s.Delete(name, 1, -1)
		return name, "delete"
	}
}

// Revoke makes the report's key refused with the given HTTP status (as when
// the report is deleted); 0 means 403.
func (s *Simulator) Revoke(name string, status int) error {
	return s.locked(name, func(r *report) error {
		if status == 0 {
			status = 403
		}
		r.revoked = status
		return nil
	})
}

// Restore serves a revoked report again.
func (s *Simulator) Restore(name string) error {
	return s.locked(name, func(r *report) error {
		r.revoked = 0
		return nil
	})
}

// AddColumn appends a STRING column to a report (a changed schema); every
// row gets a value.
func (s *Simulator) AddColumn(name, key, display string) error {
	return s.locked(name, func(r *report) error {
		for _, c := range r.columns {
			if c.Key == key {
				return fmt.Errorf("report %q already has column %q", name, key)
			}
		}
		r.columns = append(r.columns, event.Column{Key: key, Name: display, Type: event.TypeString})
		gen := func(rng *rand.Rand) cell { return text("v" + strconv.Itoa(rng.IntN(1000))) }
		r.extra = append(r.extra, gen)
		for i, x := range r.rows {
			x = slices.Clone(x)
			r.rows[i] = append(x, gen(s.rng))
		}
		return nil
	})
}

// Len returns the number of rows of a report.
func (s *Simulator) Len(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.reports[name]; ok {
		return len(r.rows)
	}
	return 0
}

// Columns returns a report's current columns.
func (s *Simulator) Columns(name string) []event.Column {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.reports[name]; ok {
		return slices.Clone(r.columns)
	}
	return nil
}

// Rows returns a report's rows in their contract form (docs/events.md), in report order. It is what a sink should hold after a full sync:
// both rows of a repeated key (RepeatKeys), null for a cell that does not
// convert (BadCells), "" for an empty STRING or IMAGELINK cell sent as ""
// (EmptyStrings; empty cells of other types stay null), never an undeclared
// field. A cell Poison wrote raw JSON into is what a lenient client takes
// from it: a JSON string in a STRING or IMAGELINK column, a number in a
// NUMBER or AMOUNT column, an integer in a DATE or DATETIME column, and
// null for anything else, or for text longer than cometstream's 256 KB
// limit on a value.
func (s *Simulator) Rows(name string) []event.Row {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.reports[name]
	if !ok {
		return nil
	}
	empty := r.spec.Shapes.EmptyStrings
	out := make([]event.Row, len(r.rows))
	for i, x := range r.rows {
		m := make(event.Row, len(r.columns))
		for j, c := range r.columns {
			v := contractValue(c.Type, x[j])
			if empty && x[j].null && !x[j].raw && x[j].bad == 0 && (c.Type == event.TypeString || c.Type == event.TypeImageLink) {
				v = event.TextValue("")
			}
			m[c.Key] = v
		}
		out[i] = m
	}
	return out
}

// contractValue converts a stored cell to its contract form, independently
// of the client's decoder so tests compare two implementations.
func contractValue(t event.ColumnType, c cell) event.Value {
	switch {
	case c.raw:
		return rawValue(t, c.s)
	case c.bad != 0, c.null:
		return event.Value{}
	}
	switch t {
	case event.TypeNumber, event.TypeAmount:
		return event.NumberValue(c.s)
	case event.TypeDate, event.TypeDateTime:
		ms, err := strconv.ParseInt(c.s, 10, 64)
		if err != nil {
			return event.Value{}
		}
		ts := time.UnixMilli(ms).UTC()
		if t == event.TypeDate {
			return event.TextValue(fmt.Sprintf("%04d-%02d-%02d", ts.Year(), ts.Month(), ts.Day()))
		}
		return event.TextValue(fmt.Sprintf("%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", ts.Year(), ts.Month(), ts.Day(), ts.Hour(), ts.Minute(), ts.Second(), ts.Nanosecond()/1e6))
	}
	return event.TextValue(c.s)
}

// maxCell is cometstream's limit on one value (comet.MaxCellBytes, which
// this package cannot import): a longer value reads as null.
const maxCell = 256 << 10

// rawValue is the contract form of raw JSON in a column of type t: see Rows.
func rawValue(t event.ColumnType, raw string) event.Value {
	d := json.NewDecoder(strings.NewReader(raw))
	d.UseNumber()
	var v any
	if d.Decode(&v) != nil || d.Decode(new(any)) != io.EOF {
		return event.Value{}
	}
	switch v := v.(type) {
	case string:
		if (t == event.TypeString || t == event.TypeImageLink) && len(v) <= maxCell {
			return event.TextValue(v)
		}
	case json.Number:
		switch t {
		case event.TypeNumber, event.TypeAmount:
			return event.NumberValue(v.String())
		case event.TypeDate, event.TypeDateTime:
			return contractValue(t, cell{s: v.String()})
		}
	}
	return event.Value{}
}

// Churn applies random changes at perSecond until ctx ends.
func (s *Simulator) Churn(ctx context.Context, perSecond float64) {
	if perSecond <= 0 {
		return
	}
	t := time.NewTicker(time.Duration(float64(time.Second) / perSecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.RandomChange()
		}
	}
}

// Fault is a scripted failure: the next Count requests for a report are
// answered with Status (and Retry-After when set), or, with Status 0, with a
// body cut in half. The answer is JSON, or an HTML page when HTML is set (or
// when Status is 5xx and the report's HTMLErrors shape is on); HTML with
// Status 200 is the maintenance page. HTML means nothing with Status 0.
type Fault struct {
	Status     int
	RetryAfter string
	Count      int
	HTML       bool
}

// locked runs f on the named report under the simulator's lock.
func (s *Simulator) locked(name string, f func(r *report) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.report(name)
	if err != nil {
		return err
	}
	return f(r)
}

// Inject queues a fault for a report's next requests.
func (s *Simulator) Inject(name string, f Fault) error {
	return s.locked(name, func(r *report) error {
		if f.Count <= 0 {
			f.Count = 1
		}
		r.faults = append(r.faults, f)
		return nil
	})
}

// nextFault pops the fault for this request, if any. Called with s.mu held.
func (r *report) nextFault() (Fault, bool) {
	if len(r.faults) == 0 {
		return Fault{}, false
	}
	f := r.faults[0]
	r.faults[0].Count--
	if r.faults[0].Count == 0 {
		r.faults = r.faults[1:]
	}
	return f, true
}

// Poison makes one cell of a row be written into pages as raw, verbatim
// JSON (deeply nested, huge, whatever a test needs); "" restores a plain
// text value.
func (s *Simulator) Poison(name string, i int, column, raw string) error {
	return s.locked(name, func(r *report) error {
		j := slices.IndexFunc(r.columns, func(c event.Column) bool { return c.Key == column })
		if i < 0 || i >= len(r.rows) || j < 0 {
			return fmt.Errorf("report %q has no row %d column %q", name, i, column)
		}
		x := slices.Clone(r.rows[i])
		x[j] = cell{s: raw, raw: raw != ""}
		r.rows[i] = x
		return nil
	})
}
