// Package inspect looks at the rows of a saved report the way someone
// choosing its key would: which columns, or pairs of columns, are unique
// and never null over every row fetched, ranked so that identifiers come
// before timestamps and amounts; which values repeat, with an example; and
// when no column fits, that only key ["*"] (identity by content) does.
//
// It is pure: the `inspect` command fetches the pages and prints the
// Analysis.
package inspect
