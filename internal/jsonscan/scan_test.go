package jsonscan

import (
	"errors"
	"slices"
	"testing"
)

func TestObject(t *testing.T) {
	errMember := errors.New("member refused")
	tests := []struct {
		name      string
		in        string
		wantNames []string
		wantErr   error // nil, errMember, or ErrEOF
		syntax    bool  // the error is a SyntaxError
	}{
		{name: "empty", in: ` { } `},
		{name: "members", in: `{"a":1, "b":[2,{"c":3}], "c":null}`, wantNames: []string{"a", "b", "c"}},
		{name: "member error unchanged", in: `{"a":1,"refuse":2,"c":3}`, wantNames: []string{"a", "refuse"}, wantErr: errMember},
		{name: "not an object", in: `[1]`, syntax: true},
		{name: "no colon", in: `{"a" 1}`, syntax: true},
		{name: "no comma", in: `{"a":1 "b":2}`, wantNames: []string{"a"}, syntax: true},
		{name: "truncated", in: `{"a":1`, wantNames: []string{"a"}, wantErr: ErrEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New([]byte(tt.in))
			var names []string
			err := s.Object(func(name string) error {
				names = append(names, name)
				if name == "refuse" {
					return errMember
				}
				return s.Skip()
			})
			if !slices.Equal(names, tt.wantNames) {
				t.Errorf("members %q, want %q", names, tt.wantNames)
			}
			var se *SyntaxError
			switch {
			case tt.syntax:
				if !errors.As(err, &se) {
					t.Errorf("error %v, want a SyntaxError", err)
				}
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("error %v, want %v", err, tt.wantErr)
				}
			case err != nil:
				t.Errorf("error %v, want none", err)
			}
			if err == nil && s.Peek() != 0 {
				t.Errorf("stopped at byte %d of %d", s.I, len(tt.in))
			}
		})
	}
}
