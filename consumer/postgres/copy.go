package postgres

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/cometstream/cometstream/event"
)

// rowEncoder encodes rows in COPY's binary format, each column for the
// type it has in the database (copyable): text as it is, numeric from the
// literal's digits without a big.Int, date and timestamptz as their day and
// microsecond counts.
type rowEncoder struct {
	report string
	cols   []string // the rows' columns, then KeyColumn for a content-keyed table
	oids   []uint32
	token  bool
	types  *pgtype.Map // for numbers the fast path does not take
}

// The column types a COPY writes directly.
var copyable = map[uint32]bool{pgtype.TextOID: true, pgtype.NumericOID: true, pgtype.DateOID: true, pgtype.TimestamptzOID: true}

// copyHeader starts a binary COPY: the signature, no flags, no extension.
var copyHeader = []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")

// appendTrailer ends a binary COPY.
func appendTrailer(b []byte) []byte { return binary.BigEndian.AppendUint16(b, 0xffff) }

// append appends a row: the values of its columns (all but KeyColumn), and
// its token for a content-keyed table.
func (e *rowEncoder) append(b []byte, vals []event.Value, token string) ([]byte, error) {
	b = binary.BigEndian.AppendUint16(b, uint16(len(e.cols)))
	for i, v := range vals {
		var err error
		if b, err = e.appendValue(b, e.oids[i], v); err != nil {
			return nil, fmt.Errorf("%s.%s: %w", e.report, e.cols[i], err)
		}
	}
	if e.token {
		b = appendField(b, token)
	}
	return b, nil
}

func appendField(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// pgEpoch is 2000-01-01, where PostgreSQL counts dates and times from.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// appendValue appends one field: its length and its binary form for the
// column type, or -1 for null. A value converts as pgValue converts it.
func (e *rowEncoder) appendValue(b []byte, oid uint32, v event.Value) ([]byte, error) {
	if v.IsNull() {
		return binary.BigEndian.AppendUint32(b, 0xffffffff), nil
	}
	switch oid {
	case pgtype.NumericOID:
		if out, ok := appendNumeric(b, PlainDecimal(v.Raw)); ok {
			return out, nil
		}
		n, err := pgValue(event.TypeNumber, v)
		if err != nil {
			return nil, err
		}
		at := len(b)
		b = append(b, 0, 0, 0, 0)
		if b, err = e.types.Encode(pgtype.NumericOID, pgtype.BinaryFormatCode, n, b); err != nil {
			return nil, fmt.Errorf("numeric %q: %w", jsonTrunc(v.Raw), err)
		}
		binary.BigEndian.PutUint32(b[at:], uint32(len(b)-at-4))
		return b, nil
	case pgtype.DateOID:
		d, err := time.ParseInLocation(event.DateLayout, v.Raw, time.UTC)
		if err != nil {
			return nil, fmt.Errorf("date %q: %w", jsonTrunc(v.Raw), err)
		}
		b = binary.BigEndian.AppendUint32(b, 4)
		return binary.BigEndian.AppendUint32(b, uint32(int32((d.Unix()-pgEpoch.Unix())/86400))), nil
	case pgtype.TimestamptzOID:
		ts, err := time.Parse(time.RFC3339Nano, v.Raw)
		if err != nil {
			return nil, fmt.Errorf("timestamp %q: %w", jsonTrunc(v.Raw), err)
		}
		b = binary.BigEndian.AppendUint32(b, 8)
		return binary.BigEndian.AppendUint64(b, uint64(ts.UnixMicro()-pgEpoch.UnixMicro())), nil
	}
	return appendField(b, v.Raw), nil
}

// appendNumeric appends a plain decimal literal (-?digits(.digits)?) as a
// numeric field: base-10000 digits, the weight of the first, the sign and
// the display scale (the literal's digits after the point). It reports
// false, appending nothing, for any other literal.
func appendNumeric(b []byte, lit string) ([]byte, bool) {
	neg := len(lit) > 0 && lit[0] == '-'
	if neg {
		lit = lit[1:]
	}
	point := len(lit)
	for i := 0; i < len(lit); i++ {
		if c := lit[i]; c == '.' && point == len(lit) {
			point = i
		} else if c < '0' || c > '9' {
			return b, false
		}
	}
	intPart, frac := lit[:point], ""
	if point < len(lit) {
		frac = lit[point+1:]
	}
	if intPart == "" || point < len(lit) && frac == "" || len(lit) > 1000 {
		return b, false
	}
	for len(intPart) > 0 && intPart[0] == '0' {
		intPart = intPart[1:]
	}
	// The digits, padded with zeros to whole groups of four on both sides
	// of the point.
	padL := (4 - len(intPart)%4) % 4
	n := padL + len(intPart) + len(frac)
	n += (4 - n%4) % 4
	digit := func(i int) uint16 {
		if i -= padL; i < 0 {
			return 0
		}
		if i < len(intPart) {
			return uint16(intPart[i] - '0')
		}
		if i -= len(intPart); i < len(frac) {
			return uint16(frac[i] - '0')
		}
		return 0
	}
	group := func(g int) uint16 {
		return digit(4*g)*1000 + digit(4*g+1)*100 + digit(4*g+2)*10 + digit(4*g+3)
	}
	first, last := 0, n/4-1
	for first <= last && group(first) == 0 {
		first++
	}
	for last >= first && group(last) == 0 {
		last--
	}
	weight, sign := (padL+len(intPart))/4-1-first, uint16(0)
	if first > last {
		weight, first, last = 0, 0, -1 // zero
	} else if neg {
		sign = 0x4000
	}
	ndigits := last - first + 1
	b = binary.BigEndian.AppendUint32(b, uint32(8+2*ndigits))
	b = binary.BigEndian.AppendUint16(b, uint16(ndigits))
	b = binary.BigEndian.AppendUint16(b, uint16(int16(weight)))
	b = binary.BigEndian.AppendUint16(b, sign)
	b = binary.BigEndian.AppendUint16(b, uint16(len(frac)))
	for g := first; g <= last; g++ {
		b = binary.BigEndian.AppendUint16(b, group(g))
	}
	return b, true
}
