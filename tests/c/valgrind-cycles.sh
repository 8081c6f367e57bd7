#!/usr/bin/env bash
# Leak check of handshake + echo + close cycles: runs test-cycles under
# valgrind twice, with a small and a larger number of cycles, and fails if
# either run has a definite leak (valgrind's exit status, given
# --errors-for-leak-kinds=definite --error-exitcode=1) or if the
# "definitely lost", "indirectly lost" or "possibly lost" byte totals
# differ between the two runs: what grows with the number of cycles is a
# per-cycle leak. Prints both runs' summaries and the totals side by side.
#
#   tests/c/valgrind-cycles.sh VALGRIND TEST-CYCLES [VALGRIND-ARG...]
#
# Runs inside tests/c/run-with-peer.sh (DTLS_TEST_PKI, DTLS_TEST_PORT).
# Cycles: 20 and 100; with DTLS_OPENSSL_LONG_TESTS set (=1), 100 and 1000.
# DTLS_CYCLES_SMALL / DTLS_CYCLES_LARGE override either count.
set -uo pipefail
[ $# -ge 2 ] || { echo "usage: $0 VALGRIND TEST-CYCLES [VALGRIND-ARG...]" >&2; exit 2; }
valgrind=$1
program=$2
shift 2

if [ -n "${DTLS_OPENSSL_LONG_TESTS+set}" ]; then
    small=${DTLS_CYCLES_SMALL:-100} large=${DTLS_CYCLES_LARGE:-1000}
else
    small=${DTLS_CYCLES_SMALL:-20} large=${DTLS_CYCLES_LARGE:-100}
fi
if ! [[ $small =~ ^[1-9][0-9]*$ && $large =~ ^[1-9][0-9]*$ ]] || [ "$small" -ge "$large" ]; then
    echo "valgrind-cycles: need 0 < small < large cycles, got $small and $large" >&2
    exit 2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/valgrind-cycles.XXXXXX")
trap 'rm -rf "$work"' EXIT

# total KIND LOG: the byte total of KIND ("definitely lost", ...,
# "still reachable") in LOG's leak summary; 0 when the heap was empty at
# exit (valgrind then prints no leak summary).
total() {
    local line
    line=$(grep -E "== +$1: [0-9,]+ bytes" "$2" | tail -n 1)
    if [ -z "$line" ]; then
        if grep -q "All heap blocks were freed -- no leaks are possible" "$2"; then
            echo 0
            return 0
        fi
        return 1
    fi
    sed -E 's/.*: ([0-9,]+) bytes.*/\1/; s/,//g' <<<"$line"
}

declare -A totals
failed=0
for count in "$small" "$large"; do
    log=$work/valgrind-$count.log
    echo "=== $count cycles under valgrind"
    start=$(date +%s)
    "$valgrind" --log-file="$log" "$@" "$program" "$count"
    rc=$?
    echo "=== $count cycles: exit status $rc after $(( $(date +%s) - start )) s; valgrind's summary:"
    # The leak and error summaries, and every definite-leak record.
    sed -n '/HEAP SUMMARY:/,$p' "$log"
    if [ $rc -ne 0 ]; then
        if grep -q "definitely lost in loss record" "$log"; then
            echo "valgrind-cycles: FAIL: $count cycles: definite leaks (records above)" >&2
        else
            echo "valgrind-cycles: FAIL: $count cycles: exit status $rc; valgrind's whole log:" >&2
            cat "$log" >&2
        fi
        failed=1
        continue
    fi
    for kind in "definitely lost" "indirectly lost" "possibly lost" "still reachable"; do
        if ! value=$(total "$kind" "$log"); then
            echo "valgrind-cycles: FAIL: no '$kind' total in valgrind's log for $count cycles" >&2
            failed=1
            continue
        fi
        totals[$kind,$count]=$value
    done
done
[ $failed -eq 0 ] || exit 1

echo "=== bytes lost after $small and $large cycles"
for kind in "definitely lost" "indirectly lost" "possibly lost"; do
    a=${totals[$kind,$small]} b=${totals[$kind,$large]}
    printf '%-15s %10s %10s\n' "$kind" "$a" "$b"
    if [ "$a" != "$b" ]; then
        echo "valgrind-cycles: FAIL: '$kind' differs: $a bytes after $small cycles, $b after $large: a per-cycle leak" >&2
        failed=1
    fi
done
# Shown, not checked: what GLib and OpenSSL keep for the process may
# depend on timing (threads, caches).
printf '%-15s %10s %10s  (not checked)\n' "still reachable" \
    "${totals[still reachable,$small]}" "${totals[still reachable,$large]}"
[ $failed -eq 0 ] || exit 1
echo "valgrind-cycles: no definite leak, no growth between $small and $large cycles"
