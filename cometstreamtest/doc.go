// Package cometstreamtest starts, inside a test, what a service built on
// cometstream reads from: an embedded NATS server with JetStream in a
// temporary directory, a COMET simulator served over HTTP on loopback, and a
// producer publishing the simulated reports' changes, all in-process,
// listening on loopback on free ports, and stopped when the test ends.
//
// A test changes the simulated data (Insert, Update, Delete, AddColumn),
// has the producer look (Poll, Settle), and checks what its service did with
// the events. Like net/http/httptest, it is meant for tests only.
package cometstreamtest
