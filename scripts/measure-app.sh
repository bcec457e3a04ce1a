#!/usr/bin/env bash
# Measures the desktop app's memory and start-up (docs/benchmarks.md, "Desktop
# app memory and start-up"): the release build on its embedded server, under
# Xvfb in a private D-Bus session, with a throw-away data root and HOME.
#
#   scripts/measure-app.sh [BINARY] [RUNS]
#   scripts/measure-app.sh --floor [RUNS]
#
# BINARY defaults to the release build ($CARGO_TARGET_DIR/release/courier),
# RUNS to 5. One first run creates the profile (account, server database);
# then each of RUNS runs starts the app, takes the time from launch to the
# first conversation list (the `first conversation list requested` log line,
# logged when the UI asks for the list it renders), waits IDLE seconds
# (default 30) and sums `Pss:` / `Rss:` (and USS: Private_Clean +
# Private_Dirty) of /proc/PID/smaps_rollup for the courier process and all
# its descendants (the WebKit web and network processes). PSS shares a
# library's pages among every process mapping it, so it drops while another
# WebKit app runs on the machine; RSS and USS do not. Prints one line per run
# and the medians, and the size of the binary's code (.text). With SMAPS=N,
# the last run also lists each process's N largest mappings by PSS and its PSS
# by kind of mapping (where the memory is). Builds nothing, except with
# --floor: then it compiles bench/webkit-floor/floor.c (a bare WebKitGTK
# window showing one line of static text: the engine's own floor, what every
# WebKitGTK app costs at least) and measures that instead, the same way.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--floor" ]; then
  FLOOR_BIN="${TMPDIR:-/tmp}/courier-webkit-floor"
  # shellcheck disable=SC2046 # pkg-config prints several flags
  cc -O2 -o "$FLOOR_BIN" bench/webkit-floor/floor.c $(pkg-config --cflags --libs webkit2gtk-4.1 gtk+-3.0) ||
    { echo "cannot build the WebKitGTK floor (needs cc and libwebkit2gtk-4.1-dev: scripts/setup.sh)" >&2; exit 1; }
  set -- "$FLOOR_BIN" "${2:-5}"
fi
BIN="${1:-${CARGO_TARGET_DIR:-/root/.cache/courier-target}/release/courier}"
RUNS="${2:-5}"
IDLE="${IDLE:-30}"
[ -x "$BIN" ] || { echo "no app binary at $BIN (build: npx tauri build --no-bundle)" >&2; exit 1; }

if [ -z "${MEASURE_INNER:-}" ]; then
  export MEASURE_INNER=1
  exec xvfb-run -a -s "-screen 0 1280x800x24" dbus-run-session -- "$0" "$BIN" "$RUNS"
fi

WORK="$(mktemp -d /tmp/courier-measure.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM
export HOME="$WORK/home" XDG_CACHE_HOME="$WORK/cache" XDG_DATA_HOME="$WORK/data" XDG_CONFIG_HOME="$WORK/config"
export COURIER_DATA_ROOT="$WORK/root" COURIER_EMBEDDED=1 COURIER_NO_SCHEME_REGISTER=1
export RUST_LOG="${RUST_LOG:-info,courier_server=warn}"
mkdir -p "$HOME" "$XDG_CACHE_HOME" "$XDG_DATA_HOME" "$XDG_CONFIG_HOME"

# The pid and all its descendants.
tree() {
  local p="$1"
  echo "$p"
  for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do tree "$c"; done
}
# Sum of a smaps_rollup field (kB) over the given pids.
sum_field() {
  local field="$1"; shift
  local total=0 v
  for p in "$@"; do
    v=$(awk -v f="$field:" '$1 == f { print $2 }' /proc/"$p"/smaps_rollup 2>/dev/null || true)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}
