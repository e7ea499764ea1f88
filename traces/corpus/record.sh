#!/usr/bin/env bash
# Records one workload's idle trace for the corpus (docs/corpus.md says how each was made).
#
#   traces/corpus/record.sh [-d SECONDS] [-w WARMUP] NAME -- LOAD-COMMAND...
#
# Starts LOAD-COMMAND in its own process group, lets it warm up for WARMUP seconds (default 2),
# records `perf record -e power:cpu_idle -a` for SECONDS (default 10), then stops the load and
# writes `perf script --header` gzip'd to NAME.perf.txt.gz next to this script (or in $OUT_DIR).
# The load must outlast the recording: if it has ended before the recording does, the trace is
# not written. Start the server (pinned, e.g. `taskset -c 0`) yourself, and pin the load command
# (e.g. `taskset -c 1`). Needs root (or perf_event_paranoid -1) for the tracepoint. Nothing but
# what `perf record` enables for the recording is changed.
set -euo pipefail

seconds=10
warmup=2
while getopts d:w: opt; do
    case $opt in
        d) seconds=$OPTARG ;;
        w) warmup=$OPTARG ;;
        *) echo "usage: $0 [-d SECONDS] [-w WARMUP] NAME -- LOAD-COMMAND..." >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
if [[ $# -lt 3 || $2 != -- ]]; then
    echo "usage: $0 [-d SECONDS] [-w WARMUP] NAME -- LOAD-COMMAND..." >&2
    exit 2
fi
name=$1
shift 2
out_dir=${OUT_DIR:-$(cd "$(dirname "$0")" && pwd)}
out=$out_dir/$name.perf.txt.gz

tmp=$(mktemp -d)
load_pid=
cleanup() {
    if [[ -n $load_pid ]] && kill -0 "$load_pid" 2>/dev/null; then
        kill -TERM -- "-$load_pid" 2>/dev/null || true
        sleep 0.5
        kill -KILL -- "-$load_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

echo "== machine before the recording ($(date -u '+%Y-%m-%d %H:%M:%S UTC'))" >&2
uptime >&2
top -bn1 | head -15 >&2

# Its own process group (setsid), so stopping it stops every process it started.
setsid "$@" >"$tmp/load.out" 2>&1 </dev/null &
load_pid=$!
sleep "$warmup"
kill -0 "$load_pid" 2>/dev/null || { echo "$name: the load ended during warm-up:" >&2; cat "$tmp/load.out" >&2; exit 1; }

perf record -q -o "$tmp/perf.data" -e power:cpu_idle -a -- sleep "$seconds" 2>"$tmp/perf.err" \
    || { cat "$tmp/perf.err" >&2; exit 1; }
if ! kill -0 "$load_pid" 2>/dev/null; then
    echo "$name: the load ended before the recording did; nothing written. Its output:" >&2
    cat "$tmp/load.out" >&2
    exit 1
fi
kill -TERM -- "-$load_pid" 2>/dev/null || true
wait "$load_pid" 2>/dev/null || true
load_pid=

perf script -i "$tmp/perf.data" --header 2>/dev/null | gzip -9 >"$out"
echo "== $out: $(stat -c %s "$out") bytes; exits from idle per CPU:" >&2
zcat "$out" | awk '/power:cpu_idle: state=4294967295/ { match($0, /\[[0-9]+\]/); n[substr($0, RSTART, RLENGTH)]++ }
    END { for (c in n) print "  cpu " c, n[c] }' | sort >&2
echo "== load output (tail):" >&2
tail -20 "$tmp/load.out" >&2
