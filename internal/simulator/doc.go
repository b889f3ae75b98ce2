// Package simulator is a stand-in for COMET's saved-report API, faithful
// where cometstream depends on it and able to misbehave on purpose.
//
// It serves several deterministic, seeded reports (persons, matches, fees)
// behind their own API keys; computes totalSize and lastPage as COMET does;
// refuses page sizes above 1000, wrong keys and deleted reports; answers 429
// to a user making more than the allowed calls per second and counts every
// such violation. For tests and demos it adds latency, 500s and truncated
// bodies, changes data live (inserts at the top shift every later row), and
// calls a hook after each page so a test can change the data between two
// pages of one pass.
package simulator
