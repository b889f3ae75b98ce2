// Package examples is a module of its own, outside cometstream's, that uses
// cometstream only as an outside service would: through its public
// packages (event, consumer, consumer/sinktest, cometstreamtest), never an
// internal one. CI builds and tests it, so the public surface cannot
// silently regress.
//
//   - playerwatch: a service that prints every update of one report's rows.
//   - memstore: a minimal consumer.Store, kept in memory, that passes the
//     store suite every sink must pass.
package examples
