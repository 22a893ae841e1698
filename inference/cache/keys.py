"""What the exact layer is keyed on, and which files are never cached.

The exact key is a hash of everything that decides the model's answer: the model's fingerprint,
the generation settings and the prompt's token ids. Sampling without a seed has no reproducible
answer, so it has no key. Exclusion globs are checked on every keystroke, so they are compiled
into one regex per kind (file name, whole path) and kept.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import json
import re
from array import array
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from inference.scheduler import GenerationRequest

CACHE_FORMAT = 1  # part of every exact key: a format change must not reuse old entries


def exact_key(fingerprint: str, request: GenerationRequest) -> str | None:
    """The exact-cache key of a request, or None when its answer is not reproducible.

    Sampling without a seed gives a different text each time: there is nothing to cache.
    """
    if request.temperature > 0 and request.seed is None:
        return None
    settings: dict[str, object] = {
        "max_new_tokens": request.max_new_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "seed": request.seed,
        "stop_token_ids": sorted(request.stop_token_ids),
        "stop_strings": list(request.stop_strings),
    }
    if request.forced_prefix:  # only then: the keys of unforced requests stay as they were
        settings["forced_prefix"] = request.forced_prefix
    if request.space_then_word:
        settings["space_then_word"] = True
    if request.ngram_sources:  # the user's code moved the answer: not the model's alone
        settings["mixed"] = True
    digest = hashlib.sha256()
    digest.update(f"flashcode-exact-{CACHE_FORMAT}\0{fingerprint}\0".encode())
    digest.update(json.dumps(settings, sort_keys=True).encode())
    digest.update(b"\0")
    digest.update(array("I", request.prompt_ids).tobytes())
    return digest.hexdigest()


def excluded(path: str, globs: Iterable[str]) -> bool:
    """True for a file that must never be cached: its name or path matches one of `globs`.

    A glob without a slash is matched against the file name (`*.pem`, `.env`, `*secret*`), a
    glob with one against the whole path (`**/private/*`), case-insensitively.
    """
    by_name, by_path = _glob_regexes(tuple(globs))
    whole = path.removeprefix("file://").replace("\\", "/").lower()
    name = whole.rsplit("/", 1)[-1]
    return bool((by_name and by_name.match(name)) or (by_path and by_path.match(whole)))


@functools.lru_cache(maxsize=32)
def _glob_regexes(globs: tuple[str, ...]) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
    # Checked on every keystroke: one compiled regex per kind instead of fnmatch per glob.
    names = [fnmatch.translate(g.lower()) for g in globs if "/" not in g]
    paths = [fnmatch.translate(p) for g in globs if "/" in g for p in (g.lower(), "*/" + g.lower())]
    return (
        re.compile("|".join(names)) if names else None,
        re.compile("|".join(paths)) if paths else None,
    )
