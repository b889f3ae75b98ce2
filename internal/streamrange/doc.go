// Package streamrange reads a range of a JetStream stream, from a start point to
// whatever the stream holds now, in order. The producer uses it (Named: its
// consumers carry its name and are deleted when read) to load its snapshot
// and to apply the stream's tail after a crash; sinks use it (Read) to
// bootstrap from a snapshot.
package streamrange
