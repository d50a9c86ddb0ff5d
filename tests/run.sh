#!/usr/bin/env bash
# Runs every test: builds the fixtures (installing the Debian packages they need), then
# `dotnet test` over the whole solution in Release with a TRX logger. Prints each failed test
# with its message, and as its last line
#     tests: N passed, N failed, N skipped
# Exits non-zero on any failure: a failed test, a build that does not compile, a test run that
# crashes or hangs, or fixtures that cannot be built (each of the last counts as one failure).
#
# Environment: INTROSPECT_ARTIFACTS (build output; TRX files go to its test-results/),
# INTROSPECT_FIXTURES, INTROSPECT_TESTDATA (see tests/fixtures/build.sh),
# INTROSPECT_TEST_TIMEOUT (seconds for the whole dotnet test, default 4200).
set -uo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ARTIFACTS=${INTROSPECT_ARTIFACTS:-$REPO_ROOT/artifacts}
RESULTS=$ARTIFACTS/test-results
TEST_TIMEOUT=${INTROSPECT_TEST_TIMEOUT:-4200}
export DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

# Failures that no TRX file records: they are printed like a failed test and counted as one.
extra_failures=0
report_failure() {
    printf 'FAILED %s\n' "$1"
    shift
    [[ $# -gt 0 ]] && printf '    %s\n' "$@"
    extra_failures=$((extra_failures + 1))
}

summary() {
    printf 'tests: %d passed, %d failed, %d skipped\n' "$1" "$2" "$3"
}

if ! command -v dotnet >/dev/null; then
    report_failure "setup" "no dotnet on PATH: install the .NET 10 SDK"
    summary 0 "$extra_failures" 0
    exit 1
fi

echo "== fixtures: tests/fixtures/build.sh"
fixtures_log=$(mktemp)
failure_report=$(mktemp)
trap 'rm -f "$fixtures_log" "$failure_report"' EXIT
if ! bash "$REPO_ROOT/tests/fixtures/build.sh" < /dev/null 2>&1 | tee "$fixtures_log"; then
    fixtures_failed=true
else
    fixtures_failed=false
fi

echo "== dotnet test Introspect.sln -c Release"
mkdir -p "$RESULTS"
rm -f "$RESULTS"/*.trx "$RESULTS/dotnet-test.log"
# --blame-hang-timeout turns a hanging test into a failed run that names the test, before the
# outer timeout has to kill everything.
timeout --kill-after=60 "$TEST_TIMEOUT" \
    dotnet test "$REPO_ROOT/Introspect.sln" -c Release --nologo \
        --logger trx --results-directory "$RESULTS" \
        --blame-hang-timeout 20m --blame-hang-dump-type none \
        < /dev/null 2>&1 | tee "$RESULTS/dotnet-test.log"
dotnet_status=${PIPESTATUS[0]}

# TRX files are read tag by tag (records split at '<'); text between tags has no raw '<'.
# Counting comes from each UnitTestResult's outcome, not from <Counters>, whose notExecuted
# stays 0 while NUnit's ignored, explicit and inconclusive tests are reported NotExecuted.
shopt -s nullglob
trx_files=("$RESULTS"/*.trx)
shopt -u nullglob
counts="0 0 0"
if ((${#trx_files[@]} > 0)); then
    counts=$(awk -v report="$failure_report" '
        function attr(record, name,    start, rest) {
            start = index(record, " " name "=\"")
            if (start == 0) return ""
            rest = substr(record, start + length(name) + 3)
            return substr(rest, 1, index(rest, "\"") - 1)
        }
        function unescape(text) {
            gsub(/&lt;/, "<", text); gsub(/&gt;/, ">", text); gsub(/&quot;/, "\"", text)
            gsub(/&apos;/, "\047", text); gsub(/&#xD;/, "", text); gsub(/&#xA;/, "\n", text)
            gsub(/&amp;/, "\\&", text)
            return text
        }
        BEGIN { RS = "<" }
        /^UnitTestResult / {
            outcome = attr($0, "outcome"); id = attr($0, "testId")
            current = ""
            if (outcome == "Passed") passed++
            else if (outcome == "Failed" || outcome == "Error" || outcome == "Timeout" || outcome == "Aborted") {
                failed++; current = ++nfailures
                failure_id[current] = id; failure_name[current] = unescape(attr($0, "testName"))
                failure_outcome[current] = outcome
            }
            else skipped++
            next
        }
        /^Message>/ && current != "" && !(current in failure_message) {
            failure_message[current] = unescape(substr($0, 9))
            next
        }
        /^UnitTest / { definition = attr($0, "id"); next }
        /^TestMethod / { class_of[definition] = attr($0, "className"); next }
        /^RunInfo / { run_info_outcome = attr($0, "outcome"); next }
        /^Text>/ && run_info_outcome == "Error" {
            run_errors[++nrun_errors] = unescape(substr($0, 6)); run_info_outcome = ""
            next
        }
        END {
            for (i = 1; i <= nfailures; i++) {
                name = failure_name[i]
                if (class_of[failure_id[i]] != "") name = class_of[failure_id[i]] "." name
                printf "FAILED %s (%s)\n", name, failure_outcome[i] > report
                lines = split(failure_message[i], message_lines, "\n")
                for (j = 1; j <= lines && j <= 20; j++) printf "    %s\n", message_lines[j] > report
                if (lines > 20) printf "    ...\n" > report
            }
            for (i = 1; i <= nrun_errors; i++) {
                lines = split(run_errors[i], message_lines, "\n")
                printf "RUN ERROR\n" > report
                for (j = 1; j <= lines && j <= 20; j++) printf "    %s\n", message_lines[j] > report
            }
            printf "%d %d %d\n", passed, failed, skipped
        }
    ' "${trx_files[@]}")
fi
read -r passed failed skipped <<< "$counts"

echo "== results"
cat "$failure_report"
if $fixtures_failed; then
    mapfile -t fixture_tail < <(grep -v '^fixtures: [a-z-]*: ' "$fixtures_log" | tail -n 10)
    report_failure "tests/fixtures/build.sh" "${fixture_tail[@]}"
fi
# A project that does not compile leaves no TRX file; MSBuild repeats each error in its summary.
mapfile -t build_errors < <(grep -E ': error [A-Z]+[0-9]+:' "$RESULTS/dotnet-test.log" | sed 's/^ *//' | awk '!seen[$0]++' | head -n 20)
if ((${#build_errors[@]} > 0)); then
    report_failure "build" "${build_errors[@]}"
fi
if ((dotnet_status == 124 || dotnet_status == 137)); then
    report_failure "dotnet test" "did not finish within $TEST_TIMEOUT s (INTROSPECT_TEST_TIMEOUT)"
elif ((dotnet_status != 0 && failed == 0 && ${#build_errors[@]} == 0)); then
    report_failure "dotnet test" "exited with status $dotnet_status and no failed test: a build error or a crashed test run (see its output above)"
fi

failed=$((failed + extra_failures))
summary "$passed" "$failed" "$skipped"
if ((failed > 0 || dotnet_status != 0)); then
    exit 1
fi
exit 0
