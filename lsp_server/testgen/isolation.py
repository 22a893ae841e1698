"""How far a run of generated tests can be shut in on this machine, found out once.

Best, on Linux with `unshare`: new user, mount and network namespaces, in which confine.sh makes
every mount read-only except the run's temporary directory and the project, and nothing reaches
the network. Next: a network namespace only. Last (other systems, or namespaces forbidden): the
sandbox's own Python-level block of socket connections, with the file system writable. The user
is told when the run got less than the best.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

CONFINE_SCRIPT = Path(__file__).with_name("confine.sh")
PROBE_TIMEOUT_S = 10


@dataclass(frozen=True)
class Isolation:
    namespaces: tuple[str, ...] = ()  # the unshare command prefix; () for none
    filesystem: bool = False  # writes outside the run's directory and the project fail
    network: bool = False  # the run has no network at all, not only Python's sockets

    def command(self, writable: Path, project: Path, argv: Sequence[str]) -> list[str]:
        if self.filesystem:
            return [*self.namespaces, "sh", str(CONFINE_SCRIPT), str(writable), str(project), *argv]
        return [*self.namespaces, *argv]

    def weaker(self) -> str:
        """What the user should know about this run's walls; "" for the best there is."""
        if self.filesystem and self.network:
            return ""
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


@functools.cache
def available() -> Isolation:
    """The strongest isolation this machine allows (probed once, by running `true` in it)."""
    unshare = shutil.which("unshare") if sys.platform == "linux" else None
    if unshare is None:
        return Isolation()
    full = Isolation((unshare, "--user", "--map-root-user", "--mount", "--net", "--"), True, True)
    with tempfile.TemporaryDirectory() as writable, tempfile.TemporaryDirectory() as project:
        if _works(full.command(Path(writable), Path(project), ["true"])):
            return full
    for prefix in ((unshare, "--net", "--"), (unshare, "--user", "--map-root-user", "--net", "--")):
        if _works([*prefix, "true"]):
            return Isolation(prefix, filesystem=False, network=True)
    return Isolation()
