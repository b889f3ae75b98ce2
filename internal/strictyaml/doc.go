// Package strictyaml decodes the YAML files cometstream reads (the
// producer's configuration, the webhook bridge's) strictly, with errors that
// name the field and its line in the file's terms rather than Go's.
package strictyaml
