# shellcheck shell=bash
# What scripts/demo and scripts/bench share, sourced by both: free ports,
# waiting for a port, and the Tansu broker. Expects $venv (the virtualenv
# scripts/setup fills) and a `pids` array the caller kills on exit.
# shellcheck disable=SC2154 # venv and pids belong to the caller

# A free loopback port: $1 when it is free, any free one otherwise.
free_port() {
  "$venv/bin/python" -c '
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])' "${1:-0}"
}

# Waits up to a minute for something to listen on loopback port $1.
wait_port() {
  for _ in $(seq 300); do
    "$venv/bin/python" -c "import socket; socket.create_connection(('127.0.0.1',$1),1)" 2>/dev/null && return
    sleep 0.2
  done
  echo "${0##*/}: nothing listens on $1" >&2
  exit 1
}

# The Tansu binary scripts/setup built.
tansu="${STOCKYARD_TOOLS:-$HOME/.cache/stockyard-tools}/tansu/bin/tansu"

# Starts Tansu on port $1, keeping its records in SQLite under directory
# $2, logging to $3; waits until it listens.
start_tansu() {
  mkdir -p "$2"
  (cd "$2" && exec "$tansu" broker --listener-url "tcp://127.0.0.1:$1" \
    --advertised-listener-url "tcp://127.0.0.1:$1" --storage-engine sqlite://tansu.db) >"$3" 2>&1 &
  pids+=($!)
  wait_port "$1"
}
