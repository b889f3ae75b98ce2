module github.com/cometstream/cometstream

go 1.26.8

require (
	github.com/cenkalti/backoff/v4 v4.3.0
	go.yaml.in/yaml/v3 v3.0.6
	golang.org/x/term v0.48.0
	golang.org/x/time v0.16.0
)

require golang.org/x/sys v0.50.0 // indirect
