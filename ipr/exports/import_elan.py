"""ELAN time resolution: every annotation's (start, end) in media milliseconds, as ELAN shows it.

- Time slots without TIME_VALUE (unaligned boundaries inside a time subdivision or an
  Included_In chain) are placed as ELAN does: evenly between the nearest aligned slots of the
  chain of annotations that share them (three unaligned words under a 3 s parent get 1 s each).
- Reference annotations take their times from their parent: a symbolic subdivision splits the
  parent's interval evenly among its children in PREVIOUS_ANNOTATION order, a symbolic
  association has the parent's interval.
- The master media's TIME_ORIGIN (ms into the media where the annotations' time 0 lies) is added
  to every time.
Annotations whose times cannot be resolved are left out of the result (the caller names them).
"""

from __future__ import annotations

from lxml import etree


def time_origin(root: etree._Element) -> int:
    """TIME_ORIGIN of the first (master) MEDIA_DESCRIPTOR, 0 when absent or not a number."""
    media = root.find("HEADER/MEDIA_DESCRIPTOR")
    if media is None:
        return 0
    try:
        return int(media.get("TIME_ORIGIN", "0") or 0)
    except ValueError:
        return 0


def _slot_values(root: etree._Element) -> dict[str, int | None]:
    slots: dict[str, int | None] = {}
    for slot in root.iter("TIME_SLOT"):
        value = slot.get("TIME_VALUE")
        try:
            slots[slot.get("TIME_SLOT_ID", "")] = int(value) if value is not None else None
        except ValueError:
            slots[slot.get("TIME_SLOT_ID", "")] = None
    return slots


def _interpolate_chains(root: etree._Element, slots: dict[str, int | None]) -> dict[str, int]:
    """Values for unaligned slots, evenly spaced between the chain's aligned neighbours."""
    placed: dict[str, int] = {k: v for k, v in slots.items() if v is not None}
    for tier in root.iter("TIER"):
        nodes = tier.findall("ANNOTATION/ALIGNABLE_ANNOTATION")
        chain: list[str] = []
        for node in nodes + [None]:
            ref1 = None if node is None else node.get("TIME_SLOT_REF1", "")
            if chain and ref1 != chain[-1]:
                _fill(chain, placed)
                chain = []
            if node is None:
                break
            if not chain:
                chain.append(ref1)
            chain.append(node.get("TIME_SLOT_REF2", ""))
    return placed


def _fill(chain: list[str], placed: dict[str, int]) -> None:
    known = [i for i, slot in enumerate(chain) if slot in placed]
    for lo, hi in zip(known, known[1:], strict=False):
        if hi - lo < 2:
            continue
        a, b = placed[chain[lo]], placed[chain[hi]]
        for i in range(lo + 1, hi):
            placed.setdefault(chain[i], a + (b - a) * (i - lo) // (hi - lo))


def annotation_times(root: etree._Element) -> dict[str, tuple[int, int]]:
    """(start, end) in media ms of every annotation whose times can be resolved."""
    slots = _interpolate_chains(root, _slot_values(root))
    origin = time_origin(root)
    times: dict[str, tuple[int, int]] = {}
    refs: dict[str, etree._Element] = {}
    for node in root.iter("ALIGNABLE_ANNOTATION"):
        start = slots.get(node.get("TIME_SLOT_REF1", ""))
        end = slots.get(node.get("TIME_SLOT_REF2", ""))
        if start is not None and end is not None:
            times[node.get("ANNOTATION_ID", "")] = (start, end)
    # children of one parent on one tier, in PREVIOUS_ANNOTATION order (symbolic subdivisions)
    siblings: dict[tuple[str, str], list[str]] = {}
    for tier in root.iter("TIER"):
        for node in tier.iterfind("ANNOTATION/REF_ANNOTATION"):
            ann_id = node.get("ANNOTATION_ID", "")
            refs[ann_id] = node
            key = (tier.get("TIER_ID", ""), node.get("ANNOTATION_REF", ""))
            siblings.setdefault(key, []).append(ann_id)
    order: dict[str, tuple[int, int]] = {}
    for ids in siblings.values():
        after = {refs[i].get("PREVIOUS_ANNOTATION"): i for i in ids}
        first = [i for i in ids if not refs[i].get("PREVIOUS_ANNOTATION")]
        ordered: list[str] = []
        current = first[0] if len(first) == 1 else None
        while current is not None and current not in ordered:
            ordered.append(current)
            current = after.get(current)
        if len(ordered) != len(ids):
            ordered = ids  # no usable chain: document order (each its own share)
        for n, ann_id in enumerate(ordered):
            order[ann_id] = (n, len(ordered))

    def resolve(ann_id: str, depth: int = 0) -> tuple[int, int] | None:
        if ann_id in times:
            return times[ann_id]
        node = refs.get(ann_id)
        if node is None or depth > 50:
            return None
        parent = resolve(node.get("ANNOTATION_REF", ""), depth + 1)
        if parent is None:
            return None
        n, count = order.get(ann_id, (0, 1))
        if node.get("PREVIOUS_ANNOTATION") or count > 1:
            lo, hi = parent
            span = (lo + (hi - lo) * n // count, lo + (hi - lo) * (n + 1) // count)
        else:
            span = parent
        times[ann_id] = span
        return span

    for ann_id in refs:
        resolve(ann_id)
    return {k: (a + origin, b + origin) for k, (a, b) in times.items()}
