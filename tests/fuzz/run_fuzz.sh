#!/bin/sh
# Run libFuzzer targets for FUZZ_SECONDS each, FUZZ_JOBS at a time.
#   run_fuzz.sh SRCDIR BUILD_FUZZ_DIR TARGET...
# One line per target: "fuzz-summary: <target> runs=<n> crashes=<c>".
# Exit status 1 when any target crashed (its log tail is printed).
set -u
src=$1
dir=$2
shift 2
seconds=${FUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-2}
mkdir -p "$dir/artifacts"

max_len() {
	case $1 in
	fuzz_json|fuzz_oauth_error) echo 4096 ;;
	fuzz_jwks|fuzz_oidc|fuzz_rbac|fuzz_msi) echo 16384 ;;
	fuzz_userdb) echo 65536 ;;
	*) echo 8192 ;;
	esac
}

run_one() {
	t=$1
	mkdir -p "$dir/work/$t"
	rm -f "$dir/artifacts/$t-"*
	dict=
	[ -f "$src/tests/fuzz/$t.dict" ] && dict="-dict=$src/tests/fuzz/$t.dict"
	[ -z "$dict" ] && [ "$t" != fuzz_userdb ] && dict="-dict=$src/tests/fuzz/json.dict"
	"$dir/$t" -max_total_time="$seconds" -max_len="$(max_len "$t")" $dict \
		-timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$dir/artifacts/$t-" \
		"$dir/work/$t" "$src/tests/fuzz/corpus/$t" >"$dir/$t.log" 2>&1
	echo $? >"$dir/$t.status"
}

running=0
for t in "$@"; do
	run_one "$t" &
	running=$((running + 1))
	if [ "$running" -ge "$jobs" ]; then
		wait
		running=0
	fi
done
wait

status=0
for t in "$@"; do
	rc=$(cat "$dir/$t.status" 2>/dev/null || echo 1)
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/$t.log" | tail -n 1)
	crashes=$(ls "$dir/artifacts" 2>/dev/null | grep -c "^$t-")
	if [ "$rc" != 0 ] && [ "$crashes" = 0 ]; then
		crashes=1
	fi
	echo "fuzz-summary: $t runs=${runs:-0} crashes=$crashes"
	if [ "$rc" != 0 ]; then
		status=1
		echo "$t FAILED ($dir/$t.log):"
		tail -n 40 "$dir/$t.log"
	fi
done
exit $status
