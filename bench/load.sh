#!/usr/bin/env bash
# signet load benchmark: throughput and latency against an nginx hop, and peak
# memory while streaming large bodies.
#
# Usage: bench/load.sh            (as root when nginx/wrk need installing)
#
# What it does, all on 127.0.0.1:
#   1. Installs nginx, wrk, curl and python3 from Debian packages if missing
#      (oha is not packaged in Debian 12, so wrk with bench/wrk.lua gives the
#      percentiles), and builds signet with `cargo build --release`.
#   2. Starts
#        origin  nginx serving /small (100-byte file), /post (reads and discards
#                a 1 KiB body, answers "ok"), /big (512 MiB file) and /check
#                (echoes whether the request carried a SigV4 Authorization and
#                its x-amz-content-sha256); access log off.
#        hop     a second nginx proxy_pass'ing to the origin over keepalive
#                upstream connections (upstream keepalive 64, HTTP/1.1,
#                Connection ""); combined access log to a file, like nginx's
#                default. The cost of one hop without signing.
#        signet  the release binary, S3 route to the origin (payload "auto":
#                the 1 KiB POST is buffered, hashed and signed; large bodies
#                stream with UNSIGNED-PAYLOAD), JSON access log (info) to a file.
#        signet-quiet  the same with --log-level warn (no access log), to show
#                what the per-request log costs.
#        hyper-floor   examples/hyper_floor.rs: a bare hyper proxy with signet's
#                threading and per-thread upstream pool, and nothing else (no
#                routing, signing, header policy, retries, log or metrics).
#                The floor of signet's HTTP stack: signet's cost above it is
#                signet's own work per request.
#        sink    bench/sink.py: reads upload bodies to the end and answers their
#                byte count and SHA-256 (signet routes /upload there).
#      Both nginx instances run `worker_processes auto` (one per core), and
#      signet runs one proxy worker thread per core (`workers = 0`).
#   3. Memory: through signet, a 512 MiB PUT with Content-Length, a 512 MiB PUT
#      with Transfer-Encoding: chunked and a 512 MiB GET; byte counts and SHA-256
#      are checked end to end. signet's VmRSS is sampled every 50 ms and its
#      VmHWM (peak RSS since start) read afterwards. Done first, on a fresh
#      process, so VmHWM covers start-up plus the transfers only.
#   4. Load: wrk at 32 connections, a small GET and a 1 KiB POST, against
#      origin, hop, signet and signet-quiet, interleaved: each round runs every
#      workload against every target in turn, ROUNDS rounds of DURATION seconds
#      after a WARMUP per workload and target. The median of the rounds is
#      reported: requests/s, p50/p99 latency, and the target's own CPU time
#      (user+system, from /proc/<pid>/stat) per request.
#      Then a paced phase: hop and signet again, each connection waiting
#      PACE_MS after every response, so both carry about the same offered load below
#      saturation (connections / (pace + latency)); their latencies are
#      compared at about equal load.
#   5. Prints a summary (goals: signet >= 0.8x the hop's requests/s with p99 no
#      worse than the hop's; peak RSS <= 64 MiB) and writes it, with the raw
#      per-round figures, to bench/out/.
#
# Knobs (environment): ROUNDS (3), DURATION (10, seconds), WARMUP (3, seconds),
# CONNECTIONS (32), THREADS (2, wrk threads), BIG_MIB (512), STRICT (1: exit 3
# when a goal is missed), PACE_MS (2), PACED_ROUNDS (3), BENCH_SIGNET_BIN (use
# this binary instead of building; not SIGNET_*, which signet reads as its own
# configuration; hyper-floor is then skipped unless BENCH_FLOOR_BIN names its
# binary). With the defaults the measuring takes about 7 minutes, plus
# however long cargo needs. Every process started here is stopped on exit.
# The load generator, nginx and signet share the machine's cores.

set -Eeuo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
BIG_MIB=${BIG_MIB:-512}
STRICT=${STRICT:-0}
PACE_MS=${PACE_MS:-2}
PACED_ROUNDS=${PACED_ROUNDS:-3}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
out_dir=$here/out
stamp=$(date -u +%Y%m%dT%H%M%SZ)
work=$(mktemp -d /tmp/signet-bench.XXXXXX)
chmod 755 "$work" # nginx workers may run as another user
pids=()
step="starting"

