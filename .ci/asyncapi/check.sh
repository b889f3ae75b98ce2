#!/usr/bin/env bash
# Validates docs/asyncapi.yaml and the JSON Schemas it references with
# @asyncapi/parser, the version pinned in package.json and package-lock.json.
# Needs Node.js 20 or later and npm. Works from any directory; exits non-zero
# when the document has an error.
set -euo pipefail
cd "$(dirname "$0")"
# The parser's dependencies need no install scripts; one of them would
# otherwise send install analytics.
export SCARF_ANALYTICS=false
if [ -f package-lock.json ]; then
  npm ci --silent --ignore-scripts --no-audit --no-fund
else
  npm install --silent --ignore-scripts --no-audit --no-fund
fi
node check.mjs ../../docs/asyncapi.yaml
