package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	os.Exit(exitCode(err))
}

func exitCode(err error) int {
	switch {
	case err == nil, errors.Is(err, errHelp):
		return 0
	case isUsage(err):
		fmt.Fprintln(os.Stderr, "cometstream:", err)
		return 2
	default:
		fmt.Fprintln(os.Stderr, "cometstream:", err)
		return 1
	}
}
