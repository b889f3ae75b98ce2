package simulator

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cometstream/cometstream/event"
)

// cell is one value as the simulator stores it: for DATE and DATETIME
// columns s holds epoch milliseconds, for other columns the number literal
// or the text.
type cell struct {
	s    string
	null bool
	raw  bool // s is written into the page as it is: hostile JSON
	// bad, when not 0, makes the cell a BadCells cell: it is sent as
	// badLiterals[type][bad-1] and s and null keep the value it replaced.
	bad uint8
}

type row []cell

// generator makes the rows of one kind of report.
type generator struct {
	columns []event.Column
	key     []string
	// make returns a new row with the given serial number.
	make func(r *rand.Rand, serial int) row
	// change alters some non-key cells of a row in place.
	change func(r *rand.Rand, x row)
}

var firstNames = []string{"Gareth", "Aaron", "Sophie", "Jess", "Đorđe", "Zoë", "Łukasz", "Björn", "Ñuño", "Siân", "Dafydd", "Müge", "Ørjan", "Chloé", "Šimun", "Ætheling", "Ibrahim", "Aoife"}
var lastNames = []string{"Bale", "Ramsey", "Ingle", "Fishlock", "Rushesha", "Đurić", "Kowalczyk", "Ødegaard", "Núñez", "Müller", "Llŷr", "Šimić", "Ó Súilleabháin", "Jones", "Williams", "Davies", "Evans", "Thomas"}
var clubs = []string{"Cardiff City", "Swansea City", "Wrexham AFC", "Newport County", "The New Saints", "Connah's Quay Nomads", "Bala Town", "Caernarfon Town", "Penybont", "Aberystwyth Town", "Y Barri", "Hwlffordd"}
var venues = []string{"Cardiff City Stadium", "Racecourse Ground", "Swansea.com Stadium", "Park Avenue", "Latham Park", "Nantporth"}

func pick(r *rand.Rand, s []string) string { return s[r.IntN(len(s))] }

func num(n int64) cell        { return cell{s: strconv.FormatInt(n, 10)} }
func text(s string) cell      { return cell{s: s} }
func millis(t time.Time) cell { return cell{s: strconv.FormatInt(t.UnixMilli(), 10)} }

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func persons() generator {
	return generator{
		columns: []event.Column{
			{Key: "personId", Name: "Person ID", Type: event.TypeNumber},
			{Key: "firstName", Name: "First name", Type: event.TypeString},
			{Key: "lastName", Name: "Last name", Type: event.TypeString},
			{Key: "dateOfBirth", Name: "Date of birth", Type: event.TypeDate},
			{Key: "gender", Name: "Gender", Type: event.TypeString},
			{Key: "nationality", Name: "Nationality", Type: event.TypeString},
			{Key: "club", Name: "Club", Type: event.TypeString},
			{Key: "photo", Name: "Photo", Type: event.TypeImageLink},
			{Key: "status", Name: "Status", Type: event.TypeString},
			{Key: "registered", Name: "Registered", Type: event.TypeDateTime},
		},
		key: []string{"personId"},
		make: func(r *rand.Rand, serial int) row {
			id := int64(100000 + serial)
			dob := time.Date(1970+r.IntN(40), time.Month(1+r.IntN(12)), 1+r.IntN(28), 0, 0, 0, 0, time.UTC)
			x := row{
				num(id), text(pick(r, firstNames)), text(pick(r, lastNames)), millis(dob),
				text([]string{"MALE", "FEMALE"}[r.IntN(2)]), text([]string{"WAL", "ENG", "SRB", "POL", "NOR", "IRL"}[r.IntN(6)]),
				text(pick(r, clubs)), text(fmt.Sprintf("https://comet.example/media/photo/%d.jpg?size=200&v=%d", id, r.IntN(9))),
				text("ACTIVE"), millis(epoch.Add(time.Duration(r.Int64N(int64(300 * 24 * time.Hour))).Truncate(time.Millisecond))),
			}
			if r.IntN(10) == 0 {
				x[7] = cell{null: true} // no photo
			}
			return x
		},
		change: func(r *rand.Rand, x row) {
			switch r.IntN(3) {
			case 0:
				x[2] = text(pick(r, lastNames) + "-" + pick(r, lastNames))
			case 1:
				x[6] = text(pick(r, clubs))
			default:
				x[8] = text([]string{"ACTIVE", "INACTIVE", "SUSPENDED"}[r.IntN(3)])
			}
		},
	}
}

