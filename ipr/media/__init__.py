"""Media handling for session recordings: probe, playable copy, analysis and clips.

Plain Python (no Flask, no database); every failure is a MediaError with a researcher-facing
`message` and a short machine `code`.
"""

from ipr.media.analysis import DEFAULT_REGIONS, MotionEnergy, Region
from ipr.media.clips import cut_clip, extract_thumbnail, keyframes_ms, segment
from ipr.media.errors import (
    IngestCancelled,
    MediaError,
    ProbeError,
    ProcessingError,
    UnsupportedMedia,
)
from ipr.media.ingest import (
    AudioAnalysis,
    Clip,
    IngestResult,
    IngestSettings,
    analyze_audio,
    compute_motion_energy,
    ingest,
    qualifies_for_remux,
)
from ipr.media.probe import DEFAULT_LIMITS, Limits, ProbeResult, probe

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_REGIONS",
    "AudioAnalysis",
    "Clip",
    "IngestCancelled",
    "IngestResult",
    "IngestSettings",
    "Limits",
    "MediaError",
    "MotionEnergy",
    "ProbeError",
    "ProbeResult",
    "ProcessingError",
    "Region",
    "UnsupportedMedia",
    "analyze_audio",
    "compute_motion_energy",
    "cut_clip",
    "extract_thumbnail",
    "ingest",
    "keyframes_ms",
    "probe",
    "qualifies_for_remux",
    "segment",
]
