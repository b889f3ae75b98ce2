// Package version says which build of cometstream is running: the module
// version (v1.2.3, or (devel) for a build from a checkout) and the VCS
// commit the binary was built from, as the Go toolchain records them.
package version
