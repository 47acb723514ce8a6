"""Pause detection on synthetic signals: hysteresis, clicks, weak bursts, rumble."""

from __future__ import annotations

import numpy as np

from ipr.media.analysis import AUDIO_RATE, WINDOW_MS, AudioAnalyzer, detect_silences


def _envelope(*parts: tuple[int, float]) -> np.ndarray:
    """10 ms RMS windows: (duration_ms, level_dbfs) pieces in order."""
    return np.concatenate([np.full(ms // WINDOW_MS, 10 ** (db / 20)) for ms, db in parts])


def _close(found: list[tuple[int, int]], expected: list[tuple[int, int]]) -> bool:
    """Equal to within one 10 ms window (the 30 ms smoothing can move an edge by one)."""
    return len(found) == len(expected) and all(
        abs(a - c) <= WINDOW_MS and abs(b - d) <= WINDOW_MS
        for (a, b), (c, d) in zip(found, expected, strict=True)
    )


def _pcm(x: np.ndarray) -> bytes:
    return (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()


def test_pause_between_speech_found_exactly() -> None:
    rms = _envelope((1000, -15), (500, -55), (1000, -15))
    assert _close(detect_silences(rms), [(1000, 1500)])


def test_click_inside_a_pause_does_not_split_it() -> None:
    rms = _envelope((1000, -15), (300, -55), (20, -10), (300, -55), (1000, -15))
    assert _close(detect_silences(rms), [(1000, 1620)])


def test_short_loud_syllable_splits_a_pause() -> None:
    """A 60 ms burst at speech level is a word, unlike a weak 60 ms breath."""
    loud = _envelope((1000, -15), (300, -55), (60, -15), (300, -55), (1000, -15))
    assert _close(detect_silences(loud), [(1000, 1300), (1360, 1660)])
    weak = _envelope((1000, -15), (300, -55), (60, -40), (300, -55), (1000, -15))
    assert _close(detect_silences(weak), [(1000, 1660)])


def test_hysteresis_keeps_a_fading_pause_whole() -> None:
    """Noise hovering between the two thresholds neither starts nor ends a pause."""
    rms = _envelope((1000, -15), (300, -55), (200, -43), (300, -55), (1000, -15))
    # floor -55, speech -15: a pause starts below -45 and ends above -41.
    assert _close(detect_silences(rms), [(1000, 1800)])
    rms = _envelope((1000, -15), (300, -43), (1000, -15), (400, -55), (1000, -15))
    assert _close(detect_silences(rms), [(2300, 2700)])


def test_rumble_is_not_speech() -> None:
    """40 Hz handling rumble as loud as the voice leaves the pause intact (80 Hz high-pass)."""
    t = np.arange(4 * AUDIO_RATE) / AUDIO_RATE
    voice = 0.3 * np.sin(2 * np.pi * 220 * t)
    voice[AUDIO_RATE : 2 * AUDIO_RATE] = 0.001 * np.sin(2 * np.pi * 220 * t[:AUDIO_RATE])
    rumble = voice.copy()
    rumble[AUDIO_RATE : 2 * AUDIO_RATE] += 0.3 * np.sin(2 * np.pi * 40 * t[:AUDIO_RATE])
    found = {}
    for name, x in (("clean", voice), ("rumble", rumble)):
        audio = AudioAnalyzer()
        for chunk in range(0, len(x), 1234):  # odd chunk sizes: the filter state carries over
            audio.feed(_pcm(x[chunk : chunk + 1234]))
        audio.close()
        found[name] = detect_silences(audio.rms)
        assert audio.peak.max() > 0.29  # the waveform still shows the signal as recorded
    assert len(found["clean"]) == 1
    start, end = found["clean"][0]
    assert abs(start - 1000) <= 20 and abs(end - 2000) <= 20
    assert found["rumble"] == found["clean"]


def test_envelope_does_not_depend_on_how_the_pipe_chunks_the_pcm() -> None:
    """The analyser filters in blocks, whatever sizes the pipe hands over: 9.97 s of noisy
    speech-like audio fed whole, in odd 1234-byte pieces and in 2 KiB pipe-sized pieces gives
    the same envelope, window for window, including the partial last window."""
    rng = np.random.default_rng(7)
    t = np.arange(int(9.97 * AUDIO_RATE)) / AUDIO_RATE
    x = 0.3 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 0.4 * t) > 0)
    x += 0.01 * rng.standard_normal(len(t))
    data = _pcm(x)
    envelopes = []
    for size in (len(data), 1234, 2048):
        audio = AudioAnalyzer()
        for i in range(0, len(data), size):
            audio.feed(data[i : i + size])
        audio.close()
        envelopes.append((audio.rms, audio.peak))
    windows = -(-len(t) // (AUDIO_RATE * WINDOW_MS // 1000))
    assert len(envelopes[0][0]) == windows == 997
    for rms, peak in envelopes[1:]:
        np.testing.assert_array_equal(rms, envelopes[0][0])
        np.testing.assert_array_equal(peak, envelopes[0][1])
