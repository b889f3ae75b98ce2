// Package plan works out whether a COMET user's budget of calls lets each
// of its reports keep its interval, for the `cometstream plan` command.
//
// A COMET user may make rate_limit calls a second, shared by every report
// polled with that user's keys; the producer's limiter (internal/comet)
// paces them comet.LimiterMargin under it. So, per source and user:
//
//	budget           = rate_limit × 60 × (1 − LimiterMargin)   calls a minute
//	need             = pages × 60s / interval                   calls a minute, per report
//	with churn       = 2 × need   (a pass that finds rows missing is followed at once
//	                               by a confirming pass; that one never asks for another)
//	pass at best     = pages / (rate_limit × (1 − LimiterMargin))   seconds
//	shortest alone   = max(pass at best, config.MinInterval)
//	shortest shared  = max(interval × Σneed / budget, config.MinInterval)
//
// The shared rule scales every interval of the user by one factor, the
// user's total need over its budget, so that together the reports use the
// whole budget and keep the proportions the operator chose. A report
// cannot keep its interval when its user's total need is over the budget
// (the shared limiter slows all of them) or when a pass takes longer than
// the interval (the next pass follows at once). When a page count is not
// known, whether that user's reports keep their intervals cannot be told.
//
// A pass costs one request a page. How many pages it makes comes from a
// Size: the producer's last complete pass, or page 0 asked now, at the page
// size COMET serves (fewer rows than asked on deployments that cap it).
//
// The package is pure: the command measures, Compute does the arithmetic,
// Print renders the table.
package plan
