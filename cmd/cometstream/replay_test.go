package main

import (
	"strings"
	"testing"
)

// TestReplayUnknownEndpointIsUsage: replaying an endpoint the webhook
// configuration lacks exits 2 naming it, before NATS is reached (there may
// be no dead-letter stream yet).
func TestReplayUnknownEndpointIsUsage(t *testing.T) {
	cfg := writeFile(t, "hooks.yaml", "allow_private: [127.0.0.0/8]\nendpoints:\n  - name: crm\n    url: http://127.0.0.1:1/hook\n    secrets: [whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw]\n")
	status, out := runBin(t, nil, "sink", "webhook", "replay", "--nats", "nats://127.0.0.1:1", "--config", cfg, "--endpoint", "nosuch")
	if status != 2 || !strings.Contains(out, `--endpoint: no endpoint "nosuch" in `) || !strings.Contains(out, "(it has crm)") {
		t.Errorf("replay --endpoint nosuch: exit %d, want 2 naming it:\n%s", status, out)
	}
}
