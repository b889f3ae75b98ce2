package event

// cometstream reads key-value buckets below the KV API where that is much
// faster (a bucket's last value per key, headers only, through an ordered
// consumer of the bucket's stream) and writes snapshot rows with an
// expected revision. These are JetStream's own names for a bucket's
// stream, subjects and delete markers; they are written here once.

// KVStream returns the name of the stream that holds a bucket.
func KVStream(bucket string) string { return "KV_" + bucket }

// KVSubjectPrefix returns the subject prefix of a bucket's keys: the key
// follows it.
func KVSubjectPrefix(bucket string) string { return "$KV." + bucket + "." }

// KVOperationHeader is the header that marks a delete (KVDelete) or purge
// (KVPurge) of a key; a value has none.
const (
	KVOperationHeader = "KV-Operation"
	KVDelete          = "DEL"
	KVPurge           = "PURGE"
)

// KVRemoved reports whether a KV-Operation header value removes its key.
func KVRemoved(op string) bool { return op == KVDelete || op == KVPurge }

// ReportStateKey reports whether a state-bucket key is a report's state
// record: report names have no dot, the bucket's other keys
// (AllowDeletesKey, RepeatedKeysKey, WriterKey) have one.
func ReportStateKey(key string) bool {
	for i := 0; i < len(key); i++ {
		if key[i] == '.' {
			return false
		}
	}
	return key != ""
}