# A process's largest mappings by PSS (MiB), anonymous ones summed.
top_mappings() {
  echo "-- $1 $(cat /proc/"$1"/comm 2>/dev/null): largest mappings, PSS MiB"
  awk '/^[0-9a-f]+-[0-9a-f]+ / { name = ($6 == "" ? "[anonymous]" : $6) } /^Pss:/ { pss[name] += $2 }
       END { for (n in pss) printf "%8.1f %s\n", pss[n] / 1024, n }' /proc/"$1"/smaps 2>/dev/null | sort -rn | head -"$SMAPS"
}
# A process's PSS by kind of mapping (MiB): the binary's and the libraries'
# file pages (code, read-only data: shared with every process mapping them)
# apart from the pages they wrote (relocations, data: private), [heap], glibc
# malloc arenas (an anonymous rw-p part followed by its ---p reserve), thread
# stacks (after a 4 KiB ---p guard), other anonymous memory, shared memory,
# data files.
mapping_classes() {
  echo "-- $1 $(cat /proc/"$1"/comm 2>/dev/null): PSS by kind of mapping, MiB"
  awk -v bin="$(readlink -f "$BIN")" '
function flush() {
  if (name == "") return
  if (path == bin && bin != "") { pss["binary: written (relocations, data)"] += curdirty; curpss -= curdirty; cls = "binary: file pages (code, read-only data)" }
  else if (path ~ /\.so/) { pss["libraries: written (relocations, data)"] += curdirty; curpss -= curdirty; cls = "libraries: file pages (code, read-only data)" }
  else if (path == "[heap]") cls = "[heap]"
  else if (path == "[stack]") cls = "thread stacks"
  else if (path ~ /^\/SYSV|^\/memfd|^\/dev\/shm/) cls = "shared memory"
  else if (path ~ /^\//) cls = "data files (fonts, caches)"
  else if (path == "" && prevperms == "---p" && prevsize == 4 && prevanon) cls = "thread stacks"
  else if (path == "" && pendingarena) cls = "malloc arenas"
  else if (path == "") cls = "other anonymous"
  else cls = "other " path
  pss[cls] += curpss
}
/^[0-9a-f]+-[0-9a-f]+ / {
  # An arena is known by the mapping after it (its ---p reserve).
  if (name != "" && path == "" && perms == "rw-p" && $2 == "---p" && $6 == "") pendingarena = 1; else pendingarena = 0
  flush()
  prevperms = perms; prevsize = cursize; prevanon = (path == "")
  name = $1; perms = $2; path = $6; curpss = 0; cursize = 0; curdirty = 0; next
}
/^Size:/ { cursize = $2 }
/^Pss:/ { curpss = $2 }
/^Private_Dirty:/ { curdirty = $2 }
END { pendingarena = 0; flush(); for (c in pss) if (pss[c] >= 51) printf "%8.1f %s\n", pss[c] / 1024, c }
' /proc/"$1"/smaps 2>/dev/null | sort -rn
}
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# One run: starts the app, prints "start_ms tree_pss_kb tree_rss_kb courier_pss_kb courier_rss_kb nprocs tree_uss_kb".
run_once() {
  local log="$WORK/run.log" t0 pid line ts t1 pids
  : >"$log"
  t0=$(date +%s%N)
  "$BIN" 2>"$log" >/dev/null &
  pid=$!
  for _ in $(seq 1 600); do
    line=$(grep -m1 'first conversation list requested' "$log" || true)
    [ -n "$line" ] && break
    sleep 0.05
  done
  [ -n "$line" ] || { echo "the app did not show its conversation list; log:" >&2; cat "$log" >&2; kill "$pid"; exit 1; }
  # The log line's own timestamp (RFC 3339, UTC), not when we noticed it.
  ts=$(echo "$line" | sed 's/\x1b\[[0-9;]*m//g' | awk '{ print $1 }')
  t1=$(date -d "$ts" +%s%N)
  sleep "$IDLE"
  pids=$(tree "$pid")
  # shellcheck disable=SC2086
  if [ "${SMAPS:-0}" -gt 0 ] && [ -n "${LAST:-}" ]; then
    for p in $pids; do top_mappings "$p" >&2; mapping_classes "$p" >&2; done
  fi
  echo "$(((t1 - t0) / 1000000)) $(sum_field Pss $pids) $(sum_field Rss $pids) $(sum_field Pss "$pid") $(sum_field Rss "$pid") $(echo $pids | wc -w) $(($(sum_field Private_Clean $pids) + $(sum_field Private_Dirty $pids)))"
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
}

text=$(size -A "$BIN" | awk '$1 == ".text" { print $2 }')
echo "binary: $BIN ($(stat -c %y "$BIN" | cut -d. -f1); .text $(mib "$((text / 1024))") MiB); idle ${IDLE}s; runs: $RUNS"
IDLE=2 run_once >/dev/null # creates the profile, the account and the server database
printf '%-4s %9s %14s %14s %16s %16s %6s %14s\n' run start_ms tree_pss_MiB tree_rss_MiB courier_pss_MiB courier_rss_MiB procs tree_uss_MiB
: >"$WORK/results"
for i in $(seq 1 "$RUNS"); do
  LAST=$([ "$i" = "$RUNS" ] && echo 1 || true) r=$(run_once)
  echo "$r" >>"$WORK/results"
  read -r ms tp tr cp cr n tu <<<"$r"
  printf '%-4s %9s %14s %14s %16s %16s %6s %14s\n' "$i" "$ms" "$(mib "$tp")" "$(mib "$tr")" "$(mib "$cp")" "$(mib "$cr")" "$n" "$(mib "$tu")"
done
col() { awk -v c="$1" '{ print $c }' "$WORK/results" | median; }
printf '%-4s %9s %14s %14s %16s %16s %6s %14s\n' median "$(col 1)" "$(mib "$(col 2)")" "$(mib "$(col 3)")" "$(mib "$(col 4)")" "$(mib "$(col 5)")" "" "$(mib "$(col 7)")"
