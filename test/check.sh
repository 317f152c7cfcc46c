#!/usr/bin/env bash
# test/check.sh — `make test`: strict build, private install, then the three
# layers (pg_regress, isolation, TAP) against servers with aura preloaded.
# Ends with one line "N passed, N failed"; exits non-zero on any failure.
# TESTS="a b" limits pg_regress, ISO="x" the isolation specs, PROVE_TESTS the TAP files.
set -uo pipefail
cd "$(dirname "$0")/.."
. test/lib.sh

passed=0
failed=0
start=$(date +%s)

echo "== build (-Wall -Wextra -Werror) and private install"
if ! aura_build; then
    echo "0 passed, 1 failed"; exit 1
fi

rm -rf tmp_check && mkdir -p tmp_check

# tally PASS FAIL: add a layer's counts to the totals
tally() { passed=$((passed + $1)); failed=$((failed + $2)); }

# count_regress LOG: pg_regress (PG 14/15 "... ok" lines, PG 16+ TAP lines)
count_regress() {
    local ok bad
    ok=$(grep -cE '(\.\.\. ok|^ok [0-9]+)' "$1")
    bad=$(grep -cE '(\.\.\. FAILED|\.\.\. failed|^not ok [0-9]+)' "$1")
    echo "$ok $bad"
}

# layer_tally STATUS LOG: a runner that failed without a counted failure
# (crash, missing expected file) still counts as one failure
layer_tally() {
    local counts
    counts=($(count_regress "$2"))
    if [ "$1" -ne 0 ] && [ "${counts[1]}" -eq 0 ]; then counts[1]=1; fi
    tally "${counts[0]}" "${counts[1]}"
}

echo "== pg_regress"
regress_tests=${TESTS:-$(ls sql/*.sql | sed -n 's|^sql/\([^/]*\)\.sql$|\1|p' | grep -v '^aura--' | sort | tr '\n' ' ')}
"$PGXS_DIR/src/test/regress/pg_regress" \
    --temp-instance=tmp_check/regress --temp-config=test/aura.conf \
    --bindir="$PG_BIN" --inputdir=. --outputdir=tmp_check/regress_out \
    --port="$(free_port)" --dbname=contrib_regression $regress_tests 2>&1 | tee tmp_check/regress.log
layer_tally ${PIPESTATUS[0]} tmp_check/regress.log
[ -f tmp_check/regress_out/regression.diffs ] && head -200 tmp_check/regress_out/regression.diffs

echo "== isolation"
specs=${ISO:-$(ls test/specs/*.spec 2>/dev/null | xargs -r -n1 basename | sed 's/\.spec$//' | sort | tr '\n' ' ')}
if [ -n "$specs" ]; then
    "$PGXS_DIR/src/test/isolation/pg_isolation_regress" \
        --temp-instance=tmp_check/isolation --temp-config=test/aura.conf \
        --bindir="$PG_BIN" --inputdir=test --outputdir=tmp_check/isolation_out \
        --port="$(free_port)" --dbname=isolation_regression $specs 2>&1 | tee tmp_check/isolation.log
    layer_tally ${PIPESTATUS[0]} tmp_check/isolation.log
    [ -f tmp_check/isolation_out/regression.diffs ] && head -200 tmp_check/isolation_out/regression.diffs
fi

echo "== TAP"
tap_files=${PROVE_TESTS:-$(ls test/t/*.pl 2>/dev/null | sort | tr '\n' ' ')}
if [ -n "$tap_files" ]; then
    # one port-lock directory for every concurrent test run on this machine
    mkdir -p /tmp/aura_portlock 2>/dev/null
    PG_TEST_PORT_DIR=/tmp/aura_portlock TESTDIR=$PWD/tmp_check PG_REGRESS="$PGXS_DIR/src/test/regress/pg_regress" \
    AURA_TOP=$PWD PGXS_DIR="$PGXS_DIR" \
        prove -I "$PGXS_DIR/src/test/perl" -I test -v $tap_files > tmp_check/tap.log 2>&1
    grep -E '^(ok|not ok) |^# (Failed|Looks)|^t/|^test/t/|^Result|Dubious|^Files=' tmp_check/tap.log
    ok=$(grep -cE '^ok [0-9]+' tmp_check/tap.log)
    bad=$(grep -cE '^not ok [0-9]+' tmp_check/tap.log)
    # a script that died or missed its plan counts as a failure too
    grep -qE '^Result: PASS' tmp_check/tap.log || [ "$bad" -gt 0 ] || bad=1
    tally "$ok" "$bad"
    [ "$bad" -gt 0 ] && { echo "-- TAP log: tmp_check/tap.log; server logs: tmp_check/t_*"; }
fi

echo "== packaging"
if python3 test/check_meta.py META.json aura.control; then tally 1 0; else tally 0 1; fi

echo "== done in $(( $(date +%s) - start ))s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
