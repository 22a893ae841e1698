#!/bin/sh
# Run inside fresh user, mount and network namespaces, and a PID namespace when there is one
# (testgen/isolation.py starts it under unshare): the PID namespace gets at most PROCESS_LIMIT
# PIDs, every mount becomes read-only, then the run's temporary directory and the project are
# bound back writable on top, and the command runs there.
#     confine.sh PROCESS_LIMIT WRITABLE_DIR PROJECT_DIR COMMAND [ARGS...]
set -e
limit=$1
writable=$2
project=$3
shift 3
# Only a PID namespace of the run's own (PID 1 here) may be capped; an older kernel refuses the
# write, and isolation.py then reads back a pid_max that says so.
if [ "$$" = 1 ]; then
    { echo "$limit" > /proc/sys/kernel/pid_max; } 2>/dev/null || true
fi
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