log() { printf '[load.sh %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() {
    log "error while $step: $*"
    exit 1
}

cleanup() {
    local rc=$? pid
    set +e
    trap - EXIT INT TERM ERR
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if ((rc != 0)); then
        for f in "$work"/origin/error.log "$work"/hop/error.log "$work"/signet.log "$work"/signet-quiet.log "$work"/sink.log; do
            [[ -s $f ]] && { log "last lines of $f:"; tail -n 5 "$f" >&2; }
        done
    fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'die "command failed (line $LINENO): $BASH_COMMAND"' ERR

# --- 1. tools and build ----------------------------------------------------
step="installing tools"
missing=()
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
command -v wrk >/dev/null || missing+=(wrk)
command -v curl >/dev/null || missing+=(curl)
command -v python3 >/dev/null || missing+=(python3)
if ((${#missing[@]})); then
    [[ $(id -u) == 0 ]] || die "missing ${missing[*]}: run as root, or install them with apt-get"
    log "installing ${missing[*]} from Debian packages"
    apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
        die "apt-get install ${missing[*]} failed"
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

if [[ -n ${BENCH_SIGNET_BIN:-} ]]; then
    SIGNET=$BENCH_SIGNET_BIN
else
    step="building signet (cargo build --release)"
    log "$step"
    (cd "$repo" && cargo build --release --quiet --bin signet --example hyper_floor) ||
        die "cargo build --release failed"
    SIGNET=$repo/target/release/signet
    BENCH_FLOOR_BIN=${BENCH_FLOOR_BIN:-$repo/target/release/examples/hyper_floor}
fi
[[ -x $SIGNET ]] || die "$SIGNET not found after the build"
FLOOR=${BENCH_FLOOR_BIN:-}
[[ -z $FLOOR || -x $FLOOR ]] || die "BENCH_FLOOR_BIN=$FLOOR is not an executable"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until URL answers with HTTP 200 (up to 20 s) while PID is alive.
wait_ready() {
    local url=$1 pid=$2 name=$3
    for _ in $(seq 200); do
        kill -0 "$pid" 2>/dev/null || die "$name exited during start-up"
        [[ $(curl -s -o /dev/null -w '%{http_code}' "$url" || true) == 200 ]] && return 0
        sleep 0.1
    done
    die "$name not ready at $url after 20 s"
}

# --- 2. processes ----------------------------------------------------------
step="preparing files"
mkdir -p "$work/www" "$out_dir"
head -c 100 /dev/zero | tr '\0' 's' >"$work/www/small"
log "writing a $BIG_MIB MiB random file"
head -c $((BIG_MIB << 20)) /dev/urandom >"$work/www/big"
chmod 644 "$work/www/small" "$work/www/big"
read -r big_bytes big_sha < <(python3 "$here/sink.py" digest <"$work/www/big")
post_body=$work/post.bin
head -c 1024 /dev/urandom >"$post_body"
post_sha=$(python3 "$here/sink.py" digest <"$post_body" | cut -d' ' -f2)

origin_port=$(free_port)
hop_port=$(free_port)
signet_port=$(free_port)
signet_admin=$(free_port)
quiet_port=$(free_port)
quiet_admin=$(free_port)
floor_port=$(free_port)

user_line=""
[[ $(id -u) == 0 ]] && user_line="user root root;"

# Common head of both nginx configs: $1 = instance directory.
nginx_head() {
    cat <<EOF
$user_line
worker_processes auto;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
EOF
}
nginx_temp_paths() {
    cat <<EOF
    client_body_temp_path $1/client_body;
    proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi;
    uwsgi_temp_path $1/uwsgi;
    scgi_temp_path $1/scgi;
EOF
}

step="starting the nginx origin"
mkdir -p "$work/origin"
{
    nginx_head "$work/origin"
    cat <<EOF
http {
$(nginx_temp_paths "$work/origin")
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    default_type application/octet-stream;
    map \$http_authorization \$sigv4 { "~^AWS4-HMAC-SHA256 " yes; default no; }
    server {
        listen 127.0.0.1:$origin_port;
        root $work/www;
        location = /small { }
        location = /big { }
        # return discards the request body: nginx reads it all off the socket.
        location = /post { client_body_buffer_size 16k; return 200 "ok\n"; }
        location = /check { return 200 "sigv4=\$sigv4 content_sha256=\$http_x_amz_content_sha256\n"; }
    }
}
EOF
} >"$work/origin/nginx.conf"
"$NGINX" -t -q -p "$work/origin" -c "$work/origin/nginx.conf" 2>"$work/origin/test.log" ||
    die "nginx rejected the origin config: $(cat "$work/origin/test.log")"
"$NGINX" -p "$work/origin" -c "$work/origin/nginx.conf" 2>>"$work/origin/error.log" &
pids+=($!)
origin_master=$!
wait_ready "http://127.0.0.1:$origin_port/small" "$!" "nginx origin"

step="starting the nginx hop"
mkdir -p "$work/hop"
{
    nginx_head "$work/hop"
    cat <<EOF
http {
$(nginx_temp_paths "$work/hop")
    access_log $work/hop/access.log combined;
    keepalive_requests 1000000;
    upstream origin {
        server 127.0.0.1:$origin_port;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$hop_port;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
} >"$work/hop/nginx.conf"
"$NGINX" -t -q -p "$work/hop" -c "$work/hop/nginx.conf" 2>"$work/hop/test.log" ||
    die "nginx rejected the hop config: $(cat "$work/hop/test.log")"
"$NGINX" -p "$work/hop" -c "$work/hop/nginx.conf" 2>>"$work/hop/error.log" &
pids+=($!)
hop_master=$!
wait_ready "http://127.0.0.1:$hop_port/small" "$!" "nginx hop"

step="starting the upload sink"
python3 "$here/sink.py" serve "$work/sink.port" >"$work/sink.log" 2>&1 &
pids+=($!)
sink_pid=$!
for _ in $(seq 100); do
    [[ -s $work/sink.port ]] && break
    kill -0 "$sink_pid" 2>/dev/null || die "sink.py exited during start-up"
    sleep 0.1
done
sink_port=$(cat "$work/sink.port") || die "sink.py did not report its port"

step="starting signet"
cat >"$work/signet.toml" <<EOF
listen = "127.0.0.1:$signet_port"

[admin]
listen = "127.0.0.1:$signet_admin"

[log]
level = "info"
format = "json"

[credentials.default]
kind = "environment"

[[routes]]
name = "upload-sink"
path_prefix = "/upload"
upstream = "http://127.0.0.1:$sink_port"
service = "s3"
region = "us-east-1"

[[routes]]
name = "origin"
upstream = "http://127.0.0.1:$origin_port"
service = "s3"
region = "us-east-1"
EOF
# Throw-away keys: the origin ignores the signature.
export AWS_ACCESS_KEY_ID=AKIDSIGNETLOADBENCH0
export AWS_SECRET_ACCESS_KEY=signet-load-bench-not-a-real-secret-key0
unset AWS_SESSION_TOKEN AWS_PROFILE
export AWS_EC2_METADATA_DISABLED=true
"$SIGNET" --config "$work/signet.toml" >"$work/signet.log" 2>&1 &
pids+=($!)
signet_pid=$!
wait_ready "http://127.0.0.1:$signet_admin/readyz" "$signet_pid" "signet"
"$SIGNET" --config "$work/signet.toml" --listen "127.0.0.1:$quiet_port" \
    --admin-listen "127.0.0.1:$quiet_admin" --log-level warn >"$work/signet-quiet.log" 2>&1 &
pids+=($!)
quiet_pid=$!
wait_ready "http://127.0.0.1:$quiet_admin/readyz" "$quiet_pid" "signet (quiet)"

declare -A target_url=(
    [origin]="http://127.0.0.1:$origin_port"
    [hop]="http://127.0.0.1:$hop_port"
    [signet]="http://127.0.0.1:$signet_port"
    [signet-quiet]="http://127.0.0.1:$quiet_port"
)
targets=(origin hop signet signet-quiet)
if [[ -n $FLOOR ]]; then
    step="starting the hyper floor"
    "$FLOOR" "127.0.0.1:$floor_port" "127.0.0.1:$origin_port" >"$work/hyper-floor.log" 2>&1 &
    pids+=($!)
    floor_pid=$!
    target_url[hyper-floor]="http://127.0.0.1:$floor_port"
    wait_ready "${target_url[hyper-floor]}/small" "$floor_pid" "hyper floor"
    targets=(origin hop hyper-floor signet signet-quiet)
fi

step="checking every path answers as expected"
for t in "${targets[@]}"; do
    base=${target_url[$t]}
    got=$(curl -sS --fail "$base/small" | wc -c) || die "GET $base/small failed"
    [[ $got == 100 ]] || die "GET /small via $t returned $got bytes, expected 100"
    got=$(curl -sS --fail --data-binary "@$post_body" -H 'Content-Type: application/octet-stream' "$base/post") ||
        die "POST $base/post failed"
    [[ $got == ok ]] || die "POST /post via $t answered '$got', expected 'ok'"
    got=$(curl -sS --fail --data-binary "@$post_body" -H 'Content-Type: application/octet-stream' "$base/check") ||
        die "POST $base/check failed"
    case $t in
    signet*) want="sigv4=yes content_sha256=$post_sha" ;;
    *) want="sigv4=no content_sha256=" ;;
    esac
    [[ $got == "$want" ]] || die "POST /check via $t answered '$got', expected '$want'"
done
log "${targets[*]} answer; signet signs the POST with its body's SHA-256"

# --- 3. memory -------------------------------------------------------------
status_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

# Samples VmRSS (KiB) of PID every 50 ms into FILE until stopped.
sample_rss() {
    local pid=$1 file=$2 key value _
    while :; do
        while read -r key value _; do
            [[ $key == VmRSS: ]] && { echo "$value" >>"$file"; break; }
        done <"/proc/$pid/status" || return 0
        sleep 0.05
    done
}

# Runs one transfer in this shell; sets TIMED to "<seconds> <MiB/s>".
timed() {
    local start end
    start=$(date +%s.%N)
    "$@"
    end=$(date +%s.%N)
    TIMED=$(python3 -c 'import sys; s = float(sys.argv[2]) - float(sys.argv[1]); print("%.2f %.0f" % (s, float(sys.argv[3]) / s))' "$start" "$end" "$BIG_MIB")
}

step="measuring memory (large transfers through signet)"
rss_start=$(status_kib "$signet_pid" VmRSS)
sample_rss "$signet_pid" "$work/rss.samples" &
sampler=$!
pids+=("$sampler")

upload() { # $1 = name, rest = extra curl args
    local name=$1
    shift
    curl -sS --fail --max-time 120 -T "$work/www/big" "$@" -o "$work/$name.resp" \
        "${target_url[signet]}/upload/$name" || die "upload $name through signet failed"
}
log "PUT $BIG_MIB MiB (Content-Length) through signet"
timed upload put-length
read -r up_len_s up_len_mibs <<<"$TIMED"
read -r got_bytes got_sha got_mode <"$work/put-length.resp"
[[ $got_bytes == "$big_bytes" && $got_sha == "$big_sha" ]] ||
    die "PUT with Content-Length: sink got $got_bytes bytes sha256 $got_sha, sent $big_bytes bytes sha256 $big_sha"
[[ $got_mode == UNSIGNED-PAYLOAD ]] || die "PUT with Content-Length was signed with payload '$got_mode', expected UNSIGNED-PAYLOAD"

log "PUT $BIG_MIB MiB (chunked) through signet"
timed upload put-chunked -H 'Transfer-Encoding: chunked'
read -r up_chunked_s up_chunked_mibs <<<"$TIMED"
read -r got_bytes got_sha got_mode <"$work/put-chunked.resp"
[[ $got_bytes == "$big_bytes" && $got_sha == "$big_sha" ]] ||
    die "chunked PUT: sink got $got_bytes bytes sha256 $got_sha, sent $big_bytes bytes sha256 $big_sha"
[[ $got_mode == UNSIGNED-PAYLOAD ]] || die "chunked PUT was signed with payload '$got_mode', expected UNSIGNED-PAYLOAD"

download() {
    curl -sS --fail --max-time 120 "${target_url[signet]}/big" | python3 "$here/sink.py" digest >"$work/get.digest" ||
        die "GET /big through signet failed"
}
log "GET $BIG_MIB MiB through signet"
timed download
read -r down_s down_mibs <<<"$TIMED"
read -r got_bytes got_sha <"$work/get.digest"
[[ $got_bytes == "$big_bytes" && $got_sha == "$big_sha" ]] ||
    die "GET /big: received $got_bytes bytes sha256 $got_sha, origin has $big_bytes bytes sha256 $big_sha"

sleep 0.2
kill "$sampler" 2>/dev/null || true
wait "$sampler" 2>/dev/null || true
rss_peak_sampled=$(sort -n "$work/rss.samples" | tail -n 1)
rss_samples=$(wc -l <"$work/rss.samples")
hwm_after_transfers=$(status_kib "$signet_pid" VmHWM)
log "memory: VmHWM $((hwm_after_transfers / 1024)) MiB, sampled peak VmRSS $((rss_peak_sampled / 1024)) MiB"

# --- 4. load ---------------------------------------------------------------
step="measuring load"
raw=$work/rounds.tsv
printf 'round\tworkload\ttarget\trequests\tseconds\treq_per_s\tp50_ms\tp99_ms\tsocket_errors\tnon_2xx\tuser_us_per_req\tsys_us_per_req\n' >"$raw"
workloads=(get-100B post-1KiB)
declare -A workload_path=([get-100B]=/small [post-1KiB]=/post)
declare -A workload_body=([get-100B]=0 [post-1KiB]=1024)

# The processes that do the target's work (the origin's for "origin"; the
# proxy's own for the others): CPU time per request is less sensitive to other
# load on the machine than requests/s.
declare -A target_pids=(
    [origin]="$(pgrep -P "$origin_master" | tr '\n' ' ')"
    [hop]="$(pgrep -P "$hop_master" | tr '\n' ' ')"
    [signet]=$signet_pid
    [signet-quiet]=$quiet_pid
    [hyper-floor]=${floor_pid:-}
)
clk_tck=$(getconf CLK_TCK)
# cpu_ticks PID... -> "<user ticks> <system ticks>" summed over the processes
# (all threads of each).
cpu_ticks() {
    local p
    for p in "$@"; do cat "/proc/$p/stat"; done | awk '{ u += $14; s += $15 } END { print u, s }'
}

# run_wrk TARGET WORKLOAD SECONDS -> prints wrk's RESULT fields, then the
# target's user and system CPU microseconds per request
run_wrk() {
    local out result u0 s0 u1 s1
    # shellcheck disable=SC2086 # a list of pids
    read -r u0 s0 < <(cpu_ticks ${target_pids[$1]})
    out=$(BENCH_BODY_BYTES=${workload_body[$2]} BENCH_PACE_MS=${pace_ms:-0} timeout $(($3 + 30)) \
        wrk -t"$THREADS" -c"$CONNECTIONS" -d"${3}s" --timeout 5s -s "$here/wrk.lua" \
        "${target_url[$1]}${workload_path[$2]}" 2>&1) || die "wrk against $1 ($2) failed: $out"
    # shellcheck disable=SC2086
    read -r u1 s1 < <(cpu_ticks ${target_pids[$1]})
    result=$(grep '^RESULT ' <<<"$out" | cut -d' ' -f2-) || die "wrk against $1 ($2) printed no result: $out"
    python3 -c 'import sys; r, du, ds, hz = sys.argv[1].split(), *map(int, sys.argv[2:]); n = int(r[0]); print(" ".join(r), "%.1f %.1f" % (du * 1e6 / hz / n, ds * 1e6 / hz / n))' \
        "$result" $((u1 - u0)) $((s1 - s0)) "$clk_tck"
}

loadavg_before=$(cut -d' ' -f1-3 /proc/loadavg)
log "warm-up: ${WARMUP}s per workload and target"
for w in "${workloads[@]}"; do
    for t in "${targets[@]}"; do run_wrk "$t" "$w" "$WARMUP" >/dev/null; done
done
for r in $(seq "$ROUNDS"); do
    for w in "${workloads[@]}"; do
        for t in "${targets[@]}"; do
            res=$(run_wrk "$t" "$w" "$DURATION")
            printf '%s\t%s\t%s\t%s\n' "$r" "$w" "$t" "${res// /$'\t'}" >>"$raw"
            log "round $r $w $t: $res"
        done
    done
done
# Paced: the same connections, each waiting PACE_MS after every response, so
# the hop and signet carry the same offered load below saturation; compares
# their latency at equal load rather than at each one's own maximum.
paced=$work/paced.tsv
head -n 1 "$raw" >"$paced"
for r in $(seq "$PACED_ROUNDS"); do
    for w in "${workloads[@]}"; do
        for t in hop signet; do
            res=$(pace_ms=$PACE_MS run_wrk "$t" "$w" "$DURATION")
            printf '%s\t%s\t%s\t%s\n' "$r" "$w" "$t" "${res// /$'\t'}" >>"$paced"
            log "paced round $r $w $t: $res"
        done
    done
done
loadavg_after=$(cut -d' ' -f1-3 /proc/loadavg)
hwm_after_load=$(status_kib "$signet_pid" VmHWM)
access_lines=$(wc -l <"$work/signet.log")
signet_log_bytes=$(wc -c <"$work/signet.log")

# --- 5. summary ------------------------------------------------------------
step="writing the summary"
summary=$out_dir/load-$stamp.txt
cp "$raw" "$out_dir/load-$stamp.tsv"
cp "$paced" "$out_dir/load-$stamp.paced.tsv"
{
    echo "signet load benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "machine: $(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(uname -sr)"
    echo "tools: $("$NGINX" -v 2>&1 | sed 's/^nginx version: //'), $( (wrk -v 2>&1 || true) | head -n 1 | cut -d' ' -f1-2), $(curl --version | head -n 1 | cut -d' ' -f1-2), $("$SIGNET" --version 2>/dev/null || echo signet), $(rustc --version 2>/dev/null || echo rustc ?)"
    echo "load: wrk -t$THREADS -c$CONNECTIONS, $ROUNDS interleaved rounds x ${DURATION}s after ${WARMUP}s warm-up; median of rounds"
    echo "load average (1/5/15 min) before: $loadavg_before, after: $loadavg_after"
    echo
    python3 - "$raw" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
med = {}
for w in dict.fromkeys(r["workload"] for r in rows):
    print(f"{w:<10} {'target':<13} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'CPU us/req':>11} {'(user+sys)':>12}  rounds req/s")
    for t in dict.fromkeys(r["target"] for r in rows):
        sel = [r for r in rows if r["workload"] == w and r["target"] == t]
        m = {k: statistics.median(float(r[k]) for r in sel) for k in ("req_per_s", "p50_ms", "p99_ms", "user_us_per_req", "sys_us_per_req")}
        m["cpu"] = statistics.median(float(r["user_us_per_req"]) + float(r["sys_us_per_req"]) for r in sel)
        errs = sum(int(r["socket_errors"]) + int(r["non_2xx"]) for r in sel)
        med[w, t] = m
        per = " ".join(f"{float(r['req_per_s']):.0f}" for r in sel)
        split = f"{m['user_us_per_req']:.1f}+{m['sys_us_per_req']:.1f}"
        print(f"{'':<10} {t:<13} {m['req_per_s']:>9.0f} {m['p50_ms']:>8.2f} {m['p99_ms']:>8.2f} {errs:>7} {m['cpu']:>11.1f} {split:>12}  {per}")
    print()
print("goal: signet >= 0.8x hop req/s, signet p99 <= hop p99")
missed = 0
for w in dict.fromkeys(r["workload"] for r in rows):
    for t in (t for t in ("hyper-floor", "signet", "signet-quiet") if (w, t) in med):
        s, h = med[w, t], med[w, "hop"]
        ratio = s["req_per_s"] / h["req_per_s"]
        ok_tp, ok_p99 = ratio >= 0.8, s["p99_ms"] <= h["p99_ms"]
        if t == "signet":
            missed += (not ok_tp) + (not ok_p99)
        print(f"  {w:<10} {t:<13} throughput {ratio:.2f}x hop ({'met' if ok_tp else 'MISSED'}), "
              f"p99 {s['p99_ms']:.2f} vs hop {h['p99_ms']:.2f} ms ({'met' if ok_p99 else 'MISSED'}), "
              f"CPU per request {s['cpu'] / h['cpu']:.2f}x hop's")
print("CPU us/req: CPU time of the target's own processes (origin: the origin's nginx workers;")
print("hop: the hop's workers; signet, hyper-floor: all its threads) divided by requests served.")
open(sys.argv[1] + ".missed", "w").write(str(missed))
PY
    echo
    echo "paced: each connection waits ${PACE_MS} ms after every response (about the same offered load for both), $PACED_ROUNDS rounds x ${DURATION}s; median of rounds"
    python3 - "$paced" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
for w in dict.fromkeys(r["workload"] for r in rows):
    med = {}
    for t in ("hop", "signet"):
        sel = [r for r in rows if r["workload"] == w and r["target"] == t]
        med[t] = {k: statistics.median(float(r[k]) for r in sel) for k in ("req_per_s", "p50_ms", "p99_ms")}
        med[t]["cpu"] = statistics.median(float(r["user_us_per_req"]) + float(r["sys_us_per_req"]) for r in sel)
        errs = sum(int(r["socket_errors"]) + int(r["non_2xx"]) for r in sel)
        m = med[t]
        print(f"  {w:<10} {t:<7} {m['req_per_s']:>7.0f} req/s  p50 {m['p50_ms']:.2f} ms  p99 {m['p99_ms']:.2f} ms  "
              f"CPU {m['cpu']:.1f} us/req  errors {errs}")
    s, h = med["signet"], med["hop"]
    print(f"  {w:<10} at equal load: signet p99 {s['p99_ms']:.2f} vs hop {h['p99_ms']:.2f} ms "
          f"({'no worse' if s['p99_ms'] <= h['p99_ms'] else 'worse'})")
PY
    echo
    echo "memory (signet, $BIG_MIB MiB each way, byte counts and SHA-256 verified end to end):"
    echo "  PUT Content-Length   ${up_len_s}s (${up_len_mibs} MiB/s), signed UNSIGNED-PAYLOAD"
    echo "  PUT chunked          ${up_chunked_s}s (${up_chunked_mibs} MiB/s), signed UNSIGNED-PAYLOAD"
    echo "  GET                  ${down_s}s (${down_mibs} MiB/s)"
    echo "  VmRSS at start $((rss_start / 1024)) MiB; peak of $rss_samples samples (50 ms) $((rss_peak_sampled / 1024)) MiB;" \
        "VmHWM after transfers $((hwm_after_transfers / 1024)) MiB, after the load phase too $((hwm_after_load / 1024)) MiB"
    if ((hwm_after_transfers <= 64 * 1024)); then
        echo "  goal peak RSS <= 64 MiB during the transfers: met"
    else
        echo "  goal peak RSS <= 64 MiB during the transfers: MISSED"
    fi
    echo
    echo "signet's JSON log (stdout+stderr to a file): $access_lines lines, $((signet_log_bytes / 1024 / 1024)) MiB; signet-quiet: --log-level warn"
} >"$summary"
cat "$summary"
missed=$(cat "$raw.missed")
((hwm_after_transfers <= 64 * 1024)) || missed=$((missed + 1))
log "summary written to $summary (raw rounds: $out_dir/load-$stamp.tsv)"
if ((STRICT == 1 && missed > 0)); then
    log "$missed goal(s) missed"
    exit 3
fi
