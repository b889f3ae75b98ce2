// Package retry holds the rules every retry loop in cometstream shares:
// spreading waits so that retries of many workers do not fall into step, and
// reading the wait an HTTP server asks for in Retry-After.
package retry
