"""How far a run of generated tests can be shut in on this machine, found out once.

Best, on Linux with `unshare`: new user, mount, network and PID namespaces, in which confine.sh
makes every mount read-only except the run's temporary directory and the project, and nothing
reaches the network. The PID namespace is the process wall: when the run's first process ends,
the kernel ends every process it left behind (a forked child cannot outlive the run), the run
cannot see or signal any process outside, and confine.sh caps the namespace's PIDs (its own
`pid_max`, Linux 6.14 and later) at PROCESS_LIMIT, which stops a fork bomb even where the server
runs as root (root is exempt from RLIMIT_NPROC; a user namespace mapped onto root does not change
that). Next: the same without the PID namespace; then a network namespace only. Last (other
systems, or namespaces forbidden): the sandbox's own Python-level block of socket connections,
with the file system writable. The user is told when the run got less than the best.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

CONFINE_SCRIPT = Path(__file__).with_name("confine.sh")
PROBE_TIMEOUT_S = 10
# The PID namespace's pid_max: at most this many processes (fewer once its PIDs wrap: the kernel
# then reuses only those from 300 up). The kernel's floor is 301.
PROCESS_LIMIT = 512


@dataclass(frozen=True)
class Isolation:
    namespaces: tuple[str, ...] = ()  # the unshare command prefix; () for none
    filesystem: bool = False  # writes outside the run's directory and the project fail
    network: bool = False  # the run has no network at all, not only Python's sockets
    # A PID namespace of its own: nothing the run starts outlives it, nothing outside is visible
    processes: bool = False
    process_limit: bool = False  # at most PROCESS_LIMIT processes (pid_max, or RLIMIT_NPROC)

    def command(self, writable: Path, project: Path, argv: Sequence[str]) -> list[str]:
        if self.filesystem:
            confine = ["sh", str(CONFINE_SCRIPT), str(PROCESS_LIMIT), str(writable), str(project)]
            return [*self.namespaces, *confine, *argv]
        return [*self.namespaces, *argv]

    def weaker(self) -> str:
        """What the user should know about this run's walls; "" for the best there is."""
        if self.filesystem and self.network and self.processes and self.process_limit:
            return ""
        if self.filesystem and self.network:
            return "The tests ran with the file system and the network shut off, but " + (
                "with no limit on the processes they start: this machine cannot cap a PID "
                "namespace (Linux 6.14 or later can), and root ignores RLIMIT_NPROC."
                if self.processes
                else "without a PID namespace: a process they leave behind in a session of "
                "its own outlives them."
            )
        if self.network:
            return (
                "The tests ran with the network cut off but the file system writable: this "
                "machine allows them no mount namespace."
            )
        return (
            "The tests ran with network access blocked inside Python only and the file system "
            "writable: this machine gives them no namespaces of their own."
        )


def _works(argv: Sequence[str]) -> bool:
    try:
        subprocess.run(list(argv), check=True, capture_output=True, timeout=PROBE_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return False
    return True


def _pid_max(isolation: Isolation) -> int | None:
    """The pid_max a run under `isolation` sees, or None when it does not start."""
    with tempfile.TemporaryDirectory() as writable, tempfile.TemporaryDirectory() as project:
        argv = isolation.command(Path(writable), Path(project), ["cat", "/proc/sys/kernel/pid_max"])
        try:
            done = subprocess.run(argv, check=True, capture_output=True, timeout=PROBE_TIMEOUT_S)
            return int(done.stdout)
        except (OSError, subprocess.SubprocessError, ValueError):
            return None


@functools.cache
def available() -> Isolation:
    """The strongest isolation this machine allows (probed once, by running it)."""
    unshare = shutil.which("unshare") if sys.platform == "linux" else None
    if unshare is None:
        return Isolation()
    user_mount_net = (unshare, "--user", "--map-root-user", "--mount", "--net")
    # --kill-child: if the launcher is killed (the run's time limit), the namespace goes with it.
    pid = ("--pid", "--fork", "--kill-child", "--mount-proc")
    walled = Isolation((*user_mount_net, *pid, "--"), filesystem=True, network=True, processes=True)
    # In a user namespace of its own the sandbox caps RLIMIT_NPROC, which binds any user but
    # root; root is capped by the PID namespace's pid_max (where the kernel allows setting it).
    not_root = os.geteuid() != 0
    limit = _pid_max(walled)
    if limit is not None:
        return dataclasses.replace(walled, process_limit=limit == PROCESS_LIMIT or not_root)
    full = Isolation((*user_mount_net, "--"), filesystem=True, network=True, process_limit=not_root)
    if _pid_max(full) is not None:
        return full
    for prefix in ((unshare, "--net", "--"), (unshare, "--user", "--map-root-user", "--net", "--")):
        if _works([*prefix, "true"]):
            return Isolation(prefix, filesystem=False, network=True)
    return Isolation()
