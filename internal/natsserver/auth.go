package natsserver

import (
	"fmt"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/cometstream/cometstream/event"
)

// User is an account of the embedded server.
type User struct {
	Name string
	// Password is the password in plain text (from a variable or a file):
	// the server holds it as a bcrypt hash.
	Password string
	// PasswordHash is a bcrypt hash ($2a$…) given instead of Password.
	PasswordHash string
	// NKey is a public user nkey, instead of a name and password.
	NKey string
	// Role is producer, subscriber or admin.
	Role string
	// System places an admin in the server's system account instead of the
	// account that holds the stream: it may then run the server's own
	// requests (`nats server info`, `nats server report jetstream`, the
	// $SYS.REQ.SERVER.> subjects) but not use the stream or the buckets.
	// Only an admin may.
	System bool
}

// Permissions returns what a role may do, over the stream and subject
// prefix cometstream uses.
//
//   - producer and admin: everything (the producer owns the stream, the
//     buckets and its bookkeeping).
//   - subscriber (sinks, tail, status, the webhook bridge, services using
//     the consumer library): create and read consumers, fetch and
//     acknowledge, read streams and buckets, publish dead letters to
//     <prefix>_dlq.> and manage the <stream>_DLQ stream's messages, and
//     keep the webhook bridge's bucket of disabled endpoints. It cannot
//     publish under <prefix>.>, write any other bucket, delete a consumer
//     or a stream, or purge.
func Permissions(role, stream, prefix string) (*server.Permissions, error) {
	switch role {
	case "producer", "admin":
		return nil, nil
	case "subscriber":
	default:
		return nil, fmt.Errorf("unknown role %q", role)
	}
	dlq := stream + "_DLQ"
	hooks := event.WebhookBucketName(prefix)
	return &server.Permissions{
		Publish: &server.SubjectPermission{
			Allow: []string{
				"$JS.API.INFO",
				"$JS.API.STREAM.INFO.>", "$JS.API.STREAM.NAMES", "$JS.API.STREAM.LIST",
				"$JS.API.STREAM.MSG.GET.>", "$JS.API.DIRECT.GET.>",
				"$JS.API.CONSUMER.CREATE.>", "$JS.API.CONSUMER.DURABLE.CREATE.>",
				"$JS.API.CONSUMER.INFO.>", "$JS.API.CONSUMER.NAMES.>", "$JS.API.CONSUMER.LIST.>",
				"$JS.API.CONSUMER.MSG.NEXT.>", "$JS.ACK.>", "$JS.FC.>",
				prefix + "_dlq.>",
				"$JS.API.STREAM.CREATE." + dlq, "$JS.API.STREAM.UPDATE." + dlq, "$JS.API.STREAM.MSG.DELETE." + dlq,
				// Writes to other buckets match nothing allowed: refused.
				"$JS.API.STREAM.CREATE." + event.KVStream(hooks), event.KVSubjectPrefix(hooks) + ">",
			},
			Deny: []string{
				prefix + ".>",
				"$JS.API.STREAM.PURGE.>", "$JS.API.STREAM.DELETE.>", "$JS.API.CONSUMER.DELETE.>",
			},
		},
		Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
	}, nil
}
