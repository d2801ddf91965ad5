"""Who can get a published release, and whom to ask: the words the card and Croissant use for them.

The access a card states must be the repo's real setting, so it is not written at build time: ``cxrsynth
push`` sets gating and visibility, reads them back from the Hub, and renders the card and Croissant with
what it read (:func:`access_of`); the card's front matter records it (``cxrsynth.access``) so that
``verify`` renders the same text. A release that was never pushed says so instead of claiming anything.

The contact (an email address or a web address for questions and takedown requests) is stored in the
manifest (``contact``): the data derive from real patients' X-rays, so someone who believes an image was
made from theirs needs a route to the maintainers, who keep the private link from each image to its source.
"""

from __future__ import annotations

import re
from typing import Literal

from ...core.errors import ConfigError

Access = Literal["manual", "auto", "public", "private"]
ACCESS = ("manual", "auto", "public", "private")

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
_URL = re.compile(r"https?://[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}(:\d+)?(/[^\s<>\"'`|]*)?")


def access_of(private: bool | None, gated) -> Access:
    """The access a repo gives, from its visibility and gating as the Hub reports them."""
    if private:
        return "private"
    return gated if gated in ("manual", "auto") else "public"


def check_contact(value: str) -> str:
    """``value`` stripped, when it is an email address or an http(s) address; else a ConfigError."""
    text = (value or "").strip()
    if not (_EMAIL.fullmatch(text) or _URL.fullmatch(text)):
        raise ConfigError("the contact must be an email address or an http(s) web address", value,
                          "give where questions and takedown requests go, e.g. --contact data-team@example.org")
    return text


def access_paragraph(access: str | None) -> str:
    """The card's Access paragraph for the repo's real setting (None: not published yet)."""
    terms = "research use only, no attempt to re-identify anyone, and the licence"
    why = ("The images derive from real patients' X-rays and may be linkable to them (see the audit), so "
           "access is gated on the Hub")
    return {
        "manual": f"**Access.** {why}: requesters agree to {terms}, and the maintainers approve each request by hand.",
        "auto": f"**Access.** {why}: requesters agree to {terms} before they can download (approved automatically).",
        "public": ("**Access.** This repository is public and **not gated**: anyone can download the files without "
                   "agreeing to any terms (the maintainers chose this with `--public --gated off`). The images still "
                   f"derive from real patients' X-rays and may be linkable to them (see the audit): use them for {terms}."),
        "private": ("**Access.** This repository is private: only people the maintainers add can download it. They "
                    f"agree to {terms}."),
    }.get(access or "", "**Access.** This copy has not been published: the access a Hub repo gives is written here "
                        "when `cxrsynth push` publishes it (a new repo is gated, with requests approved by hand).")


def access_sentence(access: str | None) -> str:
    """One sentence for Croissant's ``rai:personalSensitiveInformation``."""
    return {"manual": "access is gated (each request approved by the maintainers)",
            "auto": "access is gated (requesters accept the terms; approved automatically)",
            "public": "access is not gated (public download)",
            "private": "the repository is private"}.get(access or "", "access is set when the release is published")


def contact_section(contact: str | None) -> str:
    """The card's "Contact and takedown" section."""
    if not contact:
        return ("No contact is recorded for this copy. `cxrsynth push --contact EMAIL-OR-URL` records one in the "
                "manifest before a version is published.")
    return (f"Questions, and requests to take images down, go to **{contact}**. If you believe an image was made "
            "from your own X-ray (or your patient's), say which source image it is: the maintainers keep the private "
            "link from each synthetic image to its source, so they can find the images made from it and leave them "
            "out of the next version, which then becomes `main`. A published version's tag never changes; ask us "
            "to make its repo private or to delete it when that is needed.")
