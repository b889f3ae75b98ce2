// Package natsconn connects every cometstream command to NATS with the
// standard options: URL, credentials file, nkey seed, user and password,
// token and TLS, from flags or from the NATS_* environment variables the
// nats CLI uses.
package natsconn
