"""Where the next model's training code comes from, and which code it must never see.

The sources are the running interpreter's standard library plus an explicit allow-list of
installed distributions (the build venv installs them anyway, so nothing is downloaded). Each
distribution's licence is read from its own installed metadata and must pass `is_permissive`;
one that fails, or states none we can read, is refused rather than guessed at.

The licence rule: every SPDX identifier of the expression (or, for `OR`, at least one side) must be
in `PERMISSIVE_LICENCES`: MIT, BSD, Apache-2.0, PSF, ISC, Zlib, BSL-1.0, 0BSD, Unlicense, CC0
(`X WITH exception` counts as X: the SPDX exceptions only grant more). Weak copyleft
(MPL, LGPL, EPL) is refused too: its file-level terms follow copies of the file, and a model can
reproduce training files verbatim. The metadata fields are read in this order: License-Expression
(PEP 639), then a short License field, then the trove classifiers.

Never read: vendored copies (they are other projects, often under other licences, and duplicate
what is already there) and the projects `flashcode eval repo` measures on, so that the whole-line
score stays a measure of unseen code.
"""

from __future__ import annotations

import importlib.metadata
import re
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Distribution name -> the top-level import packages it installs that we read.
ALLOWED_PACKAGES: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "transformers": ("transformers",),
    "sympy": ("sympy",),
    "networkx": ("networkx",),
    "mpmath": ("mpmath",),
    "numpy": ("numpy",),
    "setuptools": ("setuptools", "pkg_resources"),
    "pip": ("pip",),
    "mypy": ("mypy",),
    "huggingface_hub": ("huggingface_hub",),
    "pytest": ("pytest", "_pytest"),
}

# The projects `flashcode eval repo` holes files in (benchmarks/repo_cases.py's DEFAULT_PROJECTS,
# plus the libraries they are built from): never training data. The card prints this list.
EVAL_PROJECTS: tuple[str, ...] = (
    "jinja2",
    "pygls",
    "lsprotocol",
    "diskcache",
    "platformdirs",
    "markupsafe",
    "cattrs",
    "attrs",
)

# Any directory of these names holds someone else's project copied in.
VENDORED_DIRS: frozenset[str] = frozenset({"_vendor", "vendored", "extern", "third_party"})

PERMISSIVE_LICENCES: frozenset[str] = frozenset(
    {
        "MIT",
        "MIT-0",
        "BSD-2-Clause",
        "BSD-3-Clause",
        "BSD-3-Clause-Clear",
        "0BSD",
        "Apache-2.0",
        "PSF-2.0",
        "Python-2.0",
        "ISC",
        "Zlib",
        "BSL-1.0",
        "Unlicense",
        "CC0-1.0",
    }
)

# Free-text License fields and trove classifiers, as found in real metadata, to SPDX.
_LICENCE_NAMES: dict[str, str] = {
    "mit": "MIT",
    "mit license": "MIT",
    "bsd": "BSD-3-Clause",
    "bsd license": "BSD-3-Clause",
    "new bsd": "BSD-3-Clause",
    "new bsd license": "BSD-3-Clause",
    "3-clause bsd license": "BSD-3-Clause",
    "bsd-3-clause": "BSD-3-Clause",
    "bsd 3-clause": "BSD-3-Clause",
    "apache 2.0": "Apache-2.0",
    "apache 2.0 license": "Apache-2.0",
    "apache license 2.0": "Apache-2.0",
    "apache license, version 2.0": "Apache-2.0",
    "apache software license": "Apache-2.0",
    "apache-2.0": "Apache-2.0",
    "python software foundation license": "PSF-2.0",
    "isc license (iscl)": "ISC",
    "isc": "ISC",
    "mozilla public license 2.0 (mpl 2.0)": "MPL-2.0",
    "gnu general public license v3 (gplv3)": "GPL-3.0-only",
    "gnu lesser general public license v3 (lgplv3)": "LGPL-3.0-only",
}
_CLASSIFIER_PREFIX = "License :: OSI Approved :: "


@dataclass(frozen=True)
class Source:
    name: str  # distribution name, or "stdlib"
    version: str
    licence: str  # SPDX expression as read (or mapped) from the metadata
    roots: tuple[Path, ...]  # directories whose .py files are read; the parent is the base


def _spdx(text: str) -> str | None:
    text = text.strip()
    if not text or len(text) > 100 or "\n" in text:  # a whole licence text pasted in
        return None
    return _LICENCE_NAMES.get(text.lower(), text)


