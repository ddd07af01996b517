#!/bin/sh
# Run one numbered group of Go tests: gotest.sh GO OUTDIR INCLUDEDIR LIBDIR NUMBER [go test args]
set -eu
GO=$1 OUT=$2 INC=$3 LIB=$4 N=$5
shift 5
. "$(dirname "$0")/goenv.sh"
cd "$OUT"
# -run must match at least one test: "no tests to run" would pass silently.
list=$("$GO" test -count=1 -list "^Test${N}" ./vstor/ | grep "^Test${N}" || true)
if [ -z "$list" ]; then
  echo "gotest.sh: no test matches ^Test${N}" >&2
  exit 1
fi
exec "$GO" test -count=1 -v -run "^Test${N}" "$@" ./vstor/
