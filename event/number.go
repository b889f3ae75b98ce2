package event

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strconv"
)

// A NUMBER or AMOUNT value keeps the exact digits COMET sent (125.50, an id
// of 20 digits): decoding it through float64, as JavaScript's JSON.parse and
// Go's map[string]any do, loses trailing zeros and digits past 2^53. These
// conversions say when they cannot be exact.

// ErrNotNumber is returned by the numeric conversions of a value that is
// not a number.
var ErrNotNumber = errors.New("value is not a number")

// Number returns the value as a json.Number, with every digit; false when
// it is not a number.
func (v Value) Number() (json.Number, bool) {
	if v.Kind != Number {
		return "", false
	}
	return json.Number(v.Raw), true
}

// Int64 returns a whole number that fits 64 bits; an error wrapping
// ErrNotNumber, or saying it does not fit, otherwise.
func (v Value) Int64() (int64, error) {
	if v.Kind != Number {
		return 0, fmt.Errorf("%w: %s", ErrNotNumber, v.Kind)
	}
	n, err := strconv.ParseInt(v.Raw, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("number %s is not a 64-bit integer", v.Raw)
	}
	return n, nil
}

// Rat returns the number exactly, as a rational (1042.70 is 10427/10).
func (v Value) Rat() (*big.Rat, error) {
	if v.Kind != Number {
		return nil, fmt.Errorf("%w: %s", ErrNotNumber, v.Kind)
	}
	r, ok := new(big.Rat).SetString(v.Raw)
	if !ok {
		return nil, fmt.Errorf("number %s cannot be read", v.Raw)
	}
	return r, nil
}

// Float64 returns the nearest float64 and whether it is exact: for a
// value with more digits than a float64 holds, or a decimal fraction it
// cannot represent, exact is false; use Number or Rat then.
func (v Value) Float64() (f float64, exact bool, err error) {
	r, err := v.Rat()
	if err != nil {
		return 0, false, err
	}
	f, exact = r.Float64()
	return f, exact, nil
}

// Any returns the value for encoding/json-style use without losing digits:
// nil, a json.Number, or a string.
func (v Value) Any() any {
	switch v.Kind {
	case Number:
		return json.Number(v.Raw)
	case Text:
		return v.Raw
	}
	return nil
}

// Map returns the row as a map of Any values: numbers as json.Number, so
// re-encoding it with encoding/json writes every digit back.
func (r Row) Map() map[string]any {
	if r == nil {
		return nil
	}
	m := make(map[string]any, len(r))
	for k, v := range r {
		m[k] = v.Any()
	}
	return m
}
