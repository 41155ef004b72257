"""The analyzer seam: one interface, two implementations chosen by ``settings.effective_analyzer``
(in :func:`synthia_rt.analysis.service.create_analyzer`; this module imports neither):

* :class:`synthia_rt.analysis.gemini.GeminiAnalyzer` — the model, streamed;
* :class:`synthia_rt.analysis.local.LocalAnalyzer` — OpenCV and rule tables, offline.

An analyzer turns a validated image (facial) or quiz answers (chromatic) into a result dict
that already passed :func:`synthia_rt.analysis.models.validate_result`, and reports progress
through ``on_partial(delta, partial)`` while it works. Failures are :class:`AppError`
(``no_face_detected``, ``blocked``, ``model_unavailable``, ``model_error``…).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from synthia_rt.uploads.validate import ValidatedImage

PartialSink = Callable[[str, dict[str, Any]], Awaitable[None]]


@dataclass(slots=True)
class AnalyzerOutput:
    result: dict[str, Any]
    model: str
    usage: dict[str, Any] = field(default_factory=dict)


class Analyzer(Protocol):
    model: str  # goes into cache keys and onto analysis rows
    prompt_version: str

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def facial(self, image: ValidatedImage, on_partial: PartialSink) -> AnalyzerOutput: ...
    async def chromatic(
        self, answers: Mapping[str, str], on_partial: PartialSink
    ) -> AnalyzerOutput: ...
