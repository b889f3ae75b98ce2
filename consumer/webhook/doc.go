// Package webhook delivers cometstream's events to HTTP endpoints the way
// the Standard Webhooks specification describes: the event exactly as
// stored, signed with HMAC-SHA256 under every configured secret, retried on
// a schedule, dead-lettered when the schedule runs out, and acknowledged in
// the stream only once delivered or dead-lettered. Each endpoint has its
// own durable consumer (Bridge.Durable), so a failing endpoint holds no
// other back; a new endpoint starts at new events unless its Start is
// StartAll.
//
// A Config comes from a YAML file (Parse, Load) or is built in Go; either
// way it is validated (Config.Validate, called by New) before anything is
// sent: secrets resolved and decoded, timeouts and retries defaulted, the
// address guard's exemptions parsed, and a url written as an address the
// guard refuses rejected. Host names are checked by the same guard on the
// address dialled.
//
// An endpoint that answers 410 Gone is disabled: a Disablement is stored in
// the key-value bucket BucketName under EndpointKey, the endpoint's events
// wait in the stream, and every bridge sharing the prefix leaves it alone
// until Bridge.Enable (or Bridge.Reset) removes the record; a running
// bridge watches the bucket and resumes at once. ListDisabled shows them.
package webhook
