#!/bin/sh
# Build (and vet) the Go binding in the build tree.
# Usage: gobuild.sh GO SRCDIR GENDIR OUTDIR INCLUDEDIR LIBDIR STAMP EXAMPLEDIR
#   SRCDIR  bindings/go in the source tree (go.mod, vstor/*.go)
#   GENDIR  where meson put the SWIG output (capi.go, capi_wrap.c)
#   OUTDIR  module copy to build in (tests run there too)
# Go needs the generated wrapper inside the package directory, so the
# module is copied next to it; nothing is downloaded (GOPROXY=off).
set -eu
GO=$1 SRC=$2 GEN=$3 OUT=$4 INC=$5 LIB=$6 STAMP=$7 EX=$8
case $STAMP in /*) ;; *) STAMP=$PWD/$STAMP ;; esac

rm -rf "$OUT.new"
mkdir -p "$OUT.new/vstor/internal/capi"
cp "$SRC/go.mod" "$OUT.new/"
cp "$SRC"/vstor/*.go "$OUT.new/vstor/"
cp "$GEN/capi.go" "$GEN/capi_wrap.c" "$OUT.new/vstor/internal/capi/"
# examples/go/* are commands of the same module.
mkdir -p "$OUT.new/examples"
cp -r "$EX"/* "$OUT.new/examples/"
rm -rf "$OUT"
mv "$OUT.new" "$OUT"

. "$(dirname "$0")/goenv.sh"
cd "$OUT"
"$GO" build ./...
"$GO" vet ./vstor/ ./examples/...
"$GO" build -o "$OUT/vstor-demo" ./examples/vstor-demo
# Compile the tests now so a broken test fails the build, not the suite.
"$GO" test -c -o "$OUT/vstor.test" ./vstor/
touch "$STAMP"
