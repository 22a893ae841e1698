#!/bin/sh
# Run inside fresh user, mount and network namespaces (testgen/isolation.py starts it under
# unshare): every mount becomes read-only, then the run's temporary directory and the project are
# bound back writable on top, and the command runs there.
#     confine.sh WRITABLE_DIR PROJECT_DIR COMMAND [ARGS...]
set -e
writable=$1
project=$2
shift 2
# Deepest mounts first, so a parent's remount cannot hide a child that is still to be done.
awk '{print $5}' /proc/self/mountinfo | sort -r | while read -r point; do
    mount -o remount,bind,ro "$point" 2>/dev/null || true
done
for dir in "$writable" "$project"; do
    mount --bind "$dir" "$dir"
    mount -o remount,bind,rw "$dir"
done
# The working directory was entered before the binds: enter it again through them.
cd "$PWD"
exec "$@"
