"""Shared helpers for the method tests: PAPI items (from the data mirror) and balanced subsets."""

from __future__ import annotations


def papi_items():
    """(known, heldout) PAPI items, or skip without the data mirror."""
    from conftest import mirror_or_skip

    mirror_or_skip()
    from persona import papi

    items = papi.items_by_number(papi.load_item_key())
    split = papi.load_split()
    return [items[n] for n in split.known], [items[n] for n in split.heldout]


def per_domain(items, n):
    """The first ``n`` items of each domain (a small balanced subset)."""
    from persona.papi import DOMAINS

    return [i for d in DOMAINS for i in [x for x in items if x.domain == d][:n]]
