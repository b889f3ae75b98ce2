#!/usr/bin/env bash
# Checks cometstream's Prometheus surface with promtool, which it installs
# from Debian's prometheus package when it is missing (as root: apt-get; the
# package also ships the Prometheus server, which this script does not use).
#
#   1. promtool check rules docs/alerts.yml, and promtool test rules
#      .ci/alerts_test.yml on synthetic series: the main alerts fire, and
#      clear when the cause goes (the dead-letter alert after a replay).
#   2. promtool check metrics on the live /metrics of each long-running
#      command: produce (against the simulator, on its embedded NATS
#      server), sink sqlite and sink webhook (delivering to the simulator's
#      receiver, and to an address of it that refuses the deliveries, so
#      that retries and dead letters are counted too).
#
# It builds the binary, runs everything on loopback on free ports, in a
# temporary directory, stops what it started and removes the directory at
# exit. It exits non-zero on any problem.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null 2>&1; then
  echo "installing promtool from Debian's prometheus package" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends prometheus >&2
fi
promtool --version | head -n 1

tmp=$(mktemp -d /tmp/cometstream-promtool.XXXXXX)
pids=()
cleanup() {
  local status=$?
  # Stop in the reverse order of the starts: the sinks before the producer
  # (and its embedded server), the simulator last.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
  if [ "$status" -ne 0 ]; then
    for log in "$tmp"/*.log; do
      [ -f "$log" ] || continue
      echo "--- $(basename "$log") (last lines)" >&2
      tail -n 20 "$log" >&2
    done
  fi
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT

# --- the rules -------------------------------------------------------------
promtool check rules docs/alerts.yml
promtool test rules .ci/alerts_test.yml

# --- the live /metrics -----------------------------------------------------
go build -o "$tmp/cometstream" ./cmd/cometstream
bin=$tmp/cometstream

# get ADDR PATH prints the body of an HTTP GET and fails unless it is 200;
# bash's /dev/tcp, so that no HTTP client needs to be installed.
get() {
  local host=${1%:*} port=${1##*:} status
  exec 3<>"/dev/tcp/$host/$port" || return 1
  printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$2" "$1" >&3
  local response
  response=$(cat <&3) || true
  exec 3<&-
  status=$(printf '%s\n' "$response" | head -n 1 | cut -d ' ' -f 2)
  [ "$status" = 200 ] || return 1
  printf '%s\n' "$response" | sed '1,/^\r$/d'
}

# wait_for WHAT COMMAND... retries COMMAND for up to 60 seconds.
wait_for() {
  local what=$1
  shift
  for _ in $(seq 600); do
    if "$@" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.1
  done
  echo "timed out waiting for $what" >&2
  return 1
}

# log_field FILE MSG FIELD prints FIELD of the JSON log line whose msg is MSG.
log_field() {
  sed -n "s/.*\"msg\":\"$2\".*\"$3\":\"\([^\"]*\)\".*/\1/p" "$1" | head -n 1
}
has_field() { [ -n "$(log_field "$@")" ]; }

# metrics_have ADDR NAME... succeeds when /metrics has a series of each
# NAME (a metric name, or its start up to some labels).
metrics_have() {
  local addr=$1 body
  shift
  body=$(get "$addr" /metrics) || return 1
  for name in "$@"; do
    grep -qF -e "$name{" -e "$name " -e "${name%\}}," <<<"$body" || return 1
  done
}

"$bin" simulate --listen 127.0.0.1:0 --persons 60 --matches 20 --fees 15 --log-format json >"$tmp/simulate.out" 2>"$tmp/simulate.log" &
pids+=($!)
wait_for "the simulator" has_field "$tmp/simulate.log" "simulator serving" base_url
sim=$(log_field "$tmp/simulate.log" "simulator serving" base_url)
eval "$(grep '^export COMET_' "$tmp/simulate.out")"

cat >"$tmp/cometstream.yaml" <<EOF
data_dir: $tmp/data
nats:
  listen: 127.0.0.1:0
http:
  listen: 127.0.0.1:0
$(sed -n '/^sources:/,$p' "$tmp/simulate.out")
EOF
"$bin" produce --config "$tmp/cometstream.yaml" --log-format json 2>"$tmp/produce.log" &
pids+=($!)
wait_for "the producer" has_field "$tmp/produce.log" producing nats
nats=$(log_field "$tmp/produce.log" producing nats)
produce=$(log_field "$tmp/produce.log" "operations endpoint" addr)

"$bin" sink sqlite --nats "$nats" --db "$tmp/sink.db" --http 127.0.0.1:0 --log-format json 2>"$tmp/sink.log" &
pids+=($!)
wait_for "the sink's endpoint" has_field "$tmp/sink.log" "operations endpoint" addr
sink=$(log_field "$tmp/sink.log" "operations endpoint" addr)

# The simulator counts what /_sim/webhook receives, and answers 404 to
# the other address: each of those deliveries is retried, then
# dead-lettered.
export PROMTOOL_WEBHOOK_SECRET="whsec_$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
cat >"$tmp/webhooks.yaml" <<EOF
allow_private: [127.0.0.0/8]
endpoints:
  - {name: received, url: $sim/_sim/webhook, secrets_env: PROMTOOL_WEBHOOK_SECRET, start: all}
  - {name: refused, url: $sim/nowhere, secrets_env: PROMTOOL_WEBHOOK_SECRET, start: all, retry: [100ms]}
EOF
"$bin" sink webhook --nats "$nats" --config "$tmp/webhooks.yaml" --http 127.0.0.1:0 --log-format json 2>"$tmp/webhook.log" &
pids+=($!)
wait_for "the bridge's endpoint" has_field "$tmp/webhook.log" "operations endpoint" addr
webhook=$(log_field "$tmp/webhook.log" "operations endpoint" addr)

wait_for "the producer's metrics" metrics_have "$produce" cometstream_passes_total cometstream_events_total cometstream_pass_duration_seconds_bucket cometstream_user_requests_total
wait_for "the sink's metrics" metrics_have "$sink" cometstream_sink_events_total cometstream_sink_position cometstream_sink_lag_events cometstream_sink_batch_failures
wait_for "the bridge's metrics" metrics_have "$webhook" cometstream_webhook_attempts_total cometstream_webhook_deliveries_total cometstream_webhook_latency_seconds_bucket cometstream_webhook_dead_letters cometstream_webhook_lag_events
wait_for "deliveries and dead letters" metrics_have "$webhook" \
  'cometstream_webhook_deliveries_total{endpoint="received",result="delivered"}' \
  'cometstream_webhook_deliveries_total{endpoint="refused",result="dead_letter"}'

failed=0
for cmd in produce sink webhook; do
  addr=${!cmd}
  get "$addr" /metrics >"$tmp/$cmd.metrics"
  echo "promtool check metrics: $cmd ($(grep -c '^cometstream_' "$tmp/$cmd.metrics") cometstream series)"
  if ! promtool check metrics <"$tmp/$cmd.metrics"; then
    failed=1
  fi
done
exit "$failed"