func matches() generator {
	return generator{
		columns: []event.Column{
			{Key: "competitionId", Name: "Competition", Type: event.TypeNumber},
			{Key: "matchNo", Name: "Match number", Type: event.TypeNumber},
			{Key: "kickoff", Name: "Kick-off", Type: event.TypeDateTime},
			{Key: "homeTeam", Name: "Home", Type: event.TypeString},
			{Key: "awayTeam", Name: "Away", Type: event.TypeString},
			{Key: "homeScore", Name: "Home goals", Type: event.TypeNumber},
			{Key: "awayScore", Name: "Away goals", Type: event.TypeNumber},
			{Key: "venue", Name: "Venue", Type: event.TypeString},
			{Key: "attendance", Name: "Attendance", Type: event.TypeNumber},
		},
		key: []string{"competitionId", "matchNo"},
		make: func(r *rand.Rand, serial int) row {
			comp := int64(9001 + serial%7)
			kick := epoch.Add(time.Duration(serial)*3*time.Hour + time.Duration(r.IntN(4))*15*time.Minute)
			x := row{
				num(comp), num(int64(serial/7 + 1)), millis(kick), text(pick(r, clubs)), text(pick(r, clubs)),
				{null: true}, {null: true}, text(pick(r, venues)), {null: true},
			}
			if r.IntN(2) == 0 {
				x[5], x[6], x[8] = num(int64(r.IntN(5))), num(int64(r.IntN(5))), num(int64(500+r.IntN(20000)))
			}
			return x
		},
		change: func(r *rand.Rand, x row) {
			x[5], x[6] = num(int64(r.IntN(6))), num(int64(r.IntN(6)))
			if r.IntN(2) == 0 {
				x[8] = num(int64(500 + r.IntN(20000)))
			}
		},
	}
}

func fees() generator {
	return generator{
		columns: []event.Column{
			{Key: "feeRef", Name: "Fee reference", Type: event.TypeString},
			{Key: "club", Name: "Club", Type: event.TypeString},
			{Key: "description", Name: "Description", Type: event.TypeString},
			{Key: "amount", Name: "Amount", Type: event.TypeAmount},
			{Key: "currency", Name: "Currency", Type: event.TypeString},
			{Key: "dueDate", Name: "Due", Type: event.TypeDate},
			{Key: "paidOn", Name: "Paid", Type: event.TypeDate},
		},
		key: []string{"feeRef"},
		make: func(r *rand.Rand, serial int) row {
			due := epoch.AddDate(0, 0, r.IntN(365))
			return row{
				text(fmt.Sprintf("FEE %d/%06d %s", 2026, serial, []string{"A", "B/2", "C D"}[serial%3])),
				text(pick(r, clubs)), text([]string{"Registration", "Transfer – international", "Disciplinary fine", "Licence"}[r.IntN(4)]),
				amount(r), text("GBP"), millis(due), {null: true},
			}
		},
		change: func(r *rand.Rand, x row) {
			if x[6].null {
				x[6] = millis(epoch.AddDate(0, 0, r.IntN(365)))
			} else {
				x[3] = amount(r)
			}
		},
	}
}

// amount returns an AMOUNT literal with two decimals, trailing zeros kept
// ("125.50"), so that a client that goes through float64 is caught.
func amount(r *rand.Rand) cell {
	cents := r.IntN(500000)
	return cell{s: fmt.Sprintf("%d.%02d", cents/100, cents%100)}
}

