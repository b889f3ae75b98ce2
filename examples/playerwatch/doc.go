// Command playerwatch prints every change to the rows of one cometstream
// report as it happens: a club website's service that reacts when a
// player's record is updated.
//
//	playerwatch --nats nats://127.0.0.1:4222 --report persons
package main
