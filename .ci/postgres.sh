#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server on loopback, on a free port, and
# prints PGDATA=<its data directory> and then, on the last line of stdout,
# its DSN.
#
# When PostgreSQL is missing (no /usr/lib/postgresql/*/bin/postgres), it
# first installs Debian's postgresql package (apt-get update, then apt-get
# install postgresql), which needs root and the network, and says so on
# stderr. Run as root, it also creates a system user postgres if there is
# none, and runs the server as that user (PostgreSQL refuses root).
#
# Stop it, and remove its data directory, with: .ci/postgres.sh stop DIR
set -euo pipefail

if [ "${1:-}" = "stop" ]; then
  pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  runas=(); [ "$(id -u)" = 0 ] && runas=(runuser -u postgres --)
  "${runas[@]}" "$pgbin/pg_ctl" -D "$2" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$2"
  exit 0
fi

pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$pgbin" ] || [ ! -x "$pgbin/postgres" ]; then
  echo "postgres.sh: PostgreSQL is not installed: installing Debian's postgresql package (apt-get update; apt-get install postgresql)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
  pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi

# A free port: bind to port 0 and read what the kernel chose.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo 55432)
dir=$(mktemp -d /tmp/cometstream-pg.XXXXXX)
runas=()
if [ "$(id -u)" = 0 ]; then
  # PostgreSQL refuses to run as root.
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  chown postgres "$dir"
  runas=(runuser -u postgres --)
fi
"${runas[@]}" "$pgbin/initdb" -D "$dir" -A trust -U postgres --no-sync >/dev/null
"${runas[@]}" "$pgbin/pg_ctl" -D "$dir" -l "$dir/server.log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=200" start >/dev/null
echo "PGDATA=$dir"
echo "postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
