"""The Gemini analyzer: google-genai's async streaming call with our own resilience around it.

* **Transport.** The SDK is handed our own ``httpx.AsyncClient`` (so it never switches to
  aiohttp) and a per-read timeout in milliseconds; its own retries are off (no
  ``retry_options``) because ours below know about streaming.
* **Retries.** 429, 5xx, connection errors and idle timeouts are retried up to
  ``gemini_retries`` times with exponential backoff and jitter — but only while nothing has
  been streamed to the client yet: once partials went out, a restart would replay them, so a
  failure then is ``model_unavailable`` (temporary) at once. Other 4xx are ``model_error``.
* **Idle timeout.** ``asyncio.timeout(gemini_timeout)`` around every ``__anext__`` (the first
  one sends the request): a model that stalls mid-stream fails instead of hanging.
* **Safety.** The SDK raises nothing for a blocked prompt or answer; ``prompt_feedback.
  block_reason`` and a candidate ``finish_reason`` of SAFETY & co. become ``blocked``.
* **Output.** Every chunk's text is a slice of one JSON document (``response_mime_type``
  JSON with the pydantic model as ``response_schema``); each becomes a partial with the best
  parse so far, and the whole is validated against the model at the end (``model_error``).
* **Concurrency.** One process-wide semaphore (``gemini_concurrency``) bounds calls in flight;
  it is not held while backing off.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping
from typing import Any

import httpx
import pydantic_core
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from synthia_rt import i18n
from synthia_rt.analysis import quiz
from synthia_rt.analysis.analyzer import AnalyzerOutput, PartialSink
from synthia_rt.analysis.models import RESULT_MODELS, validate_result
from synthia_rt.analysis.partial import PartialJSON
from synthia_rt.analysis.prompts import (
    FACIAL_PROMPT,
    PROMPT_VERSION,
    SYSTEM_INSTRUCTION,
    chromatic_prompt,
    language_instruction,
)
from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.settings import Settings
from synthia_rt.uploads.validate import ValidatedImage

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
BLOCKING_FINISH = frozenset(
    {"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "IMAGE_SAFETY", "RECITATION"}
)
MAX_BACKOFF = 10.0


class _Attempt:
    """What one streaming attempt produced so far."""

    def __init__(self) -> None:
        self.parser = PartialJSON()
        self.usage: dict[str, Any] = {}
        self.emitted = False


def _name(value: object) -> str:
    return str(getattr(value, "value", value) or "")


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, genai_errors.APIError):
        return exc.code in RETRYABLE_STATUS
    return isinstance(exc, (httpx.TransportError, TimeoutError))


class GeminiAnalyzer:
    def __init__(self, settings: Settings, metrics: Any = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.model = settings.gemini_model
        self.prompt_version = PROMPT_VERSION
        self._semaphore = asyncio.Semaphore(settings.gemini_concurrency)
        self._http: httpx.AsyncClient | None = None
        self._sync_http: httpx.Client | None = None
        self._client: genai.Client | None = None

    async def start(self) -> None:
        idle = self.settings.gemini_timeout
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(idle, connect=min(idle, 10.0)))
        # Never used for requests; handed over so the SDK builds no HTTP client of its own.
        self._sync_http = httpx.Client(timeout=idle)
        self._client = genai.Client(
            api_key=self.settings.gemini_api_key,
            http_options=types.HttpOptions(
                base_url=self.settings.gemini_base_url or None,
                api_version="v1beta",
                timeout=int(idle * 1000),  # milliseconds, per read
                httpx_async_client=self._http,
                httpx_client=self._sync_http,
            ),
        )

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
        if self._sync_http is not None:
            self._sync_http.close()
        self._client = self._http = self._sync_http = None

    # -- the two analyses -------------------------------------------------------------------
    async def facial(self, image: ValidatedImage, on_partial: PartialSink) -> AnalyzerOutput:
        contents: list[Any] = [
            types.Part.from_bytes(data=image.data, mime_type=image.mime),
            FACIAL_PROMPT,
        ]
        return await self._generate("facial", contents, on_partial)

    async def chromatic(
        self, answers: Mapping[str, str], on_partial: PartialSink
    ) -> AnalyzerOutput:
        est = quiz.estimate(answers)
        hint = f"{est.subseason} (confidence {est.confidence})"
        return await self._generate(
            "chromatic", [chromatic_prompt(quiz.describe(answers), hint)], on_partial
        )

    # -- machinery ---------------------------------------------------------------------------
    async def _generate(
        self, kind: str, contents: list[Any], on_partial: PartialSink
    ) -> AnalyzerOutput:
        config = types.GenerateContentConfig(
            system_instruction=f"{SYSTEM_INSTRUCTION} {language_instruction(i18n.current())}",
            response_mime_type="application/json",
            response_schema=RESULT_MODELS[kind],
            temperature=0.2,
        )
        started = time.monotonic()
        retries = max(0, self.settings.gemini_retries)
        for attempt in range(retries + 1):
            state = _Attempt()
            try:
                async with self._semaphore:
                    await self._stream(contents, config, on_partial, state, started)
                break
            except AppError:
                raise
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - classified below; never shown to clients
                if not _retryable(exc):
                    log.error(
                        "model call failed: %s",
                        type(exc).__name__,
                        extra={"status": getattr(exc, "code", None)},
                    )
                    raise AppError(ErrorCode.MODEL_ERROR) from None
                if state.emitted or attempt == retries:
                    log.warning(
                        "model unavailable after %d attempt(s): %s", attempt + 1, type(exc).__name__
                    )
                    raise AppError(ErrorCode.MODEL_UNAVAILABLE) from None
                delay = min(
                    MAX_BACKOFF, self.settings.gemini_backoff * 2**attempt
                ) * random.uniform(0.5, 1.5)
                log.info("model call retry %d in %.2fs: %s", attempt + 1, delay, type(exc).__name__)
                await asyncio.sleep(delay)
        if self.metrics is not None:
            self.metrics.gemini_latency.observe(time.monotonic() - started)
        return AnalyzerOutput(self._final(kind, state.parser.text), self.model, state.usage)

    async def _stream(
        self,
        contents: list[Any],
        config: types.GenerateContentConfig,
        on_partial: PartialSink,
        state: _Attempt,
        started: float,
    ) -> None:
        assert self._client is not None, "GeminiAnalyzer.start() was not awaited"
        stream = await self._client.aio.models.generate_content_stream(
            model=self.model, contents=contents, config=config
        )
        chunks = aiter(stream)
        try:
            while True:
                async with asyncio.timeout(self.settings.gemini_timeout):
                    try:
                        chunk = await anext(chunks)
                    except StopAsyncIteration:
                        return
                delta = self._read_chunk(chunk, state)
                if delta:
                    if not state.emitted and self.metrics is not None:
                        self.metrics.gemini_first_partial.observe(time.monotonic() - started)
                    state.emitted = True
                    await on_partial(delta, state.parser.feed(delta))
        finally:
            await stream.aclose()  # type: ignore[attr-defined]  # releases the connection

    def _read_chunk(self, chunk: types.GenerateContentResponse, state: _Attempt) -> str:
        feedback = chunk.prompt_feedback
        if feedback is not None and feedback.block_reason:
            log.info("model blocked the prompt: %s", _name(feedback.block_reason))
            raise AppError(ErrorCode.BLOCKED)
        if chunk.usage_metadata is not None:
            state.usage = self._usage(chunk.usage_metadata)
        texts: list[str] = []
        for candidate in chunk.candidates or []:
            finish = _name(candidate.finish_reason)
            if finish in BLOCKING_FINISH:
                log.info("model blocked the answer: %s", finish)
                raise AppError(ErrorCode.BLOCKED)
            if finish == "MAX_TOKENS":
                raise AppError(ErrorCode.MODEL_ERROR, "The model's answer was cut off.")
            parts = candidate.content.parts if candidate.content else None
            texts.extend(p.text for p in parts or [] if p.text and not p.thought)
            break  # one candidate requested
        return "".join(texts)

    def _usage(self, meta: types.GenerateContentResponseUsageMetadata) -> dict[str, Any]:
        usage = {
            "prompt_tokens": meta.prompt_token_count or 0,
            "output_tokens": meta.candidates_token_count or 0,
            "thought_tokens": meta.thoughts_token_count or 0,
            "total_tokens": meta.total_token_count or 0,
        }
        return usage

    def _final(self, kind: str, text: str) -> dict[str, Any]:
        try:
            data = pydantic_core.from_json(text)
            if kind == "facial" and isinstance(data, dict) and data.get("face_found") is False:
                log.info("the model found no face")
                raise AppError(ErrorCode.NO_FACE_DETECTED)
            return validate_result(kind, data)
        except ValueError:  # pydantic's ValidationError is a ValueError too
            log.warning("model answer is not a valid %s result (%d chars)", kind, len(text))
            raise AppError(ErrorCode.MODEL_ERROR) from None
