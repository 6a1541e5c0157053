#!/usr/bin/env bash
# Redis pub/sub fan-out: how many room messages one Redis delivers per second to the gateways
# following a room (the capacity model's Redis figure, docs/operations.md). A private
# redis-server on a free loopback port; N `redis-cli subscribe` processes stand in for the
# gateways; redis-benchmark publishes messages of a room tick's size. The baseline in the same
# run is the same PUBLISH with nobody subscribed.
#
#   loadtest/bench_redis.sh [subscribers=100] [bytes=1500] [messages=20000]
#
# Needs redis-server, redis-cli and redis-benchmark on PATH (Debian: redis-server, redis-tools).
# Last line: redis fanout N=..: X publishes/s = Y deliveries/s of B bytes; alone Z publishes/s; ratio Y/Z
set -euo pipefail
subscribers=${1:-100}
bytes=${2:-1500}
messages=${3:-20000}
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
dir=$(mktemp -d)
cleanup() {
    pkill -f "redis-cli -p $port subscribe" 2> /dev/null || true
    redis-cli -p "$port" shutdown nosave > /dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
    --dir "$dir" --logfile "$dir/log" > /dev/null
for _ in $(seq 50); do redis-cli -p "$port" ping > /dev/null 2>&1 && break; sleep 0.1; done
payload=$(head -c "$bytes" /dev/zero | tr '\0' x)

rate() {  # publishes per second, from redis-benchmark's quiet summary
    timeout 300 redis-benchmark -p "$port" -c 4 -P 8 -n "$messages" -q \
        PUBLISH liveshop:room:show "$payload" 2>&1 | tr '\r' '\n' \
        | grep -o '[0-9.]* requests per second' | tail -1 | cut -d' ' -f1
}

alone=$(rate)
for _ in $(seq "$subscribers"); do
    redis-cli -p "$port" subscribe liveshop:room:show > /dev/null &
done
for _ in $(seq 100); do
    [ "$(redis-cli -p "$port" pubsub numsub liveshop:room:show | tail -1)" -ge "$subscribers" ] && break
    sleep 0.1
done
fanned=$(rate)
python3 - "$subscribers" "$bytes" "$fanned" "$alone" <<'PY'
import sys
n, size, fanned, alone = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
print(f"redis fanout N={n}: {fanned:.0f} publishes/s = {fanned * n:.0f} deliveries/s of {size} "
      f"bytes; alone {alone:.0f} publishes/s; ratio {fanned * n / alone:.2f}")
PY
