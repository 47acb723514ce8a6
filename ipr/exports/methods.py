"""The Methods export: a ready paragraph saying what was measured, how, and which software to cite.

A pure function of the export data (its provenance holds the parameters), so the UI, the API and
the CLI write the same text. The wording follows docs/timeline.md's definitions; numbers come
from the data, never from defaults the study did not use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ipr.exports import provenance
from ipr.exports.data import ExportStudy


def _n(count: int, one: str, many: str | None = None) -> str:
    return f"{count:,} {one if count == 1 else (many or one + 's')}"


def _seconds(ms: Any) -> str:
    if not isinstance(ms, int | float):
        return "an unrecorded"
    text = f"{ms / 1000:.3f}".rstrip("0").rstrip(".")
    return f"{text} s"


def _secs(value: Any) -> str:
    """Seconds from a parameter given in seconds: 30.0 → "30 s"."""
    return _seconds(value * 1000) if isinstance(value, int | float) else "an unrecorded"


def _param(params: Mapping[str, Mapping[str, Any]], group: str, name: str) -> Any:
    return params.get(group, {}).get(name)


def paragraph(data: ExportStudy) -> str:
    """The Methods paragraph for this study, dyad or recording export."""
    doc = provenance.document(data)
    params = doc["parameters"]
    sw = doc["software"]
    recordings = list(data.recordings())
    n_dyads = len({ctx.dyad.code for ctx in recordings})
    n_t = sum(1 for ctx in recordings for m in ctx.recording.moments if m.lane == "therapist")
    n_c = sum(1 for ctx in recordings for m in ctx.recording.moments if m.lane == "client")
    modes: dict[str, int] = {}
    for ctx in recordings:
        for info in ctx.recording.recall.values():
            mode = str(info.get("mode", ""))
            modes[mode] = modes.get(mode, 0) + 1
    mode_text = " and ".join(
        _n(k, f"{'self-guided' if mode == 'self' else 'researcher-led'} recall session")
        for mode, k in sorted(modes.items())
        if mode in ("self", "researcher")
    )
    coders = sorted(
        {c.coder for ctx in recordings for m in ctx.recording.moments for c in m.codings}
    )
    tolerance = _param(params, "matching", "tolerance_ms")
    n_shifts = _param(params, "chance_baseline", "n_shifts")
    seed = _param(params, "chance_baseline", "seed")
    bin_ms = _param(params, "time_unit_kappa", "bin_ms")
    scales = ", ".join(f"{s.name} ({s.min}-{s.max})" for s in data.scales)
    parts = [
        f"Therapist and client each watched the video recording of their session separately "
        f"(Interpersonal Process Recall) and stopped it wherever something mattered to them, "
        f"marking moments as points or as spans with optional peaks. The data comprise "
        f"{_n(len(recordings), 'session recording')} of {_n(n_dyads, 'dyad')}"
        + (f" ({mode_text})" if mode_text else "")
        + f", with {_n(n_t, 'therapist moment')} and {_n(n_c, 'client moment')}."
    ]
    if data.codebook or scales:
        names = ", ".join(c.name for c in data.codebook)
        coded = f", coded with a codebook of {_n(len(data.codebook), 'code')} ({names})"
        parts.append(
            "Moments were described in the participants' own words"
            + (coded if data.codebook else "")
            + (f" and rated on {scales}" if scales else "")
            + "."
        )
    parts.append(
        f"Moments of the two participants were paired by an optimal one-to-one matching (the "
        f"largest number of pairs, then the smallest total absolute lag), two moments being "
        f"eligible when the gap between them was at most {_seconds(tolerance)}. The headline "
        f"agreement figure is the co-marking rate, 2P / (n_T + n_C), the share of all moments "
        f"whose partner stopped within that tolerance, compared with a chance baseline in which "
        f"the client's moments were circularly shifted by a uniformly drawn offset "
        f"({_n(n_shifts or 0, 'shift')}, seed {seed}); the one-sided p-value is "
        f"(1 + number of shifts with at least as many pairs) / (1 + number of shifts)."
    )
    parts.append(
        f"For comparison we report the time-unit kappa (Cohen's kappa on marked versus "
        f"unmarked time bins; Bakeman & Quera) with {_seconds(bin_ms)} bins, together with its "
        f"observed and expected agreement; unlike co-marking it ignores the tolerance and "
        f"depends on the bin width."
    )
    if coders:
        parts.append(
            f"Researcher codes were kept per coder ({_n(len(coders), 'coder')}); agreement "
            f"between two coders of the same moments, and between a coder and the participant's "
            f"own codes, was computed per code with the same matching at {_seconds(tolerance)} "
            f"and the time-unit kappa at {_seconds(bin_ms)} bins."
        )
    followup = _followup(data, params.get("followup"), recordings)
    if followup:
        parts.append(followup)
    sync = params.get("synchrony")
    surr = params.get("synchrony_surrogates")
    if sync:
        text = (
            f"Nonverbal synchrony was measured as the windowed, lagged cross-correlation of the "
            f"two people's motion energy (as rMEA's MEAccf: {_secs(sync.get('window_s'))} "
            f"windows every {_secs(sync.get('step_s'))}, lags up to "
            f"±{_secs(sync.get('max_lag_s'))}, "
            f"{'absolute ' if sync.get('absolute') else ''}"
            f"{'Fisher-z' if sync.get('fisher_z') else 'Pearson r'} values averaged over "
            f"windows and lags)"
        )
        if surr:
            text += (
                f", compared with {surr.get('n')} surrogates in which each person's series was "
                f"cut into {_secs(surr.get('segment_s'))} segments and shuffled (seed "
                f"{surr.get('seed')})"
            )
        parts.append(text + ".")
    parts.append(
        f"All figures were computed with {sw['name']} version {sw['version']} (commit "
        f"{sw['commit']}); the export of {doc['exported_at']} lists every parameter and "
        f"figure."
    )
    return " ".join(parts)


def _followup(data: ExportStudy, fu: Mapping[str, Any] | None, recordings: list) -> str:
    """The follow-up pass (docs/followup.md): when, on which scales, completed by n of N, never
    in a figure. n of N counts participants (each lane's recall session, `recall.<lane>
    .followup` == "done"), or recall sessions when a participant has more than one."""
    if not fu:
        return ""
    delay = fu.get("delay_days")
    when = (
        "as soon as they had finished their recall"
        if delay == 0
        else f"{_n(delay, 'day')} after they had finished their recall"
        if isinstance(delay, int)
        else "some time after they had finished their recall"
    )
    names = {s.key: f"{s.name} ({s.min}-{s.max})" for s in data.scales}
    scales = [names[k] for k in fu.get("scales") or () if k in names]
    on = f" on {_and(scales)}" if scales else ""
    sessions = [
        (str(info.get("participant_code", "")), info.get("followup"))
        for ctx in recordings
        for info in ctx.recording.recall.values()
    ]
    codes = {code for code, _ in sessions}
    unit = "participants" if len(codes) == len(sessions) else "recall sessions"
    done = sum(1 for _, state in sessions if state == "done")
    return (
        f"In a follow-up pass scheduled {when}, participants rated their own blind-phase "
        f"moments again{on}, without seeing their first rating, and could add a comment; "
        f"{done:,} of {len(sessions):,} {unit} completed it. The follow-up ratings are "
        f"reported beside the first ratings and are not part of any agreement figure."
    )


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def to_methods(data: ExportStudy, *, include_text: bool = True) -> bytes:
    """Markdown: the paragraph, every definition, and the headline figures per recording."""
    del include_text  # holds no participant text either way
    doc = provenance.document(data)
    lines = [f"# Methods: {data.name}", "", paragraph(data), "", "## Definitions", ""]
    lines += [f"- **{name}**: {text}" for name, text in doc["definitions"].items()]
    lines += [
        "",
        "## Figures per recording",
        "",
        "| dyad | session | moments T/C | pairs | co-marking | chance (p) "
        "| time-unit kappa (obs./exp.) |",
        "|---|---|---|---|---|---|---|",
    ]
    for rec in doc["recordings"]:
        f = rec["figures"]
        lines.append(
            f"| {rec['dyad']} | {rec['session']} | {_fmt(f.get('n_therapist'))}/"
            f"{_fmt(f.get('n_client'))} | {_fmt(f.get('n_pairs'))} | "
            f"{_fmt(f.get('co_marking_rate'))} | {_fmt(f.get('chance_expected_rate'))} "
            f"({_fmt(f.get('chance_p_value'))}) | {_fmt(f.get('kappa'))} "
            f"({_fmt(f.get('kappa_observed'))}/{_fmt(f.get('kappa_expected'))}) |"
        )
    sw = doc["software"]
    lines += [
        "",
        f"Software: {sw['name']} {sw['version']}, commit {sw['commit']}; "
        f"exported {doc['exported_at']}.",
    ]
    return ("\n".join(lines) + "\n").encode()


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)
