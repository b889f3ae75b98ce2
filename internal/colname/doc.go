// Package colname names a SQL column for a column key the database cannot
// name a column by as it is, the same way in every store and database.
package colname
