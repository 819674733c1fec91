#!/bin/sh
# TURN capacity: callsign's relay (bench/turn/main.go) against coturn, in the
# same run, measured with coturn's turnutils_uclient. Not part of go test.
#
#   bench/turn/run.sh                 # 50 clients x 2000 x 1000-byte packets
#   M=10 N=200 bench/turn/run.sh      # quick smoke run
#   Z=5 bench/turn/run.sh             # 5 ms between packets per client (default 20)
#   LISTENERS=1 bench/turn/run.sh     # pass -listeners to ours
#
# Each uclient client holds two allocations (RTP and RTCP, the second through
# EVEN-PORT/RESERVATION-TOKEN) and echoes through turnutils_peer, so every
# packet crosses the relay twice. Both servers get the same REST secret and
# the same credentials, listen on 127.0.0.1 and may relay to loopback peers.
set -eu

M=${M:-50}
N=${N:-2000}
L=${L:-1000}
Z=${Z:-20}
LISTENERS=${LISTENERS:-0}

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TMP=$(mktemp -d)
PIDS=""
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

if ! command -v turnserver >/dev/null 2>&1 || ! command -v turnutils_uclient >/dev/null 2>&1; then
	echo "installing coturn..." >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y coturn >&2
fi

# Ephemeral-ish ports: a random base in 20000-44999. turnutils_peer uses
# PEER and PEER+1 (RTCP).
BASE=$((20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 25000))
COTURN_PORT=$BASE
OURS_PORT=$((BASE + 10))
PEER_PORT=$((BASE + 20))

SECRET=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
(cd "$ROOT" && go build -o "$TMP/turnbench" ./bench/turn)
set -- $("$TMP/turnbench" -secret "$SECRET" -creds bench -ttl 2h)
USER=$1
PASS=$2

turnutils_peer -L 127.0.0.1 -p "$PEER_PORT" >"$TMP/peer.log" 2>&1 &
PIDS="$PIDS $!"

# wait_udp PORT: until something listens on 127.0.0.1:PORT/udp.
wait_udp() {
	i=0
	while ! ss -lun 2>/dev/null | grep -q "127.0.0.1:$1 "; do
		i=$((i + 1))
		if [ $i -gt 100 ]; then echo "nothing listens on udp $1" >&2; exit 1; fi
		sleep 0.1
	done
}

# run NAME PORT: runs uclient against the server on PORT, appends a row.
run() {
	start=$(date +%s.%N)
	turnutils_uclient -m "$M" -n "$N" -l "$L" -z "$Z" -e 127.0.0.1 -r "$PEER_PORT" \
		-p "$2" -u "$USER" -w "$PASS" 127.0.0.1 >"$TMP/$1.out" 2>&1 || true
	end=$(date +%s.%N)
	sent=$(sed -n 's/.*tot_send_msgs=\([0-9]*\), tot_recv_msgs=\([0-9]*\)$/\1/p' "$TMP/$1.out" | tail -1)
	recv=$(sed -n 's/.*tot_send_msgs=\([0-9]*\), tot_recv_msgs=\([0-9]*\)$/\2/p' "$TMP/$1.out" | tail -1)
	ttime=$(sed -n 's/.*Total transmit time is \([0-9]*\).*/\1/p' "$TMP/$1.out" | tail -1)
	lost=$(sed -n 's/.*Total lost packets \([0-9]*\) (\([0-9.]*\)%).*/\1 (\2%)/p' "$TMP/$1.out" | tail -1)
	rtt=$(sed -n 's/.*Average round trip delay \([0-9.]*\) ms.*/\1/p' "$TMP/$1.out" | tail -1)
	jit=$(sed -n 's/.*Average jitter \([0-9.]*\) ms.*/\1/p' "$TMP/$1.out" | tail -1)
	wall=$(echo "$end - $start" | bc)
	if [ -z "$sent" ]; then
		echo "$1: uclient failed; its last lines:" >&2
		tail -5 "$TMP/$1.out" >&2
	fi
	printf '| %-8s | %8s | %8s | %-16s | %6s | %8.1f | %9s | %9s |\n' \
		"$1" "${sent:-?}" "${recv:-?}" "${lost:-?}" "${ttime:-?}" "$wall" "${rtt:-?}" "${jit:-?}" >>"$TMP/table"
}

turnserver -n --listening-ip=127.0.0.1 --relay-ip=127.0.0.1 --listening-port="$COTURN_PORT" \
	--use-auth-secret --static-auth-secret="$SECRET" --realm=callsign --allow-loopback-peers \
	--no-cli --no-tls --no-dtls --no-tcp --log-file=stdout --simple-log >"$TMP/coturn.log" 2>&1 &
COTURN_PID=$!
PIDS="$PIDS $COTURN_PID"
wait_udp "$COTURN_PORT"
run coturn "$COTURN_PORT"
kill "$COTURN_PID"

"$TMP/turnbench" -secret "$SECRET" -ttl 2h -listen "127.0.0.1:$OURS_PORT" -listeners "$LISTENERS" >"$TMP/ours.log" 2>&1 &
PIDS="$PIDS $!"
wait_udp "$OURS_PORT"
run callsign "$OURS_PORT"

echo "turnutils_uclient -m $M -n $N -l $L -z $Z -e 127.0.0.1 (peer echo); $(nproc) CPUs; $(turnserver --version 2>/dev/null | head -1 || echo coturn)"
echo
echo "| server   |     sent | received | lost             | time s |  wall s | rtt ms    | jitter ms |"
echo "|----------|----------|----------|------------------|--------|---------|-----------|-----------|"
cat "$TMP/table"
