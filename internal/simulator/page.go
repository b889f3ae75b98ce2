package simulator

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cometstream/cometstream/event"
)

// requestURL is the URL COMET echoes in curl and apiKeyRequestURL: the
// request's path (with its template id, if any), the key and the report's
// parameters. Called with s.mu held.
func (r *report) requestURL(req *http.Request, page, size int, key string) string {
	scheme := "http"
	if req.TLS != nil {
		scheme = "https"
	}
	path := ReportPath
	if tid := req.PathValue("tid"); tid != "" {
		path += tid + "/"
	}
	u := fmt.Sprintf("%s://%s%s%d/%d/?API_KEY=%s", scheme, req.Host, path, page, size, url.QueryEscape(key))
	if len(r.spec.Shapes.Params) > 0 {
		u += "&" + encodeParams(r.spec.Shapes.Params)
	}
	return u
}

// encodePage renders one page as COMET does, in the report's shapes.
// Called with s.mu held.
func (r *report) encodePage(rng *rand.Rand, page, size int, reqURL string) []byte {
	sh := &r.spec.Shapes
	if sh.PageCap > 0 && size > sh.PageCap {
		size = sh.PageCap
	}
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
	start := total
	if page < total { // page*size cannot overflow then
		start = min(page*size, total)
	}
	rows := r.rows[start:min(start+size, total)]
	if sh.RepeatKeys > 0 {
		rows = r.shuffleTwins(rng, rows)
	}
	for k, x := range rows {
		if k > 0 {
			b = append(b, ',')
		}
		id := start + k
		if sh.PageResultIDs {
			id = k + 1
		}
		b = r.appendRow(b, id, x)
	}
	b = fmt.Appendf(b, `],"totalSize":%d,"page":%d,"pageSize":%d,"lastPage":%d,"sortField":null,"sortDirection":null,"locale":"en","pivot":false,"curl":`, total, page, size, lastPage)
	b = event.AppendString(b, "curl -X GET '"+reqURL+"'")
	b = append(b, `,"apiKeyRequestURL":`...)
	b = event.AppendString(b, reqURL)
	b = fmt.Appendf(b, `,"reportTemplateID":%d}`, r.spec.TemplateID)
	return b
}

// shuffleTwins returns rows with each pair of adjacent rows that share a key
// in a random order.
func (r *report) shuffleTwins(rng *rand.Rand, rows []row) []row {
	keys := r.keyIndexes()
	var out []row
	for k := 0; k+1 < len(rows); k++ {
		if !sameKey(keys, rows[k], rows[k+1]) {
			continue
		}
		if rng.IntN(2) == 0 {
			if out == nil {
				out = slices.Clone(rows)
			}
			out[k], out[k+1] = out[k+1], out[k]
		}
		k++
	}
	if out == nil {
		return rows
	}
	return out
}

// appendRow renders one result object. Called with s.mu held.
func (r *report) appendRow(b []byte, id int, x row) []byte {
	sh := &r.spec.Shapes
	b = append(b, `{"#result_id#":`...)
	b = strconv.AppendInt(b, int64(id), 10)
	for j, c := range r.columns {
		b = append(b, ',')
		b = event.AppendString(b, c.Key)
		b = append(b, ':')
		x := x[j]
		switch {
		case x.raw:
			b = append(b, x.s...)
		case x.bad != 0:
			b = append(b, badLiteral(c.Type, x)...)
		case x.null && sh.EmptyStrings:
			b = append(b, `""`...)
		case x.null:
			b = append(b, "null"...)
		case c.Type == event.TypeString || c.Type == event.TypeImageLink:
			b = event.AppendString(b, x.s)
		default:
			b = append(b, x.s...)
		}
	}
	if sh.Undeclared {
		b = r.appendUndeclared(b, x)
	}
	return append(b, '}')
}

// The fields the Undeclared shape adds to every row.
const (
	undeclaredUID     = "uid"
	undeclaredID      = "id"
	undeclaredUpdated = "lastupdateddatetime"
)

// appendUndeclared adds the fields a row carries beyond columnKeys: uid and
// id derived from the row's key (its content for a report keyed by content),
// lastupdateddatetime from its content, so that it changes when the row
// does. A field a column already has is left out.
func (r *report) appendUndeclared(b []byte, x row) []byte {
	content := func(cols []int) string {
		var sb strings.Builder
		for _, j := range cols {
			sb.WriteString(x[j].s)
			sb.WriteByte(0)
		}
		return sb.String()
	}
	all := make([]int, len(x))
	for j := range all {
		all[j] = j
	}
	keys := r.keyIndexes()
	if keys == nil {
		keys = all
	}
	sum := sha256.Sum256([]byte(r.spec.Name + "\x00" + content(keys)))
	h := fnv.New64a()
	h.Write([]byte(content(all)))
	updated := epoch.UnixMilli() + int64(h.Sum64()%uint64((300*24*time.Hour).Milliseconds()))
	has := func(k string) bool {
		return slices.ContainsFunc(r.columns, func(c event.Column) bool { return c.Key == k })
	}
	if !has(undeclaredUID) {
		b = fmt.Appendf(b, `,"%s":"%x-%x-%x-%x-%x"`, undeclaredUID, sum[0:4], sum[4:6], sum[6:8], sum[8:10], sum[10:16])
	}
	if !has(undeclaredID) {
		b = fmt.Appendf(b, `,"%s":%d`, undeclaredID, binary.BigEndian.Uint32(sum[16:20])>>1)
	}
	if !has(undeclaredUpdated) {
		b = fmt.Appendf(b, `,"%s":%d`, undeclaredUpdated, updated)
	}
	return b
}
