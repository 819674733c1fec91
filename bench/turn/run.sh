#!/bin/sh
# TURN capacity: callsign's relay (bench/turn/main.go) against coturn, in the
# same run, measured with coturn's turnutils_uclient. Not part of go test.
#
#   bench/turn/run.sh                 # 50 clients x 2000 x 1000-byte packets
#   M=10 N=200 bench/turn/run.sh      # quick smoke run
#   Z=5 bench/turn/run.sh             # 5 ms between packets per client (default 20)
#   LISTENERS=1 bench/turn/run.sh     # pass -listeners to ours
#   SPLIT=5 bench/turn/run.sh         # 5 uclient processes on 127.0.0.2-6
#   ROUNDS=2 bench/turn/run.sh        # alternate the servers, 2 rows each
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
SPLIT=${SPLIT:-1}
ROUNDS=${ROUNDS:-1}

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
# With SPLIT=k the M clients are spread over k uclient processes bound to
# 127.0.0.2, 127.0.0.3, ... (clients on different hosts, as in a real
# deployment); the counts are summed, the times are the slowest process's.
run() {
	per=$((M / SPLIT))
	start=$(date +%s.%N)
	i=0
	pids=""
	while [ $i -lt "$SPLIT" ]; do
		local_ip=127.0.0.1
		if [ "$SPLIT" -gt 1 ]; then local_ip=127.0.0.$((i + 2)); fi
		turnutils_uclient -m "$per" -n "$N" -l "$L" -z "$Z" -e 127.0.0.1 -r "$PEER_PORT" -L "$local_ip" \
			-p "$2" -u "$USER" -w "$PASS" 127.0.0.1 >"$TMP/$1.$i.out" 2>&1 &
		pids="$pids $!"
		i=$((i + 1))
	done
	for p in $pids; do wait "$p" || true; done
	end=$(date +%s.%N)
	cat "$TMP/$1".*.out >"$TMP/$1.out"
	sent=$(sed -n 's/.*tot_send_msgs=\([0-9]*\), tot_recv_msgs=\([0-9]*\)$/\1/p' "$TMP/$1.out" | awk '{s+=$1} END {print s+0}')
	recv=$(sed -n 's/.*tot_send_msgs=\([0-9]*\), tot_recv_msgs=\([0-9]*\)$/\2/p' "$TMP/$1.out" | awk '{s+=$1} END {print s+0}')
	done_runs=$(grep -c 'Total transmit time' "$TMP/$1.out" || true)
	ttime=$(sed -n 's/.*Total transmit time is \([0-9]*\).*/\1/p' "$TMP/$1.out" | sort -n | tail -1)
	rtt=$(sed -n 's/.*Average round trip delay \([0-9.]*\) ms.*/\1/p' "$TMP/$1.out" | awk '{s+=$1; n++} END {if (n) printf "%.2f", s/n}')
	jit=$(sed -n 's/.*Average jitter \([0-9.]*\) ms.*/\1/p' "$TMP/$1.out" | awk '{s+=$1; n++} END {if (n) printf "%.2f", s/n}')
	wall=$(echo "$end - $start" | bc)
	if [ "$done_runs" != "$SPLIT" ]; then
		echo "$1: $((SPLIT - done_runs)) uclient run(s) failed; last lines:" >&2
		tail -5 "$TMP/$1.out" >&2
		sent="?"
	fi
	lost=$(awk -v s="$sent" -v r="$recv" 'BEGIN { if (s+0 > 0) printf "%d (%.3f%%)", s-r, 100*(s-r)/s; else print "?" }')
	printf '| %-8s | %8s | %8s | %-16s | %6s | %7.1f | %7s | %9s |\n' \
		"$1" "$sent" "$recv" "$lost" "${ttime:-?}" "$wall" "${rtt:-?}" "${jit:-?}" >>"$TMP/table"
}

"$TMP/turnbench" -secret "$SECRET" -ttl 2h -listen "127.0.0.1:$OURS_PORT" -listeners "$LISTENERS" >"$TMP/ours.log" 2>&1 &
PIDS="$PIDS $!"
turnserver -n --listening-ip=127.0.0.1 --relay-ip=127.0.0.1 --listening-port="$COTURN_PORT" \
	--use-auth-secret --static-auth-secret="$SECRET" --realm=callsign --allow-loopback-peers \
	--no-cli --no-tls --no-dtls --no-tcp --log-file=stdout --simple-log >"$TMP/coturn.log" 2>&1 &
PIDS="$PIDS $!"
wait_udp "$OURS_PORT"
wait_udp "$COTURN_PORT"

# Alternate the servers so that load from other processes on the machine
# falls on both alike.
r=0
while [ $r -lt "$ROUNDS" ]; do
	run coturn "$COTURN_PORT"
	run callsign "$OURS_PORT"
	r=$((r + 1))
done

echo "turnutils_uclient -m $M -n $N -l $L -z $Z -e 127.0.0.1 (peer echo), $SPLIT process(es); $(nproc) CPUs; coturn $(turnserver --version 2>/dev/null | head -1); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| server   |     sent | received | lost             | time s |  wall s |  rtt ms | jitter ms |"
echo "|----------|----------|----------|------------------|--------|---------|---------|-----------|"
cat "$TMP/table"
