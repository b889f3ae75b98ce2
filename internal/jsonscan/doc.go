// Package jsonscan is a small JSON reader over a byte slice, for the two
// hot decoders of cometstream: COMET pages and events. It reads exactly the
// shapes they have, keeps numbers as their literal digits, takes strings as
// substrings of one copy of the input when it can, and never recurses, so
// hostile nesting cannot exhaust the stack.
package jsonscan
