// Package statekv reads the producer's state bucket (event.StateBucketName):
// the one reader of its report records, for the producer, the materializer,
// status, verify and plan.
package statekv
