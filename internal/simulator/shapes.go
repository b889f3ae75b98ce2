package simulator

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Shapes are behaviours of real COMET deployments a report can be switched to.
//
// The zero Shapes is the plain simulator. Each field has a kebab-case name
// (its JSON name) that ParseShape, the control endpoint and the simulate
// command's --shape flag read.
type Shapes struct {
	EmptyStrings  bool              `json:"empty-strings"`   // empty cells are sent as "" in every column type instead of null
	Undeclared    bool              `json:"undeclared"`      // every row also carries "uid" (string), "id" (number), "lastupdateddatetime" (epoch ms): fields columnKeys does not list
	RepeatKeys    int               `json:"repeat-keys"`     // this many keys occur on two rows with different content; the two rows are adjacent and their order is random per request (when both are on the page served)
	PageCap       int               `json:"page-cap"`        // serve at most this many rows a page and say so in pageSize (and compute lastPage with it); 0 = no cap
	TemplatePath  bool              `json:"template-path"`   // served only at /data-backend/api/public/areports/run/<templateID>/<page>/<size>/ (404 at the plain path); the template id is the report's reportTemplateID
	Params        map[string]string `json:"params"`          // query parameters every request must carry (e.g. registrationStatus=label.confirmed); a request lacking one, or with another value, gets HTTP 400 and is counted
	PageResultIDs bool              `json:"page-result-ids"` // #result_id# restarts at 1 on every page (default: the absolute position)
	BadCells      int               `json:"bad-cells"`       // this many rows carry one cell that does not convert to its column type (e.g. `true` or "1.234,50" in a NUMBER or AMOUNT column, "31.12.2020" in a DATE column); never a key column
	HTMLErrors    bool              `json:"html-errors"`     // failures (ErrorRate, 5xx faults, storms) are answered with an HTML page (Content-Type text/html) instead of JSON
	Grow          int               `json:"grow"`            // after each response to page 0, insert this many new rows at the top (live inserts between two pages of one pass)
	Storm         int               `json:"storm"`           // the next this-many requests are answered 503 (HTML when HTMLErrors, else JSON); counts down
	Maintenance   int               `json:"maintenance"`     // the next this-many requests are answered 200 with Content-Type text/html and a maintenance page (not JSON); counts down
}

// shapeField is one shape in its textual form: a boolean or a count.
type shapeField struct {
	name    string
	boolean func(*Shapes) *bool
	count   func(*Shapes) *int
}

// paramsShape is the one shape whose value is neither a boolean nor a count.
const paramsShape = "params"

var shapeFields = []shapeField{
	{name: "empty-strings", boolean: func(sh *Shapes) *bool { return &sh.EmptyStrings }},
	{name: "undeclared", boolean: func(sh *Shapes) *bool { return &sh.Undeclared }},
	{name: "repeat-keys", count: func(sh *Shapes) *int { return &sh.RepeatKeys }},
	{name: "page-cap", count: func(sh *Shapes) *int { return &sh.PageCap }},
	{name: "template-path", boolean: func(sh *Shapes) *bool { return &sh.TemplatePath }},
	{name: paramsShape},
	{name: "page-result-ids", boolean: func(sh *Shapes) *bool { return &sh.PageResultIDs }},
	{name: "bad-cells", count: func(sh *Shapes) *int { return &sh.BadCells }},
	{name: "html-errors", boolean: func(sh *Shapes) *bool { return &sh.HTMLErrors }},
	{name: "grow", count: func(sh *Shapes) *int { return &sh.Grow }},
	{name: "storm", count: func(sh *Shapes) *int { return &sh.Storm }},
	{name: "maintenance", count: func(sh *Shapes) *int { return &sh.Maintenance }},
}

// ShapeNames returns the names of the shapes in the order of Shapes' fields.
func ShapeNames() []string {
	out := make([]string, len(shapeFields))
	for i, f := range shapeFields {
		out[i] = f.name
	}
	return out
}

// ParseShape sets one shape of sh from its textual form name[=value]:
// booleans take "true", "on", "" (all true), "false" or "off"; counts take a
// number of zero or more; params takes a query string "k=v&k2=v2" that
// replaces the parameters ("" clears them). It returns an error naming the
// shape and the value when either is not understood, and leaves sh unchanged
// then.
func ParseShape(sh *Shapes, name, value string) error {
	i := slices.IndexFunc(shapeFields, func(f shapeField) bool { return f.name == name })
	if i < 0 {
		return fmt.Errorf("unknown shape %q (known: %s)", name, strings.Join(ShapeNames(), ", "))
	}
	f := shapeFields[i]
	switch {
	case f.boolean != nil:
		switch value {
		case "", "true", "on":
			*f.boolean(sh) = true
		case "false", "off":
			*f.boolean(sh) = false
		default:
			return fmt.Errorf("shape %s: %q is not true, false, on or off", name, value)
		}
	case f.count != nil:
		n, err := strconv.Atoi(value)
		if err != nil || n < 0 {
			return fmt.Errorf("shape %s: %q is not a count (a number of zero or more)", name, value)
		}
		*f.count(sh) = n
	default:
		params, err := parseParams(value)
		if err != nil {
			return fmt.Errorf("shape %s: %q: %w", name, value, err)
		}
		sh.Params = params
	}
	return nil
}

