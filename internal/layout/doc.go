// Package layout is how the SQL stores record a report's table in their
// _cometstream_table: its key and its columns, each as JSON.
package layout
