package config

import (
	"fmt"

	"github.com/cometstream/cometstream/internal/strictyaml"
)

// yamlError turns the YAML decoder's errors into messages that name the
// configuration field (see strictyaml.Describe).
func yamlError(data []byte, err error) error {
	return fmt.Errorf("%w: %s", ErrInvalid, strictyaml.Describe(data, err))
}
