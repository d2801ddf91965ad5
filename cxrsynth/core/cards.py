"""Rendering the cards in ``cards/`` (plain ``string.Template`` placeholders, ``${name}``). What goes into
each card is its stage's business: ``release/card.py`` (the dataset card), ``translate/card.py`` (a
translator's model card)."""

from __future__ import annotations

from string import Template

from .paths import resource_dir

CARDS_DIR = resource_dir("cards")


def render(template: str, values: dict) -> str:
    return Template((CARDS_DIR / template).read_text()).substitute({k: str(v) for k, v in values.items()})
