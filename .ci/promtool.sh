#!/usr/bin/env bash
# Checks cometstream's Prometheus surface with promtool, which it installs
# from Debian's prometheus package when it is missing (as root: apt-get; the
# package also ships the Prometheus server, which this script does not use).
#
#   1. promtool check rules docs/alerts.yml, and promtool test rules on
#      synthetic series: the main alerts fire, and clear when the cause goes
#      (the dead-letter alert after a replay).
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

cp docs/alerts.yml "$tmp/alerts.yml"
cat > "$tmp/alerts_test.yml" <<'EOF'
rule_files: [alerts.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'cometstream_webhook_dead_letters{job="cometstream-webhook",instance="b:9464",endpoint="crm"}'
        values: '0 0 3 3 3 0 0'
    alert_rule_test:
      - {eval_time: 1m, alertname: CometstreamWebhookDeadLetters, exp_alerts: []}
      - eval_time: 3m
        alertname: CometstreamWebhookDeadLetters
        exp_alerts:
          - exp_labels: {severity: warning, job: cometstream-webhook, instance: "b:9464", endpoint: crm}
            exp_annotations:
              summary: "cometstream webhook endpoint crm: 3 dead letters"
              description: "Deliveries to crm failed through their whole retry schedule and wait in the dead-letter stream. Fix the receiver, then `cometstream sink webhook replay --config FILE --endpoint crm`; the alert clears within seconds of the replay."
      # After the replay the gauge is 0, and the alert clears.
      - {eval_time: 6m, alertname: CometstreamWebhookDeadLetters, exp_alerts: []}
  - interval: 1m
    input_series:
      - series: 'cometstream_held_deletes{job="cometstream-produce",instance="p:9464",report="persons"}'
        values: '0 12 12 0'
      - series: 'cometstream_sink_lag_events{job="cometstream-sink",instance="s:9464",report="persons"}'
        values: '0 5000x15 0'
      - series: 'cometstream_report_stalled{job="cometstream-produce",instance="p:9464",report="fees"}'
        values: '0 1x10'
      - series: 'up{job="cometstream-produce",instance="p:9464"}'
        values: '1x20'
    alert_rule_test:
      - eval_time: 2m
        alertname: CometstreamHeldDeletes
        exp_alerts:
          - exp_labels: {severity: warning, job: cometstream-produce, instance: "p:9464", report: persons}
            exp_annotations:
              summary: "cometstream report persons holds 12 deletes back"
              description: "A pass would delete more of persons than max_delete_fraction allows; the deletes wait for an operator. If COMET really lost those rows: `cometstream allow-deletes --nats URL --report persons`."
      - {eval_time: 3m, alertname: CometstreamHeldDeletes, exp_alerts: []}
      - {eval_time: 5m, alertname: CometstreamSinkLagHigh, exp_alerts: []}
      - eval_time: 12m
        alertname: CometstreamSinkLagHigh
        exp_alerts:
          - exp_labels: {severity: warning, job: cometstream-sink, instance: "s:9464", report: persons}
            exp_annotations:
              summary: "cometstream sink s:9464 is 5000 sequences behind in persons"
              description: "The sink applies events of persons more slowly than the producer publishes them, or its database refuses writes (its logs say \"handler failed; retrying the batch\")."
      - {eval_time: 17m, alertname: CometstreamSinkLagHigh, exp_alerts: []}
      - eval_time: 4m
        alertname: CometstreamReportStalled
        exp_alerts:
          - exp_labels: {severity: critical, job: cometstream-produce, instance: "p:9464", report: fees}
            exp_annotations:
              summary: "cometstream report fees stopped polling"
              description: "The watchdog sees fees stuck: its next pass is overdue, or its pass makes no progress. The producer is not ready while a report is stalled; take a goroutine profile (/debug/pprof/ with --pprof) and restart it."
      - eval_time: 7m
        alertname: CometstreamProducerNotReady
        exp_alerts:
          - exp_labels: {severity: critical, job: cometstream-produce, instance: "p:9464"}
            exp_annotations:
              summary: "cometstream producer p:9464 is not ready"
              description: "The producer does not answer its operations endpoint, or a report of it is stalled: /readyz answers 503."
  - interval: 1m
    input_series:
      # The last successful pass at 0, then none: stale after 15 minutes
      # and 5 of pending.
      - series: 'cometstream_last_success_timestamp_seconds{job="cometstream-produce",instance="p:9464",report="fees"}'
        values: '0x30'
      - series: 'cometstream_consecutive_failures{job="cometstream-produce",instance="p:9464",report="fees"}'
        values: '0 1 2 3x30'
      - series: 'cometstream_passes_total{job="cometstream-produce",instance="p:9464",report="fees",result="failed"}'
        values: '0 1 2 3x30'
    alert_rule_test:
      - {eval_time: 14m, alertname: CometstreamReportStale, exp_alerts: []}
      - eval_time: 22m
        alertname: CometstreamReportStale
        exp_alerts:
          - exp_labels: {severity: warning, job: cometstream-produce, instance: "p:9464", report: fees}
            exp_annotations:
              summary: "cometstream report fees: no successful pass for 22m 0s"
              description: "The producer has not completed a pass over fees for 22m 0s: its sinks and webhooks see no changes. See CometstreamReportFailing, CometstreamReportUnavailable and CometstreamReportStalled for why; `cometstream status` shows the report's state."
      - {eval_time: 4m, alertname: CometstreamReportFailing, exp_alerts: []}
      - eval_time: 9m
        alertname: CometstreamReportFailing
        exp_alerts:
          - exp_labels: {severity: warning, job: cometstream-produce, instance: "p:9464", report: fees}
            exp_annotations:
              summary: "cometstream report fees: 3 passes failed in a row"
              description: "Passes over fees end in errors (pages failing after their retries, malformed pages, columns changing within a pass) and the report backs off; the stream carries comet.report.failed. The producer's logs name the error."
      - {eval_time: 9m, alertname: CometstreamReportUnavailable, exp_alerts: []}
  - interval: 1m
    input_series:
      # Available, then refused from 3m, then available again at 8m.
      - series: 'cometstream_passes_total{job="cometstream-produce",instance="p:9464",report="fees",result="unavailable"}'
        values: '0 0 0 1 2 3 4 5 5 5'
      - series: 'cometstream_consecutive_failures{job="cometstream-produce",instance="p:9464",report="fees"}'
        values: '0 0 0 1 2 3 4 5 0 0'
    alert_rule_test:
      - {eval_time: 2m, alertname: CometstreamReportUnavailable, exp_alerts: []}
      - eval_time: 4m
        alertname: CometstreamReportUnavailable
        exp_alerts:
          - exp_labels: {severity: critical, job: cometstream-produce, instance: "p:9464", report: fees}
            exp_annotations:
              summary: "cometstream report fees is unavailable: COMET refuses its API key"
              description: "COMET refused the key of fees (revoked key, deleted report, wrong base_url or path). Nothing is deleted while it is unavailable; fix the key or the configuration."
      # A refused key is unavailable, not failing.
      - {eval_time: 7m, alertname: CometstreamReportFailing, exp_alerts: []}
      - {eval_time: 9m, alertname: CometstreamReportUnavailable, exp_alerts: []}
  - interval: 1m
    input_series:
      - series: 'cometstream_inconsistent_passes{job="cometstream-produce",instance="p:9464",report="persons"}'
        values: '0 4 9 10 11 0'
    alert_rule_test:
      - {eval_time: 2m, alertname: CometstreamReportInconsistent, exp_alerts: []}
      - eval_time: 3m
        alertname: CometstreamReportInconsistent
        exp_alerts:
          - exp_labels: {severity: warning, job: cometstream-produce, instance: "p:9464", report: persons}
            exp_annotations:
              summary: "cometstream report persons: 10 passes in a row not consistent"
              description: "No pass over persons has been consistent lately, so rows deleted in COMET stay in the stream and the sinks. The producer's log line \"no consistent pass for N passes in a row\" says why (duplicate_keys, invalid_rows, row counts); a better key or fixing the rows in COMET ends it."
      - {eval_time: 5m, alertname: CometstreamReportInconsistent, exp_alerts: []}
  - interval: 1m
    input_series:
      - series: 'cometstream_user_requests_total{job="cometstream-produce",instance="p:9464",user="sim/default"}'
        values: '0+570x30'
      - series: 'cometstream_user_rate_limit{job="cometstream-produce",instance="p:9464",user="sim/default"}'
        values: '10x30'
    alert_rule_test:
      - eval_time: 25m
        alertname: CometstreamRateBudgetNearlyUsed
        exp_alerts:
          - exp_labels: {severity: warning, job: cometstream-produce, instance: "p:9464", user: sim/default}
            exp_annotations:
              summary: "cometstream: COMET user sim/default uses 95% of its rate limit"
              description: "The reports of sim/default make nearly as many calls as COMET allows: passes slow down and overrun their intervals. `cometstream plan` says which intervals fit the budget."
EOF
(cd "$tmp" && promtool test rules alerts_test.yml)

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
