// Package webhook delivers cometstream's events to HTTP endpoints the way
// the Standard Webhooks specification describes: the event exactly as
// stored, signed with HMAC-SHA256 under every configured secret, retried on
// a schedule, dead-lettered when the schedule runs out, and acknowledged in
// the stream only once delivered or dead-lettered. Each endpoint has its
// own durable consumer, so a failing endpoint holds no other back.
//
// A Config comes from a YAML file (Parse, Load) or is built in Go; either
// way it is validated (Config.Validate, called by New) before anything is
// sent: secrets resolved and decoded, timeouts and retries defaulted, the
// address guard's exemptions parsed.
package webhook
