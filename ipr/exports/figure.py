"""The dyad timeline as a figure: SVG by hand, PNG rasterised with OpenCV (already a dependency).

Both are drawn from one list of shapes so they match. A figure carries only pseudonymous codes,
codebook names and times, never free text, so it can be shared whatever `include_text` says.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from xml.sax.saxutils import escape, quoteattr

import cv2
import numpy as np

from ipr.exports import provenance
from ipr.exports.data import LANES, ExportMoment, RecordingContext

WIDTH = 1200
PNG_SCALE = 2  # 2400 px wide: sharp at a journal's full-page width
PNG_TEXT = 0.86  # OpenCV's pixel size runs larger than an SVG font-size
FONT = "sans-serif"
INK = "#222222"
MUTED = "#777777"
GRID = "#dddddd"
PAIR = "#999999"
LANE_COLOURS = {"therapist": "#4c78a8", "client": "#e45756"}
RESPONSE = "#7c3aed"  # responses after the reveal: violet diamonds, threaded to what they answer
LEFT, RIGHT = 120, 50
LANE_HEIGHT = 64


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    w: float
    h: float
    fill: str
    stroke: str | None = None


@dataclass(frozen=True)
class Line:
    x1: float
    y1: float
    x2: float
    y2: float
    stroke: str
    width: float = 1.0


@dataclass(frozen=True)
class Circle:
    cx: float
    cy: float
    r: float
    fill: str
    stroke: str = "#ffffff"


@dataclass(frozen=True)
class Polygon:
    points: tuple[tuple[float, float], ...]
    fill: str


@dataclass(frozen=True)
class Text:
    x: float
    y: float
    text: str
    size: float = 13
    fill: str = INK
    anchor: str = "start"  # start | middle | end
    bold: bool = False


Shape = Rect | Line | Circle | Polygon | Text


def _blend(colour: str, amount: float) -> str:
    """Mix a colour with white: a light fill without transparency, identical in SVG and PNG."""
    rgb = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    mixed = [round(255 - (255 - c) * amount) for c in rgb]
    return "#" + "".join(f"{c:02x}" for c in mixed)


def _tick_step(duration_ms: int) -> int:
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600):
        if duration_ms / (step * 1000) <= 10:
            return step * 1000
    return 7200 * 1000


def _clock(ms: int) -> str:
    seconds = ms // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _code_colours(ctx: RecordingContext) -> dict[str, str]:
    """Code key → its colour, for the codes whose colour is a hex colour (the last entry of a
    key wins, as in a dict of the codebook)."""
    colours = {c.key: c.colour for c in ctx.study.codebook}
    return {key: colour for key, colour in colours.items() if _is_hex(colour)}


def _colour_in(colours: dict[str, str], moment: ExportMoment) -> str:
    """The colour of a moment's first code that has one, else its lane's colour."""
    for code in moment.codes:
        if code in colours:
            return colours[code]
    return LANE_COLOURS[moment.lane]


def _diamond(cx: float, cy: float, r: float) -> Polygon:
    return Polygon(((cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)), RESPONSE)


def _is_hex(colour: str) -> bool:
    return (
        len(colour) == 7
        and colour.startswith("#")
        and all(c in "0123456789abcdefABCDEF" for c in colour[1:])
    )


Scene = tuple[int, int, list[Shape]]


def scene(ctx: RecordingContext) -> Scene:
    """Width, height and the shapes of the timeline figure, in SVG user units."""
    rec = ctx.recording
    moments = rec.sorted_moments()
    span_ms = max([1, rec.duration_ms] + [m.end_ms or m.t_ms for m in moments])
    plot_w = WIDTH - LEFT - RIGHT
    top = 70

    def x(ms: int) -> float:
        return LEFT + plot_w * ms / span_ms

    lane_y = {lane: top + i * (LANE_HEIGHT + 16) for i, lane in enumerate(LANES)}
    bottom = lane_y[LANES[-1]] + LANE_HEIGHT
    counts = {lane: sum(1 for m in moments if m.lane == lane) for lane in LANES}
    shapes: list[Shape] = [
        Rect(0, 0, 0, 0, "#ffffff"),  # placeholder replaced by the background below
        Text(LEFT, 28, f"{ctx.dyad.code} · {rec.session_label}", 18, bold=True),
        Text(
            LEFT,
            50,
            f"{ctx.dyad.therapist_code} (therapist) {counts['therapist']} moments · "
            f"{ctx.dyad.client_code} (client) {counts['client']} moments · "
            f"{len(rec.pairs)} matched",
            12,
            MUTED,
        ),
    ]
    for lane in LANES:
        y = lane_y[lane]
        shapes.append(Rect(LEFT, y, plot_w, LANE_HEIGHT, "#f7f7f7"))
        shapes.append(
            Text(
                LEFT - 12, y + LANE_HEIGHT / 2 - 2, ctx.lane_code(lane), 14, anchor="end", bold=True
            )
        )
        shapes.append(Text(LEFT - 12, y + LANE_HEIGHT / 2 + 14, lane, 11, MUTED, anchor="end"))
    for clip in rec.clips:
        if 0 < clip.start_ms < span_ms:
            shapes.append(Line(x(clip.start_ms), top - 6, x(clip.start_ms), bottom, GRID))

    mid = {lane: lane_y[lane] + LANE_HEIGHT / 2 for lane in LANES}
    by_id = {m.id: m for m in moments}
    for pair in rec.pairs:
        t, c = by_id.get(pair.therapist_moment_id), by_id.get(pair.client_moment_id)
        if t is not None and c is not None:
            shapes.append(Line(x(t.t_ms), mid["therapist"], x(c.t_ms), mid["client"], PAIR, 1.2))

    for moment in moments:
        answered = rec.answered(moment) if moment.responds_to_id is not None else None
        if answered is not None:
            shapes.append(
                Line(
                    x(moment.t_ms), mid[moment.lane], x(answered.t_ms), mid[answered.lane], RESPONSE
                )
            )
    colours = _code_colours(ctx)
    for moment in moments:
        colour = _colour_in(colours, moment)
        cy = mid[moment.lane]
        if moment.end_ms is not None and moment.end_ms > moment.t_ms:
            x0, x1 = x(moment.t_ms), x(moment.end_ms)
            shapes.append(Rect(x0, cy - 9, max(x1 - x0, 2.0), 18, _blend(colour, 0.35), colour))
            for peak in moment.peaks_ms:
                px = x(peak)
                shapes.append(Polygon(((px - 5, cy - 15), (px + 5, cy - 15), (px, cy - 8)), colour))
        if moment.phase == "response":
            shapes.append(_diamond(x(moment.t_ms), cy, 7.0))
        else:
            shapes.append(Circle(x(moment.t_ms), cy, 5.5, colour))

    axis_y = bottom + 10
    shapes.append(Line(LEFT, axis_y, LEFT + plot_w, axis_y, INK))
    step = _tick_step(span_ms)
    for ms in range(0, span_ms + 1, step):
        shapes.append(Line(x(ms), axis_y, x(ms), axis_y + 5, INK))
        shapes.append(Text(x(ms), axis_y + 20, _clock(ms), 11, anchor="middle"))
    shapes.append(Text(LEFT + plot_w, axis_y + 38, "time (h:mm:ss)", 11, MUTED, anchor="end"))

    legend_y = axis_y + 60
    used = {code for m in moments for code in m.codes}
    entries = [
        (c.name, c.colour) for c in ctx.study.codebook if c.key in used and _is_hex(c.colour)
    ]
    uncoded = {m.lane for m in moments if _colour_in(colours, m) == LANE_COLOURS[m.lane]}
    entries += [(f"{lane} (no code)", LANE_COLOURS[lane]) for lane in LANES if lane in uncoded]
    if any(m.phase == "response" for m in moments):
        entries.append(("response after the reveal (not counted)", RESPONSE))
    lx = float(LEFT)
    for name, colour in entries:
        marker = _diamond(lx + 5, legend_y - 4, 6.0) if colour == RESPONSE else None
        shapes.append(marker or Circle(lx + 5, legend_y - 4, 5, colour))
        shapes.append(Text(lx + 15, legend_y, name, 11))
        lx += 30 + 6.5 * len(name)
        if lx > WIDTH - 150:
            lx = float(LEFT)
            legend_y += 20
    height = int(legend_y + 20)
    shapes[0] = Rect(0, 0, WIDTH, height, "#ffffff")
    return WIDTH, height, shapes


def _num(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def to_svg(ctx: RecordingContext, *, include_text: bool = True) -> bytes:
    """The timeline as a standalone SVG (include_text has no effect: figures carry no free text)."""
    return svg_of(ctx, scene(ctx))


def svg_of(ctx: RecordingContext, drawn: Scene) -> bytes:
    """`to_svg` of a scene already made (the bundle makes each scene once for both figures)."""
    width, height, shapes = drawn
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="{FONT}">',
        # The provenance as JSON in <metadata> (ipr.exports.provenance.document).
        "<metadata>"
        + escape(json.dumps(provenance.document(ctx.study, recording_id=ctx.recording.id)))
        + "</metadata>",
    ]
    for s in shapes:
        if isinstance(s, Rect):
            stroke = f' stroke="{s.stroke}"' if s.stroke else ""
            out.append(
                f'<rect x="{_num(s.x)}" y="{_num(s.y)}" width="{_num(s.w)}" '
                f'height="{_num(s.h)}" fill="{s.fill}"{stroke}/>'
            )
        elif isinstance(s, Line):
            out.append(
                f'<line x1="{_num(s.x1)}" y1="{_num(s.y1)}" x2="{_num(s.x2)}" y2="{_num(s.y2)}" '
                f'stroke="{s.stroke}" stroke-width="{_num(s.width)}"/>'
            )
        elif isinstance(s, Circle):
            out.append(
                f'<circle cx="{_num(s.cx)}" cy="{_num(s.cy)}" r="{_num(s.r)}" fill="{s.fill}" '
                f'stroke="{s.stroke}"/>'
            )
        elif isinstance(s, Polygon):
            points = " ".join(f"{_num(px)},{_num(py)}" for px, py in s.points)
            out.append(f'<polygon points="{points}" fill="{s.fill}"/>')
        else:
            weight = ' font-weight="bold"' if s.bold else ""
            out.append(
                f'<text x="{_num(s.x)}" y="{_num(s.y)}" font-size="{_num(s.size)}" '
                f'fill="{s.fill}" text-anchor={quoteattr(s.anchor)}{weight}>{escape(s.text)}</text>'
            )
    out.append("</svg>")
    return ("\n".join(out) + "\n").encode("utf-8")


def _bgr(colour: str) -> tuple[int, int, int]:
    return int(colour[5:7], 16), int(colour[3:5], 16), int(colour[1:3], 16)


_bgr_cached = cache(_bgr)

_ALIGN = {
    "start": cv2.PUT_TEXT_ALIGN_LEFT,
    "middle": cv2.PUT_TEXT_ALIGN_CENTER,
    "end": cv2.PUT_TEXT_ALIGN_RIGHT,
}
_SHIFT = 4  # sub-pixel precision bits for OpenCV's anti-aliased drawing


def to_png(ctx: RecordingContext, *, include_text: bool = True) -> bytes:
    """The same figure rasterised at `PNG_SCALE` × the SVG size."""
    return png_of(scene(ctx))


def png_of(drawn: Scene) -> bytes:
    """`to_png` of a scene already made: the same OpenCV calls in the same order."""
    width, height, shapes = drawn
    k = PNG_SCALE
    img = np.full((height * k, width * k, 3), 255, np.uint8)
    font = cv2.FontFace("sans")
    aa = cv2.LINE_AA
    bgr = _bgr_cached

    def p(x: float, y: float) -> tuple[int, int]:
        return round(x * k * (1 << _SHIFT)), round(y * k * (1 << _SHIFT))

    for s in shapes:
        kind = type(s)  # the most frequent shapes first: one circle per moment
        if kind is Circle:
            radius = round(s.r * k * (1 << _SHIFT))
            cv2.circle(img, p(s.cx, s.cy), radius, bgr(s.fill), -1, aa, _SHIFT)
            cv2.circle(img, p(s.cx, s.cy), radius, bgr(s.stroke), k, aa, _SHIFT)
        elif kind is Rect:
            cv2.rectangle(img, p(s.x, s.y), p(s.x + s.w, s.y + s.h), bgr(s.fill), -1, aa, _SHIFT)
            if s.stroke:
                cv2.rectangle(
                    img, p(s.x, s.y), p(s.x + s.w, s.y + s.h), bgr(s.stroke), k, aa, _SHIFT
                )
        elif kind is Polygon:
            pts = np.array([p(px, py) for px, py in s.points], np.int32)
            cv2.fillPoly(img, [pts], bgr(s.fill), aa, _SHIFT)
        elif kind is Line:
            thickness = max(1, round(s.width * k))
            cv2.line(img, p(s.x1, s.y1), p(s.x2, s.y2), bgr(s.stroke), thickness, aa, _SHIFT)
        else:
            org = (round(s.x * k), round(s.y * k))
            weight = 700 if s.bold else 400
            cv2.putText(
                img,
                s.text,
                org,
                bgr(s.fill),
                font,
                round(s.size * k * PNG_TEXT),
                weight,
                _ALIGN[s.anchor],
            )
    # The "up" filter suits rows of flat colour: the fastest to encode and the smallest file.
    ok, encoded = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP])
    if not ok:
        raise RuntimeError("OpenCV could not encode the timeline figure as PNG")
    return encoded.tobytes()