// HostileColumn is a column key of the hostile report that is also SQL.
const HostileColumn = `x"; DROP TABLE persons; --`

var hostileTexts = []string{`'; DROP TABLE persons; --`, `"quoted"`, "line\nbreak\r\n", "comet.>", "*", ">", "a.b.c", "Ω≈ç√ 🏴󠁧󠁢󠁷󠁬󠁳󠁿", "\u2028", `\u0000`, "", "tab\there"}

// hostile is a report whose column keys and values are built to break
// whatever treats them as code: SQL, subjects, JSON.
func hostile() generator {
	return generator{
		columns: []event.Column{
			{Key: "id", Name: "Id", Type: event.TypeNumber},
			{Key: HostileColumn, Name: "Robert'); DROP TABLE", Type: event.TypeString},
			{Key: "a.b", Name: "dots", Type: event.TypeString},
			{Key: "*", Name: "star", Type: event.TypeString},
			{Key: ">", Name: "gt", Type: event.TypeString},
			{Key: "new\nline", Name: "newline", Type: event.TypeString},
			{Key: "ŋame ünïcode", Name: "unicode", Type: event.TypeString},
			{Key: "long", Name: "long", Type: event.TypeString},
		},
		key: []string{"id"},
		make: func(r *rand.Rand, serial int) row {
			x := row{num(int64(serial + 1))}
			for range 6 {
				x = append(x, text(pick(r, hostileTexts)))
			}
			return append(x, text(strings.Repeat("ab'\"", 1000+r.IntN(1000))))
		},
		change: func(r *rand.Rand, x row) { x[1] = text(pick(r, hostileTexts) + fmt.Sprint(r.IntN(100))) },
	}
}

// eventTypes are the values of the events report's eventType column.
var eventTypes = []string{"GOAL", "YELLOW_CARD", "RED_CARD", "SUBSTITUTION"}

// events is a report of match events with no unique key: the same player
// can score twice in one minute, and then two rows are identical (about one
// row in twenty repeats the row made before it). It is keyed by content.
func events() generator {
	var prev row
	return generator{
		columns: []event.Column{
			{Key: "matchId", Name: "Match", Type: event.TypeNumber},
			{Key: "minute", Name: "Minute", Type: event.TypeNumber},
			{Key: "teamId", Name: "Team", Type: event.TypeNumber},
			{Key: "playerId", Name: "Player", Type: event.TypeNumber},
			{Key: "eventType", Name: "Event", Type: event.TypeString},
			{Key: "recordedAt", Name: "Recorded", Type: event.TypeDateTime},
		},
		key: []string{event.ContentKey},
		make: func(r *rand.Rand, serial int) row {
			if prev != nil && r.IntN(20) == 0 {
				return slices.Clone(prev)
			}
			match := serial / 40 // about 40 events a match
			team := int64(300 + 2*(match%6) + r.IntN(2))
			minute := 1 + r.IntN(90)
			kickoff := epoch.Add(time.Duration(match) * 3 * time.Hour)
			weights := []int{3, 4, 1, 4} // goals, yellow cards, red cards, substitutions
			kind := r.IntN(12)
			t := 0
			for kind >= weights[t] {
				kind -= weights[t]
				t++
			}
			prev = row{
				num(int64(700000 + match)), num(int64(minute)), num(team), num(team*1000 + int64(r.IntN(25))),
				text(eventTypes[t]), millis(kickoff.Add(time.Duration(minute) * time.Minute)),
			}
			return slices.Clone(prev)
		},
		change: func(r *rand.Rand, x row) {
			x[4] = text(eventTypes[(slices.Index(eventTypes, x[4].s)+1+r.IntN(len(eventTypes)-1))%len(eventTypes)])
		},
	}
}

// Kinds lists the report kinds the simulator can generate.
var Kinds = map[string]func() generator{"persons": persons, "matches": matches, "fees": fees, "hostile": hostile, "events": events}
