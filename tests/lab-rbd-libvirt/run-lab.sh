#!/bin/bash
# Run one lab-rbd-libvirt test: the Ceph cluster through tests/lab-rbd/
# run-lab.sh (one per `meson test` run, torn down by its reaper when the run
# ends), then the libvirtd + guest stack through stack.sh (torn down when the
# test ends).  Usage: run-lab.sh [--noagent] PROGRAM [ARGS...]
# exec keeps meson as the parent: the cluster's owner is the test run.
HERE=$(cd "$(dirname "$0")" && pwd)
exec "$HERE/../lab-rbd/run-lab.sh" "$HERE/stack.sh" "$@"
