# Shared by bench/run and bench/profile: start and stop one system's server on a loopback
# port, pinned to core $SERVER_CPU. Expects ROOT, BENCH, NOWGATE_PY, BENCH_PY, SERVER_CPU.
# NOWGATE_ROOT (default: this checkout) is where nowgate's src/ and app/ are imported from: point it at
# a copy of the tree to measure a change to app/ without touching the working tree, or set
# NOWGATE_ALT_ROOT and add the system nowgate_alt to run both side by side.
# shellcheck shell=bash

SERVER_PID=

free_port() {
  "$BENCH_PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {  # $1 port, $2 pid: until the server accepts TCP connections (30 s at most)
  for _ in $(seq 300); do
    if ! kill -0 "$2" 2>/dev/null; then return 1; fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

start_server() {  # $1 system, $2 port, $3 log file: sets SERVER_PID, URL, PROTO, ORIGIN
  local system=$1 port=$2 logfile=$3
  ORIGIN=
  case $system in
    nowgate|nowgate_alt)
      # nowgate_alt: the same gateway with src/ and app/ imported from $NOWGATE_ALT_ROOT (an A/B of a
      # change to app/ within one run).
      local root=${NOWGATE_ROOT:-$ROOT}
      [ "$system" = nowgate_alt ] && root=$NOWGATE_ALT_ROOT
      # Every security layer on: production mode, Origin allow-list, signed identities,
      # validation, per-identity and per-connection rate limits (sized not to bind).
      ORIGIN=http://127.0.0.1:$port
      NOWGATE_MODE=production \
      NOWGATE_SECRET_KEYS=$("$BENCH_PY" -c 'import secrets; print(secrets.token_urlsafe(32))') \
      NOWGATE_ALLOWED_ORIGINS=$ORIGIN \
      NOWGATE_CONNECT_RATE_PER_ADDRESS=100000/minute \
      NOWGATE_CONNECTION_RATE=100000/second \
      NOWGATE_LOG_FORMAT=text \
        taskset -c "$SERVER_CPU" bash -c 'cd "$1" && shift && exec "$@"' _ "$root" \
        env PYTHONPATH="$root/src" "$NOWGATE_PY" -m nowgate serve \
        --policy "$ROOT/policies/bench.toml" \
        --host 127.0.0.1 --port "$port" >"$logfile" 2>&1 &
      PROTO=jsonrpc URL=ws://127.0.0.1:$port/ws ;;
    bare)
      taskset -c "$SERVER_CPU" "$NOWGATE_PY" "$BENCH/peers/bare_fastapi.py" --port "$port" \
        >"$logfile" 2>&1 &
      PROTO=jsonrpc URL=ws://127.0.0.1:$port/ws ;;
    socketio_py)
      taskset -c "$SERVER_CPU" "$BENCH_PY" "$BENCH/peers/socketio_server.py" --port "$port" \
        >"$logfile" 2>&1 &
      PROTO=socketio URL=http://127.0.0.1:$port ;;
    socketio_node)
      taskset -c "$SERVER_CPU" node "$BENCH/peers/socketio_server.js" --port "$port" \
        >"$logfile" 2>&1 &
      PROTO=socketio URL=http://127.0.0.1:$port ;;
    *) echo "unknown system $system" >&2; return 1 ;;
  esac
  SERVER_PID=$!
  if ! wait_port "$port" "$SERVER_PID"; then
    echo "bench/run: $system did not start:" >&2
    cat "$logfile" >&2
    return 1
  fi
}

stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=
}
