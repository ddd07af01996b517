#!/bin/bash
# LVM lab runner: boots the lab VM once per `meson test` run, runs every
# LVM test inside (guest.sh) and reports each test's result on the host.
#
#   run-lab.sh boot  LVMLAB MODULE       boot (if not done for this meson run);
#                                        passes when the guest ran every test
#   run-lab.sh check NAME LVMLAB MODULE  boot if needed, then pass/fail as the
#                                        guest's test NAME did (its log printed)
#
# One boot serves all the tests of one `meson test` invocation: results are
# kept under $VSTOR_LAB_DIR/lvm-results/<meson pid>-<its start time>/.
# A failed boot is a failed test.  LVM_TESTS="a b" limits the guest's tests.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
LAB=${VSTOR_LAB_DIR:-/var/tmp/vstor-lab}
mode=$1; shift
name=
if [ "$mode" = check ]; then name=$1; shift; fi
LVMLAB=$1 MODULE=$2

parent_start=$(awk '{print $22}' "/proc/$PPID/stat" 2>/dev/null || echo 0)
ROOT=$LAB/lvm-results
RES=$ROOT/$PPID-$parent_start
mkdir -p "$ROOT"
find "$ROOT" -mindepth 1 -maxdepth 1 -type d -mmin +720 -exec rm -rf {} + 2>/dev/null

boot() {
  mkdir -p "$RES"
  for f in "$LVMLAB" "$MODULE"; do
    [ -e "$f" ] || { echo "run-lab: $f is missing (build first)" > "$RES/serial.log"; return; }
  done
  cat > "$RES/test.sh" <<EOT
#!/bin/sh
export LVMLAB=$LVMLAB VSTOR_BACKEND_DIR=$(dirname "$(dirname "$MODULE")") LVM_TESTS="${LVM_TESTS:-}"
[ -n "\$LVM_TESTS" ] || unset LVM_TESTS
. $HERE/guest.sh
EOT
  local t0=$SECONDS
  EXTRA_FILES="$LVMLAB $MODULE $HERE/guest.sh" TMO=${LVM_LAB_TIMEOUT:-420} \
    timeout $(( ${LVM_LAB_TIMEOUT:-420} + 30 )) bash "$HERE/../lab/run-qemu.sh" "$RES/test.sh" \
    1536M 1536M 640M 640M 64M 64M 640M 640M 2>&1 | tr -d '\r' > "$RES/serial.log"
  echo "run-lab: VM ran $((SECONDS - t0)) s" >> "$RES/serial.log"
  grep -a '^LVMTEST' "$RES/serial.log" > "$RES/results"
}

exec 8>"$ROOT/.lock"
flock 8
[ -e "$RES/results" ] || boot
flock -u 8

if [ "$mode" = boot ]; then
  if grep -q '^LVMTEST-END' "$RES/results"; then
    grep -a '^HOST:\|^run-lab:\|^LAB: init' "$RES/serial.log"
    awk '{print "  " $2 " " $3}' "$RES/results" | grep -v '^  $'
    exit 0
  fi
  echo "run-lab: the lab VM did not run the LVM tests to the end; serial log:"
  tail -n 80 "$RES/serial.log"
  exit 1
fi

line=$(grep -a "^LVMTEST $name " "$RES/results" || true)
sed -n "/^=== $name\$/,/^LVMTEST $name /p" "$RES/serial.log"
case $line in
  "LVMTEST $name PASS") exit 0 ;;
  "LVMTEST $name FAIL") exit 1 ;;
  *) echo "run-lab: no result for $name (boot failed or guest died); see $RES/serial.log"
     tail -n 30 "$RES/serial.log"; exit 1 ;;
esac
