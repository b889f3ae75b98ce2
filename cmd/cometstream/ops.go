package main

import (
	"context"
	"fmt"
	"time"

	"github.com/cometstream/cometstream/internal/opshttp"
)

// opsCloseTimeout bounds the operations endpoint's shutdown.
const opsCloseTimeout = 5 * time.Second

// serveOps starts the operations endpoint c describes, unless c.Addr is
// empty, and returns the function that stops it. An address it cannot
// listen on is a usage error naming setting (--http, http.listen): the
// operator must change it.
func serveOps(c opshttp.Config, setting string) (stop func(), err error) {
	if c.Addr == "" {
		return func() {}, nil
	}
	srv, err := opshttp.Start(c)
	if err != nil {
		return nil, &usageError{err: fmt.Errorf("%s: %w", setting, err)}
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), opsCloseTimeout)
		defer cancel()
		_ = srv.Close(ctx)
	}, nil
}
