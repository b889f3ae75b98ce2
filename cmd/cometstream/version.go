package main

import (
	"context"
	"fmt"
	"os"

	"github.com/cometstream/cometstream/internal/version"
)

// runVersion prints which build this is: `cometstream version` and
// `cometstream --version`.
func runVersion(_ context.Context, args []string) error {
	if err := parseFlags(newFlags("version"), args); err != nil {
		return err
	}
	fmt.Fprintln(os.Stdout, version.Get().String())
	return nil
}
