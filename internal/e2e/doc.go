// Package e2e holds end-to-end tests where the producer and the consumer
// side meet in one process (a cluster losing its stream leader mid-pass,
// with a sink on the surviving nodes). It has no code of its own.
package e2e
