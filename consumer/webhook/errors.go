package webhook

import "errors"

// Errors of the package. Every configuration error wraps ErrInvalidConfig
// and, where one field is at fault, is a *FieldError.
var (
	// ErrInvalidConfig: the configuration cannot work (Parse, Load,
	// Validate, New).
	ErrInvalidConfig = errors.New("invalid webhook configuration")
	// ErrInvalidOptions: Options name a consumer prefix or reports that
	// cannot work (New).
	ErrInvalidOptions = errors.New("invalid webhook options")
	// ErrNoJetStream: Options name no JetStream context (New).
	ErrNoJetStream = errors.New("webhook: no JetStream")
	// ErrForbiddenAddress: an endpoint resolved to an address the guard
	// refuses (the error of a delivery attempt).
	ErrForbiddenAddress = errors.New("address not allowed")
	// ErrUnknownEndpoint: no endpoint of that name is configured (Enable,
	// Reset, Replay).
	ErrUnknownEndpoint = errors.New("no such webhook endpoint")
	// ErrEndpointBusy: a bridge is consuming the endpoint's consumer right
	// now (Reset).
	ErrEndpointBusy = errors.New("the endpoint's consumer is in use")
)

// FieldError is a configuration error that names the field at fault, as
// it is written in the file (endpoints[0].secrets).
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }
