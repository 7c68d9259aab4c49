"""A compatible call's reply: started through the streaming seam, relayed, stopped when its caller leaves, and
counted against the API token that made it.

Unlike a room's reply, a compatible call does not outlive its request: a client that disconnects mid-stream
stops the job, and so the upstream request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from accounts.models import User
from chat.broadcast import call_service
from chat.streaming import Reply, start_completion
from chatproject.errors import ApiError
from compat.errors import provider_failure
from compat.services import record_usage
from models_mgmt.providers import ChatTurn, GenerationOptions
from ops.panic import ais_panicking, panic_refusal

logger = logging.getLogger(__name__)

# Runs whose caller left, kept referenced until their job has ended and their usage is counted.
DRAINING: set[asyncio.Task] = set()


@dataclass
class Outcome:
    """How a reply ended, as both APIs report it."""

    status: str
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # stop | length
    total_ns: int
    first_token_ns: int  # from the start to the first token: the prompt's evaluation, as far as it is seen


@dataclass
class CompletionRun:
    reply: Reply
    token_id: int | None
    max_tokens: int
    created: int = field(default_factory=lambda: int(time.time()))
    buffered: deque = field(default_factory=deque)
    parts: list[str] = field(default_factory=list)
    error: dict | None = None
    end: dict | None = None

    @classmethod
    async def begin(
        cls, *, user: User, token_id: int | None, turns: list[ChatTurn], model: str | None, options: GenerationOptions
    ) -> CompletionRun:
        """Start the reply and wait for its first output, so that a reply that fails before any text is
        answered with an error status rather than a stream that has already said 200."""
        reply = await start_completion(user=user, turns=turns, model=model, options=options)
        run = cls(reply=reply, token_id=token_id, max_tokens=options.max_tokens)
        while run.end is None:
            event = await run.read()
            run.buffered.append(event)
            if event["type"] == "stream.token":
                break
        if run.end is not None:
            failure = await run.failure()
            if failure is not None:
                raise failure
        return run

    @property
    def stream_id(self) -> str:
        return self.reply.job.stream_id

    @property
    def model(self) -> str:
        return self.reply.job.model.name

    async def read(self) -> dict:
        """The job's next event; its end is counted against the token once."""
        event = await self.reply.events.get()
        kind = event["type"]
        if kind == "stream.token":
            self.parts.append(event["delta"])
        elif kind == "stream.error":
            self.error = event
        elif kind == "stream.end" and self.end is None:
            self.end = event
            self.reply.job.unsubscribe(self.reply.events)
            await asyncio.shield(self.count_usage())  # counted even when the caller leaves at this moment
        return event

    async def events(self) -> AsyncIterator[dict]:
        """Every event to the end; a caller that leaves early stops the reply."""
        try:
            while self.buffered or self.end is None:
                yield self.buffered.popleft() if self.buffered else await self.read()
        finally:
            if self.end is None:
                self.abandon()

    def abandon(self) -> None:
        """Stop the job now; its end is still read (in the background) so the call's usage is counted."""
        self.reply.job.request_stop()
        task = asyncio.get_running_loop().create_task(self.drain())
        DRAINING.add(task)
        task.add_done_callback(DRAINING.discard)

    async def drain(self) -> None:
        while self.end is None:
            await self.read()

    async def collect(self) -> Outcome:
        """The whole reply, for a call that did not ask for a stream; a failed one raises its error."""
        async for _event in self.events():
            pass
        failure = await self.failure()
        if failure is not None:
            raise failure
        return self.outcome()

    async def count_usage(self) -> None:
        if self.token_id is None or self.end is None:
            return
        usage = self.end.get("usage") or {}
        try:
            await call_service(record_usage, token_id=self.token_id, model=self.model,
                               prompt_tokens=usage.get("prompt_tokens"),
                               completion_tokens=usage.get("completion_tokens"))
        except Exception:  # noqa: BLE001 - the caller has its reply; a lost count is logged, not raised
            logger.exception("could not count the usage of stream %s", self.stream_id)

    async def failure(self) -> ApiError | None:
        """Why an ended reply did not complete, as the error the call answers; None when it completed."""
        status = self.end["status"] if self.end else "error"
        if status == "complete":
            return None
        if self.error is not None:
            return provider_failure(self.error["code"], self.error["message"])
        if status == "cancelled" and await ais_panicking():
            return panic_refusal()
        if status == "cancelled":
            return ApiError("The reply was stopped before it finished.", code="reply_stopped", status_code=503)
        return ApiError("The server shut down before the reply finished.", code="interrupted", status_code=503)

    def outcome(self) -> Outcome:
        end = self.end or {}
        usage = end.get("usage") or {}
        timings = end.get("timings") or {}
        completion = usage.get("completion_tokens") or 0
        reason = self.reply.job.finish_reason
        if reason not in ("stop", "length"):
            reason = "length" if completion >= self.max_tokens else "stop"
        total_ns = int((timings.get("total_ms") or 0) * 1_000_000)
        first_ms = timings.get("time_to_first_token_ms")
        return Outcome(
            status=end.get("status", "error"), text="".join(self.parts), prompt_tokens=usage.get("prompt_tokens") or 0,
            completion_tokens=completion, finish_reason=reason, total_ns=total_ns,
            first_token_ns=int(first_ms * 1_000_000) if first_ms is not None else total_ns,
        )
