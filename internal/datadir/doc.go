// Package datadir guards a producer's data_dir: one process at a time. The
// embedded NATS server keeps its JetStream store there, and a second
// process opening a live store corrupts it, so the lock is taken before
// anything else opens the directory.
package datadir
