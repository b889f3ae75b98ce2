// Package simulator is a stand-in for COMET's saved-report API, faithful
// where cometstream depends on it and able to misbehave on purpose.
//
// It serves several deterministic, seeded reports (persons, matches, fees,
// and on request hostile and events) behind their own API keys; computes
// totalSize and lastPage as COMET does; refuses page sizes above 1000, wrong
// keys and deleted reports; answers 429 to a user making more than the
// allowed calls per second and counts every such violation. For tests and
// demos it adds latency, 500s and truncated bodies, changes data live
// (inserts at the top shift every later row), and calls a hook after each
// page so a test can change the data between two pages of one pass.
//
// Each report can also be switched to the shapes public client code shows
// real deployments have (Shapes; at construction in ReportSpec, at run time
// with SetShapes or POST /_sim/reports/{name}/shape, from the simulate
// command with --shape REPORT:NAME[=VALUE]). By name:
//
//	empty-strings    empty cells are "" in every column type, not null
//	undeclared       rows carry uid, id and lastupdateddatetime, which columnKeys does not list
//	repeat-keys=N    N keys occur on two adjacent rows with different content, in a random order per request
//	page-cap=N       at most N rows a page, said in pageSize and used for lastPage
//	template-path    served only at ReportPath <reportTemplateID>/<page>/<size>/
//	params=k=v&…     every request must carry these query parameters, or gets a 400
//	page-result-ids  #result_id# restarts at 1 on every page
//	bad-cells=N      N rows carry a cell that does not convert to its column type
//	html-errors      failures are HTML pages, not JSON
//	grow=N           N rows are inserted at the top after each page 0
//	storm=N          the next N requests get a 503
//	maintenance=N    the next N requests get a 200 maintenance page in HTML
//
// With no shape switched on, a report is served as before shapes existed:
// the same rows for the same seed, the same routes, answers and counts.
// Rows always returns what a sink should hold, whatever the shapes.
package simulator
