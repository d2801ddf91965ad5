"""A push tag checked against git's ref-name rules (``git check-ref-format``) before anything is sent.

The Hub stores a version as a git tag. ``push --tag '../../main'`` was accepted and made a tag of that name;
a real Hub may refuse it half-way, or a tool may read it as the branch ``main``. So a tag is refused, in one
line, when git would refuse it as ``refs/tags/<tag>``, and when it is a branch name of the repo (``main``)
or looks like a full ref (``refs/...``, ``HEAD``).
"""

from __future__ import annotations

import re

from ...core.errors import ConfigError

BRANCHES = ("main",)  # the Hub's default branch: a tag of that name would be read as it
# git check-ref-format: no control characters, space, ~ ^ : ? * [ or backslash; no "..", "@{" nor "//"
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//")


def tag_problem(tag: str) -> str | None:
    """Why ``tag`` is not a usable tag name (None: it is)."""
    if not tag:
        return "it is empty"
    if _FORBIDDEN.search(tag):
        return "it holds a character or sequence git refuses in a ref name (space, ~ ^ : ? * [ \\, '..', '@{', '//')"
    if tag.startswith(("/", "-")) or tag.endswith(("/", ".")) or tag == "@":
        return "it starts with '/' or '-', ends with '/' or '.', or is '@'"
    if any(part.startswith(".") or part.endswith(".lock") for part in tag.split("/")):
        return "a part of it starts with '.' or ends with '.lock'"
    if tag in BRANCHES or tag == "HEAD" or tag.startswith("refs/"):
        return "it is a branch name or a full ref, not a tag"
    return None


def check_tag(tag: str) -> str:
    why = tag_problem(tag)
    if why:
        raise ConfigError("not a usable tag name", tag, f"{why}; use a version such as v1.0.0")
    return tag
