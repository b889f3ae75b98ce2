package event

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Op is a row operation: the <op> of a row event's subject and the op of
// its data.
type Op string

// Row operations.
const (
	OpCreated Op = "created"
	OpUpdated Op = "updated"
	OpDeleted Op = "deleted"
)

// Ops lists the row operations.
var Ops = []Op{OpCreated, OpUpdated, OpDeleted}

// ReportKind is the kind of a report event: the <kind> of its subject.
type ReportKind string

// Report event kinds.
const (
	KindSynced      ReportKind = "synced"
	KindSchema      ReportKind = "schema"
	KindUnavailable ReportKind = "unavailable"
	KindHeld        ReportKind = "held"
	KindFailed      ReportKind = "failed"
)

// ReportKinds lists the report event kinds.
var ReportKinds = []ReportKind{KindSynced, KindSchema, KindUnavailable, KindHeld, KindFailed}

// Type is a CloudEvents type attribute.
type Type string

// CloudEvents types.
const (
	TypeCreated     Type = "comet.row.created"
	TypeUpdated     Type = "comet.row.updated"
	TypeDeleted     Type = "comet.row.deleted"
	TypeSynced      Type = "comet.report.synced"
	TypeSchema      Type = "comet.report.schema"
	TypeUnavailable Type = "comet.report.unavailable"
	TypeHeld        Type = "comet.report.held"
	TypeFailed      Type = "comet.report.failed"
)

// Types lists every event type.
var Types = []Type{TypeCreated, TypeUpdated, TypeDeleted, TypeSynced, TypeSchema, TypeUnavailable, TypeHeld, TypeFailed}

// Type returns the CloudEvents type of a row operation.
func (op Op) Type() Type { return Type("comet.row." + string(op)) }

// Valid reports whether op is one of the row operations.
func (op Op) Valid() bool { return slices.Contains(Ops, op) }

// Type returns the CloudEvents type of a report event kind.
func (k ReportKind) Type() Type { return Type("comet.report." + string(k)) }

// Valid reports whether k is one of the report event kinds.
func (k ReportKind) Valid() bool { return slices.Contains(ReportKinds, k) }

// Known reports whether t is one of the event types.
func (t Type) Known() bool { return slices.Contains(Types, t) }

// Row reports whether t is the type of a row event.
func (t Type) Row() bool { return strings.HasPrefix(string(t), "comet.row.") }

// The names a producer uses unless configured otherwise.
const (
	DefaultStream = "COMET"
	DefaultPrefix = "comet"
)

// NameRE is the pattern of report names and of the subject prefix.
var NameRE = regexp.MustCompile(`^[a-z0-9_-]+$`)

// RowSubject returns "<prefix>.<report>.row.<op>.<token>".
func RowSubject(prefix, report string, op Op, token string) string {
	return prefix + "." + report + ".row." + string(op) + "." + token
}

// ReportSubject returns "<prefix>.<report>.report.<kind>".
func ReportSubject(prefix, report string, kind ReportKind) string {
	return prefix + "." + report + ".report." + string(kind)
}

// ReportFilter returns the subject filter of every event of a report.
func ReportFilter(prefix, report string) string { return prefix + "." + report + ".>" }

// BucketName returns the KV bucket holding a report's snapshot: "<prefix>_<report>".
func BucketName(prefix, report string) string { return prefix + "_" + report }

// WebhookBucketName returns the bucket in which the webhook bridge records
// the endpoints it disabled (a 410 Gone), so a restart remembers them.
func WebhookBucketName(prefix string) string { return prefix + "-webhooks" }

// StateBucketName returns the bucket holding the producer's bookkeeping. It
// contains a "-", which BucketName never produces for the same prefix, so
// it cannot collide with a report's bucket.
func StateBucketName(prefix string) string { return prefix + "-state" }

// Subject is a parsed event subject.
type Subject struct {
	Report string
	// Row is true for a row event, with Op and Token set; a report event
	// has Kind set.
	Row   bool
	Op    Op
	Token string
	Kind  ReportKind
}

// ParseSubject parses a subject produced by RowSubject or ReportSubject. It
// fails on a subject outside the layout, an unknown operation or kind, or a
// row key token that ParseToken refuses.
func ParseSubject(prefix, subj string) (Subject, error) {
	rest, ok := strings.CutPrefix(subj, prefix+".")
	if !ok {
		return Subject{}, fmt.Errorf("subject %q lacks prefix %q", subj, prefix)
	}
	parts := strings.SplitN(rest, ".", 4)
	if len(parts) < 3 {
		return Subject{}, fmt.Errorf("subject %q has too few tokens", subj)
	}
	if !NameRE.MatchString(parts[0]) {
		return Subject{}, fmt.Errorf("subject %q: report %q must match [a-z0-9_-]+", subj, parts[0])
	}
	s := Subject{Report: parts[0]}
	switch parts[1] {
	case "row":
		if len(parts) != 4 || parts[3] == "" {
			return Subject{}, fmt.Errorf("row subject %q has no key token", subj)
		}
		s.Row, s.Op, s.Token = true, Op(parts[2]), parts[3]
		if !s.Op.Valid() {
			return Subject{}, fmt.Errorf("row subject %q: unknown operation %q", subj, parts[2])
		}
		if _, err := ParseToken(s.Token); err != nil {
			return Subject{}, fmt.Errorf("row subject %q: %w", subj, err)
		}
	case "report":
		if len(parts) != 3 {
			return Subject{}, fmt.Errorf("report subject %q has extra tokens", subj)
		}
		s.Kind = ReportKind(parts[2])
		if !s.Kind.Valid() {
			return Subject{}, fmt.Errorf("report subject %q: unknown kind %q", subj, parts[2])
		}
	default:
		return Subject{}, fmt.Errorf("subject %q is neither a row nor a report event", subj)
	}
	return s, nil
}

// ID returns a deterministic event id: the first 16 bytes of the SHA-256 of
// the parts (each followed by a zero byte), in lowercase hex. Callers pass
// everything that identifies one change, so the same change always gets the
// same id and different changes get different ids.
func ID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:16])
}
