package event

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
)

// Row operations.
const (
	OpCreated = "created"
	OpUpdated = "updated"
	OpDeleted = "deleted"
)

// Report event kinds.
const (
	KindSynced      = "synced"
	KindSchema      = "schema"
	KindUnavailable = "unavailable"
	KindHeld        = "held"
	KindFailed      = "failed"
)

// CloudEvents types.
const (
	TypeCreated     = "comet.row.created"
	TypeUpdated     = "comet.row.updated"
	TypeDeleted     = "comet.row.deleted"
	TypeSynced      = "comet.report.synced"
	TypeSchema      = "comet.report.schema"
	TypeUnavailable = "comet.report.unavailable"
	TypeHeld        = "comet.report.held"
	TypeFailed      = "comet.report.failed"
)

// RowType returns the CloudEvents type of a row operation.
func RowType(op string) string { return "comet.row." + op }

// ReportType returns the CloudEvents type of a report event kind.
func ReportType(kind string) string { return "comet.report." + kind }

// NameRE is the pattern of report names and of the subject prefix.
var NameRE = regexp.MustCompile(`^[a-z0-9_-]+$`)

// RowSubject returns "<prefix>.<report>.row.<op>.<token>".
func RowSubject(prefix, report, op, token string) string {
	return prefix + "." + report + ".row." + op + "." + token
}

// ReportSubject returns "<prefix>.<report>.report.<kind>".
func ReportSubject(prefix, report, kind string) string {
	return prefix + "." + report + ".report." + kind
}

// ReportFilter returns the subject filter of every event of a report.
func ReportFilter(prefix, report string) string { return prefix + "." + report + ".>" }

// BucketName returns the KV bucket holding a report's snapshot: "<prefix>_<report>".
func BucketName(prefix, report string) string { return prefix + "_" + report }

// StateBucketName returns the bucket holding the producer's bookkeeping. It
// contains a "-", which BucketName never produces for the same prefix, so
// it cannot collide with a report's bucket.
func StateBucketName(prefix string) string { return prefix + "-state" }

// Subject is a parsed event subject.
type Subject struct {
	Report string
	Row    bool   // row event (else report event)
	Op     string // row operation, or report event kind
	Token  string // row key token (row events)
}

// ParseSubject parses a subject produced by RowSubject or ReportSubject.
func ParseSubject(prefix, subj string) (Subject, error) {
	rest, ok := strings.CutPrefix(subj, prefix+".")
	if !ok {
		return Subject{}, fmt.Errorf("subject %q lacks prefix %q", subj, prefix)
	}
	parts := strings.SplitN(rest, ".", 4)
	if len(parts) < 3 {
		return Subject{}, fmt.Errorf("subject %q has too few tokens", subj)
	}
	s := Subject{Report: parts[0], Op: parts[2]}
	switch parts[1] {
	case "row":
		if len(parts) != 4 || parts[3] == "" {
			return Subject{}, fmt.Errorf("row subject %q has no key token", subj)
		}
		s.Row, s.Token = true, parts[3]
	case "report":
		if len(parts) != 3 {
			return Subject{}, fmt.Errorf("report subject %q has extra tokens", subj)
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
