// Package comet is the client for COMET's saved-report API (docs/real-comet.md): it builds report URLs, decodes and validates pages into typed
// row values, classifies failures, and fetches whole reports with several
// requests in flight under a rate limiter shared by every report of one COMET
// user.
//
// The API key travels in the query string and COMET echoes it back in the
// response. This package is the boundary where it is redacted: no error,
// log line or value it returns contains the key.
package comet
