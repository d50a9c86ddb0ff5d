#!/usr/bin/env bash
# The main job, end to end: publishes the introspect command, unpacks the raw image of a real
# Debian 12 guest, and runs info, kernel, ps, search, read and bench on that image and on the makedumpfile
# (kdump-zlib, flattened) dump QEMU wrote of the same moment.
#
# Environment: INTROSPECT_ARTIFACTS (build output; the command goes to its publish/introspect/),
# INTROSPECT_TESTDATA, INTROSPECT_FIXTURES (see tests/fixtures/build.sh).
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ARTIFACTS=${INTROSPECT_ARTIFACTS:-$REPO_ROOT/artifacts}
PUBLISH=$ARTIFACTS/publish/introspect
TESTDATA=${INTROSPECT_TESTDATA:-$REPO_ROOT/../shared/testdata}
FIXTURES=${INTROSPECT_FIXTURES:-$REPO_ROOT/tests/fixtures/out}
MARKER=MEMFORENSICS_TEST_MARKER_7f3a
export DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

step() { printf '\n== %s\n' "$*"; }

introspect() {
    printf '$ introspect %s\n' "$*"
    "$PUBLISH/introspect" "$@"
}

step "publishing introspect to $PUBLISH"
dotnet publish "$REPO_ROOT/tools/Introspect.Cli/Introspect.Cli.csproj" -c Release -o "$PUBLISH" --nologo -v quiet < /dev/null

step "unpacking the raw image"
bash "$REPO_ROOT/tests/fixtures/build.sh" raw < /dev/null

# Shown in every command line: say it without "..".
[[ -d $TESTDATA ]] && TESTDATA=$(cd "$TESTDATA" && pwd)
raw=$FIXTURES/linux-6.1-x64-128M.raw
kdump=$TESTDATA/linux/linux-6.1-x64-128M.kdump-zlib
oracle=$TESTDATA/linux/oracle-serial.txt
[[ -f $kdump ]] || { echo "missing $kdump (set INTROSPECT_TESTDATA to the shared test data folder)" >&2; exit 1; }

# linux_banner's physical address, from the kallsyms the guest printed: the guest ran without
# KASLR, so the kernel image sits at its link address less the kernel map's base (phys_base 0).
banner=$(tr -d '\r' < "$oracle" | awk '$3 == "linux_banner" { print $1 }')
[[ -n $banner ]] || { echo "no linux_banner line in $oracle" >&2; exit 1; }
banner_phys=$(printf '0x%x' $((0x$banner - 0xffffffff80000000)))

step "the raw image: $raw"
introspect info --chain "coredump:path=$raw"

step "the Linux kernel in it, found from the memory alone (kallsyms, BTF), and its processes"
introspect kernel --chain "coredump:path=$raw -> linux"
introspect ps --chain "coredump:path=$raw -> linux" --tree

step "QEMU's flattened kdump-zlib dump of the same moment: $kdump"
introspect info --chain "coredump:path=$kdump"

step "the marker the guest wrote to a file of its tmpfs"
introspect search --chain "coredump:path=$kdump" --text "$MARKER"

step "linux_banner (kallsyms $banner), read from the compressed dump"
introspect read --chain "coredump:path=$kdump" --phys "$banner_phys" --length 256

step "read speed, beside a plain memory copy of the same bytes"
introspect bench --chain "coredump:path=$raw"