def licence_of(metadata: importlib.metadata.PackageMetadata) -> str | None:
    """The distribution's licence as an SPDX expression, or None if its metadata names none."""
    expression = metadata["License-Expression"]
    if expression and expression.strip():
        return expression.strip()
    field = _spdx(metadata["License"] or "")
    if field and field.upper() not in ("UNKNOWN", "DUAL LICENSE"):
        return field
    found = [
        _LICENCE_NAMES.get(c[len(_CLASSIFIER_PREFIX) :].lower(), c[len(_CLASSIFIER_PREFIX) :])
        for c in metadata.get_all("Classifier") or []
        if c.startswith(_CLASSIFIER_PREFIX)
    ]
    return " OR ".join(dict.fromkeys(found)) if found else None


def is_permissive(expression: str | None) -> bool:
    """True when the SPDX expression grants permissive terms (the rule in the module docstring)."""
    if not expression:
        return False
    text = re.sub(r"\s+WITH\s+\S+", "", re.sub(r"[()]", " ", expression))
    alternatives = re.split(r"\s+OR\s+", text)
    return any(
        all(term.strip() in PERMISSIVE_LICENCES for term in re.split(r"\s+AND\s+", alt.strip()))
        for alt in alternatives
        if alt.strip()
    )


def is_excluded(relpath: str) -> bool:
    """A path inside a vendored copy, or inside a project the evaluation uses."""
    parts = Path(relpath).parts
    return any(p in VENDORED_DIRS for p in parts[:-1]) or any(
        p.lower() in EVAL_PROJECTS for p in parts[:-1]
    )


def stdlib_source() -> Source:
    import platform

    root = Path(sysconfig.get_paths()["stdlib"])
    return Source("stdlib", platform.python_version(), "PSF-2.0", (root,))


def package_source(distribution: str, packages: tuple[str, ...]) -> Source:
    """The installed distribution's import packages; ValueError if its licence is refused."""
    dist = importlib.metadata.distribution(distribution)
    licence = licence_of(dist.metadata)
    if not is_permissive(licence):
        raise ValueError(f"{distribution}: licence {licence!r} is not on the permissive list")
    roots = tuple(
        Path(str(dist.locate_file(p))) for p in packages if Path(str(dist.locate_file(p))).is_dir()
    )
    return Source(distribution, dist.version, licence or "", roots)


def discover_sources(
    allowed: dict[str, tuple[str, ...]] | None = None,
) -> tuple[list[Source], dict[str, str]]:
    """The stdlib and every allowed distribution installed here; also why any were refused."""
    sources = [stdlib_source()]
    refused: dict[str, str] = {}
    for name, packages in (ALLOWED_PACKAGES if allowed is None else allowed).items():
        if name.lower() in EVAL_PROJECTS:
            refused[name] = "evaluated on"
            continue
        try:
            sources.append(package_source(name, packages))
        except importlib.metadata.PackageNotFoundError:
            refused[name] = "not installed"
        except ValueError as error:
            refused[name] = str(error)
    return sources, refused


def group_of(source: str, relpath: str) -> str:
    """The unit the validation split and the repository rows use: a top-level subpackage.

    `torch/nn/modules/linear.py` -> `torch/nn`; stdlib `asyncio/tasks.py` -> `stdlib/asyncio`;
    a module at the top (`torch/functional.py`, stdlib `json.py`) belongs to its package's root.
    """
    parts = Path(relpath).parts
    if source == "stdlib":
        head = parts[0].removesuffix(".py")
        if head == "test" and len(parts) > 2:  # the stdlib's tests: one group per test package
            return f"stdlib/test/{parts[1].removesuffix('.py')}"
        return f"stdlib/{head}"
    if len(parts) > 2:
        return f"{parts[0]}/{parts[1]}"
    return parts[0]


def iter_source_paths(source: Source) -> Iterator[tuple[str, Path]]:
    """(path relative to the package base, file) for each .py file not excluded, sorted."""
    for root in source.roots:
        base = root if source.name == "stdlib" else root.parent
        for path in sorted(root.rglob("*.py")):
            rel = path.relative_to(base).as_posix()
            if source.name == "stdlib" and ("site-packages" in rel or "dist-packages" in rel):
                continue
            if is_excluded(rel):
                continue
            yield rel, path
