// Package redact hides the credentials a URL may carry before it is shown
// in a log line, an error or a status: passwords, a user given alone (which
// may be a token), and the query and fragment (which may hold tokens).
package redact
