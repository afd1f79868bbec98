# Shell helpers the bench scripts share (sourced, not run): a free port, and waiting for a
# freshly started kith to answer /health.

# free_port: prints a port nobody answers on; the server is the one to bind it, so a race is
# possible but harmless (start-up would fail loudly).
free_port() {
  local port
  for _ in $(seq 1 100); do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  echo "no free port found" >&2
  return 1
}

# wait_healthy URL PID LOG SECONDS: returns once URL/health answers; fails, showing LOG, when PID
# exits first or SECONDS pass.
wait_healthy() {
  local url=$1 pid=$2 log=$3 secs=$4
  for _ in $(seq 1 $((secs * 5))); do
    if curl -fsS "$url/health" >/dev/null 2>&1; then
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "kith exited during start-up:" >&2
      cat "$log" >&2
      return 1
    fi
    sleep 0.2
  done
  echo "kith did not become healthy in $secs s" >&2
  return 1
}
