package layout

import (
	"encoding/json"
	"fmt"

	"github.com/cometstream/cometstream/consumer"
)

// Encode returns the key and columns columns of t's _cometstream_table row.
func Encode(t *consumer.Table) (key, columns []byte) {
	key, _ = json.Marshal(t.Key)         // strings only: cannot fail
	columns, _ = json.Marshal(t.Columns) // strings only: cannot fail
	return key, columns
}

// Decode reads a report's _cometstream_table row back.
func Decode(report string, key, columns []byte) (*consumer.Table, error) {
	t := &consumer.Table{Report: report}
	if err := json.Unmarshal(key, &t.Key); err != nil {
		return nil, fmt.Errorf("layout of %s: key: %w", report, err)
	}
	if err := json.Unmarshal(columns, &t.Columns); err != nil {
		return nil, fmt.Errorf("layout of %s: columns: %w", report, err)
	}
	return t, nil
}