func parseParams(value string) (map[string]string, error) {
	if value == "" {
		return nil, nil
	}
	q, err := url.ParseQuery(value)
	if err != nil {
		return nil, fmt.Errorf("not a query string: %w", err)
	}
	params := make(map[string]string, len(q))
	for k, vs := range q {
		switch {
		case k == "":
			return nil, fmt.Errorf("a parameter has no name")
		case k == "API_KEY":
			return nil, fmt.Errorf("API_KEY is not a report parameter")
		case len(vs) > 1:
			return nil, fmt.Errorf("parameter %q given %d times", k, len(vs))
		}
		params[k] = vs[0]
	}
	return params, nil
}

// String returns the shapes that are on in the textual form ParseShape
// reads, separated by spaces ("page-cap=500 empty-strings"); "" when none is.
func (sh Shapes) String() string {
	var out []string
	for _, f := range shapeFields {
		switch {
		case f.boolean != nil && *f.boolean(&sh):
			out = append(out, f.name)
		case f.count != nil && *f.count(&sh) != 0:
			out = append(out, f.name+"="+strconv.Itoa(*f.count(&sh)))
		case f.name == paramsShape && len(sh.Params) > 0:
			out = append(out, f.name+"="+encodeParams(sh.Params))
		}
	}
	return strings.Join(out, " ")
}

// encodeParams renders parameters as a query string, sorted by name.
func encodeParams(params map[string]string) string {
	q := make(url.Values, len(params))
	for k, v := range params {
		q.Set(k, v)
	}
	return q.Encode()
}

func (sh Shapes) clone() Shapes {
	sh.Params = maps.Clone(sh.Params)
	return sh
}

func (sh Shapes) validate() error {
	for _, f := range shapeFields {
		if f.count != nil && *f.count(&sh) < 0 {
			return fmt.Errorf("shape %s: %d is negative", f.name, *f.count(&sh))
		}
	}
	if _, err := parseParams(encodeParams(sh.Params)); err != nil {
		return fmt.Errorf("shape %s: %w", paramsShape, err)
	}
	return nil
}

// SetShapes switches a report to the given shapes, replacing the ones it had.
// Changing RepeatKeys or BadCells changes the data at once, drawing from the
// seeded randomness: more repeated keys add a twin row (a copy with other
// content) right after as many rows whose key was unique; fewer remove, for
// the last repeated keys, every row after the key's first. More bad cells
// poison one cell of as many rows that had none; fewer restore the last
// poisoned rows' cells. Both go as far as the rows allow. The counts are
// reconciled only when SetShapes changes them: a Delete may remove a twin, an
// Update may overwrite a bad cell, and Rows and RepeatedKeys always tell what
// the data holds. Storm and Maintenance count down as requests arrive.
//
// It returns an error for an unknown report, a negative count, bad params,
// RepeatKeys on a report keyed by content, and BadCells on a report without a
// non-key NUMBER, AMOUNT, DATE or DATETIME column.
func (s *Simulator) SetShapes(report string, sh Shapes) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.report(report)
	if err != nil {
		return err
	}
	return r.setShapes(s.rng, sh)
}

// Shapes returns the shapes a report is switched to now (Storm and
// Maintenance as far as they have counted down).
func (s *Simulator) Shapes(report string) (Shapes, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.report(report)
	if err != nil {
		return Shapes{}, err
	}
	return r.spec.Shapes.clone(), nil
}

// setShape sets one shape from its textual form, atomically.
func (s *Simulator) setShape(report, name, value string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.report(report)
	if err != nil {
		return err
	}
	sh := r.spec.Shapes.clone()
	if err := ParseShape(&sh, name, value); err != nil {
		return err
	}
	return r.setShapes(s.rng, sh)
}

// setShapes validates and applies sh, changing the data for RepeatKeys and
// BadCells. Called with s.mu held.
func (r *report) setShapes(rng *rand.Rand, sh Shapes) error {
	if err := sh.validate(); err != nil {
		return fmt.Errorf("report %q: %w", r.spec.Name, err)
	}
	if sh.RepeatKeys > 0 && r.contentKeyed() {
		return fmt.Errorf("report %q: shape repeat-keys: the report is keyed by content, it has no key to repeat", r.spec.Name)
	}
	if sh.BadCells > 0 && len(r.badColumns()) == 0 {
		return fmt.Errorf("report %q: shape bad-cells: the report has no non-key NUMBER, AMOUNT, DATE or DATETIME column", r.spec.Name)
	}
	old := r.spec.Shapes
	r.spec.Shapes = sh.clone()
	if sh.RepeatKeys != old.RepeatKeys {
		r.repeatKeys(rng, sh.RepeatKeys)
	}
	if sh.BadCells != old.BadCells {
		r.poisonCells(rng, sh.BadCells)
	}
	return nil
}
