"""Detached generation jobs: an asyncio task per reply, independent of the request or socket that began it.

Tokens read while a send is under way go out together as one delta (`seq` counts tokens, so it may jump),
and each job listens on its own control channel so stop and snapshot requests reach it from any worker.
"""

from __future__ import annotations

import asyncio
import bisect
import contextvars
import functools
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels_redis.pubsub import RedisPubSubChannelLayer
from django.conf import settings

from chat.broadcast import call_service, room_group
from chat.models import MessageStatus
from chat.streaming import writes
from chat.streaming.priority import yield_to_starts
from chatproject.logs import bind_request_id
from chatproject.tasks import cancel_and_wait
from models_mgmt.providers import ChatTurn, GenerationOptions, ModelInfo, ProviderError, Usage
from models_mgmt.registry import registry
from ops import metrics, performance
from search import rag

logger = logging.getLogger(__name__)

# Jobs running in this process, by stream id. Strong references keep their tasks alive.
JOBS: dict[str, GenerationJob] = {}

# How long a job's control-channel subscription is given before it checks for a stop that came earlier.
CONTROL_SUBSCRIBE_SECONDS = 0.05

@dataclass
class GenerationJob:
    stream_id: str
    message_id: str
    room_id: str
    model: ModelInfo
    options: GenerationOptions
    turns: list[ChatTurn]
    control_channel: str = ""
    request_id: str = ""  # of the request or frame that started it, on every line the job logs
    # Published state: `seq` tokens, whose text is `parts`; seqs[i] tokens end at text offset lengths[i].
    seq: int = 0
    parts: list[str] = field(default_factory=list)
    seqs: list[int] = field(default_factory=lambda: [0])
    lengths: list[int] = field(default_factory=lambda: [0])
    status: str = MessageStatus.STREAMING
    listeners: set[asyncio.Queue] = field(default_factory=set)
    stop_requested: bool = False
    task: asyncio.Task | None = None
    first_token: asyncio.Event = field(default_factory=asyncio.Event)
    pending: list[str] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    consume_task: asyncio.Task | None = None
    flush_task: asyncio.Task | None = None
    closing: bool = False  # the helpers' loops end once it is set, even if their cancellation was swallowed
    finish_reason: str = ""  # the backend's `stop` or `length`, once it has said

    @property
    def group(self) -> str:
        return room_group(self.room_id)

    @property
    def text(self) -> str:
        return "".join(self.parts)

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> asyncio.Task:
        """Schedule the job on the running loop; idempotent.

        In a fresh context: the job outlives the request that started it, so it must not inherit that
        request's sync thread (asgiref's per-request thread, gone once the response is sent).
        """
        if self.task is None:
            JOBS[self.stream_id] = self
            self.task = asyncio.get_running_loop().create_task(
                self.run(), name=f"stream-{self.stream_id}", context=contextvars.Context()
            )
        return self.task

    def subscribe(self) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue()
        self.listeners.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self.listeners.discard(queue)

    def request_stop(self) -> None:
        """Cancel the provider call now; its iterator closes the upstream connection or thread."""
        if self.stop_requested or self.status != MessageStatus.STREAMING:
            return
        self.stop_requested = True
        if self.consume_task is not None:
            self.consume_task.cancel()

    def snapshot(self, last_seq: int = 0) -> dict:
        """Published text after `last_seq` and the current seq, for a client catching up."""
        index = bisect.bisect_right(self.seqs, max(0, last_seq)) - 1
        return {
            "stream_id": self.stream_id,
            "message_id": self.message_id,
            "model": self.model.name,
            "seq": self.seq,
            "offset": self.lengths[index],  # characters before `delta`
            "delta": self.text[self.lengths[index]:],
        }

    # --- publishing --------------------------------------------------------------------------------

    async def publish(self, event: dict) -> None:
        for queue in tuple(self.listeners):
            queue.put_nowait(event)
        layer = get_channel_layer()
        if layer is not None and self.room_id:  # a stateless completion has no room to tell
            await layer.group_send(self.group, event)

    def take_pending(self) -> dict | None:
        if not self.pending:
            return None
        delta = "".join(self.pending)
        from_seq = self.seq
        self.seq += len(self.pending)
        self.pending.clear()
        self.parts.append(delta)
        self.seqs.append(self.seq)
        self.lengths.append(self.lengths[-1] + len(delta))
        # `from_seq` lets a watcher notice a lost event (channel layers deliver at most once) and fill the gap.
        return {"type": "stream.token", "stream_id": self.stream_id, "from_seq": from_seq, "seq": self.seq,
                "delta": delta}

    async def publish_pending(self) -> None:
        """Send everything read since the last send as one delta."""
        event = self.take_pending()
        if event is not None:
            await self.publish(event)

    async def publisher(self) -> None:
        while not self.closing:
            await self.wake.wait()
            self.wake.clear()
            await self.publish_pending()

    # --- helpers running beside the generation --------------------------------------------------------

    async def control_loop(self, layer) -> None:
        """Serve stop and snapshot requests addressed to this job from any worker."""
        receiving = asyncio.ensure_future(layer.receive(self.control_channel))
        try:
            if isinstance(layer, RedisPubSubChannelLayer):
                # Pub/sub delivers only to subscribed channels: a stop sent before this job subscribed is
                # lost, but every stop also sets the database flag. Look at it once the subscription is out.
                await asyncio.sleep(CONTROL_SUBSCRIBE_SECONDS)
                if await database_sync_to_async(writes.stop_requested)(stream_id=self.stream_id):
                    self.request_stop()
            while not self.closing:
                message = await receiving
                receiving = asyncio.ensure_future(layer.receive(self.control_channel))
                await self.on_control(layer, message)
        finally:
            await cancel_and_wait([receiving])

    async def on_control(self, layer, message: dict) -> None:
        kind = message.get("type")
        if kind == "stream.stop":
            self.request_stop()
        elif kind == "stream.snapshot" and message.get("reply_channel"):
            await layer.send(
                message["reply_channel"],
                {"type": "stream.snapshot", **self.snapshot(int(message.get("last_seq") or 0))},
            )

    async def heartbeat_loop(self) -> None:
        """Keep the job visibly alive while it waits (e.g. queued behind another local generation)."""
        interval = max(1.0, settings.STREAM_HEARTBEAT_TIMEOUT_SECONDS / 3)
        while not self.closing:
            await asyncio.sleep(interval)
            if await database_sync_to_async(writes.heartbeat)(stream_id=self.stream_id):
                self.request_stop()

    def maybe_flush(self) -> None:
        """At most one flush in flight, so a slow database never holds up the tokens."""
        if not self.message_id:  # a stateless completion stores no text; its heartbeat keeps it alive
            return
        if self.flush_task is not None and not self.flush_task.done():
            return
        self.flush_task = asyncio.get_running_loop().create_task(
            database_sync_to_async(writes.save_partial)(message_id=self.message_id, stream_id=self.stream_id,
                                                        text=self.text)
        )

    # --- the job -----------------------------------------------------------------------------------

    async def consume(self, timings: dict) -> Usage:
        provider = registry.provider(self.model.provider)
        flush_every = settings.STREAM_FLUSH_SECONDS
        last_flush = time.monotonic()
        async for chunk in provider.stream_chat(model=self.model, messages=self.turns, options=self.options):
            if chunk.done:
                self.finish_reason = chunk.finish_reason
                return chunk.usage
            if not chunk.delta:
                continue
            self.pending.append(chunk.delta)
            if timings["first"] is None:
                timings["first"] = time.monotonic()
                await self.publish_pending()  # the first token goes out at once, never batched
                self.first_token.set()
            else:
                self.wake.set()
                await yield_to_starts()
            now = time.monotonic()
            if now - last_flush >= flush_every:
                last_flush = now
                self.maybe_flush()
        return Usage()

    async def run(self) -> None:
        bind_request_id(self.request_id)
        metrics.reply_started()
        layer = get_channel_layer()
        helpers = [asyncio.create_task(self.publisher()), asyncio.create_task(self.heartbeat_loop())]
        timings: dict = {"start": time.monotonic(), "first": None}
        usage = Usage()
        error: ProviderError | None = None
        status = MessageStatus.COMPLETE
        try:
            if layer is not None and self.control_channel:
                helpers.append(asyncio.create_task(self.control_loop(layer)))
            await self.publish({"type": "stream.start", "stream_id": self.stream_id, "message_id": self.message_id,
                                "model": self.model.name})
            if self.message_id:  # a room's reply: its files' relevant passages join the prompt, as sources
                self.turns = await rag.augment(room_id=self.room_id, message_id=self.message_id, turns=self.turns,
                                               model=self.model, max_tokens=self.options.max_tokens)
            self.turns = await fit_to_context(self.turns, self.model, self.options)
            if not getattr(registry.provider(self.model.provider), "reports_queue_wait", False):
                metrics.observe_queue_wait(provider=self.model.provider, seconds=time.monotonic() - timings["start"])
            self.consume_task = asyncio.create_task(self.consume(timings))
            if self.stop_requested:  # a stop that came while the prompt was being fitted
                self.consume_task.cancel()
            try:
                usage = await self.consume_task
            except asyncio.CancelledError:
                if not self.stop_requested:
                    raise
                status = MessageStatus.CANCELLED
        except ProviderError as exc:
            status, error = MessageStatus.ERROR, exc
        except asyncio.CancelledError:
            status = MessageStatus.INTERRUPTED  # the process is shutting down
        except Exception as exc:  # noqa: BLE001 - a job must never take the server down
            logger.exception("generation job %s failed", self.stream_id)
            status, error = MessageStatus.ERROR, ProviderError(f"Generation failed: {exc.__class__.__name__}")
        finally:
            self.closing = True
            self.wake.set()
            for helper in helpers:
                helper.cancel()
            await asyncio.shield(self.finish(status, usage, timings, error))
            await cancel_and_wait(helpers)  # again, for any that swallowed the first cancellation

    async def finish(self, status: str, usage: Usage, timings: dict, error: ProviderError | None) -> None:
        self.first_token.set()
        try:
            await self.publish_pending()  # what was read is shown and stored, even on stop or error
        except Exception:  # noqa: BLE001
            logger.exception("could not publish the tail of stream %s", self.stream_id)
        self.status = status
        end = time.monotonic()
        first = timings["first"]
        ttft_ms = (first - timings["start"]) * 1000 if first is not None else None
        completion = usage.completion_tokens if usage.completion_tokens is not None else self.seq
        usage = Usage(prompt_tokens=usage.prompt_tokens, completion_tokens=completion)
        tps = completion / (end - first) if first is not None and end > first and completion else None
        outcome = performance.ReplyOutcome(
            model=self.model.name, provider=self.model.provider, server=self.model.server, status=status,
            duration_s=end - timings["start"], ttft_s=ttft_ms / 1000 if ttft_ms is not None else None,
            tokens_per_second=tps, prompt_tokens=usage.prompt_tokens, completion_tokens=completion,
            error_code=error.code if error else "",
        )
        performance.observe_reply(outcome)  # before the end goes out, so a scrape after it counts this reply
        try:
            if self.flush_task is not None:
                await asyncio.gather(self.flush_task, return_exceptions=True)
            await call_service(
                writes.finish_stream, writers=end_writers(),
                stream_id=self.stream_id, message_id=self.message_id, room_id=self.room_id,
                text=self.text, status=status, usage=usage, ttft_ms=ttft_ms, tokens_per_second=tps,
                error=error.message if error else "", sample=outcome,  # stored before the end goes out
                finish_reason=self.finish_reason,
            )
        except Exception:  # noqa: BLE001
            logger.exception("could not save the end of stream %s", self.stream_id)
        try:
            if error is not None:
                await self.publish({"type": "stream.error", "stream_id": self.stream_id, "code": error.code,
                                    "message": error.message})
            await self.publish({
                "type": "stream.end",
                "stream_id": self.stream_id,
                "message_id": self.message_id,
                "seq": self.seq,
                "status": status,
                "finish_reason": writes.stored_finish_reason(status, self.finish_reason),
                "usage": {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens},
                "timings": {
                    "time_to_first_token_ms": round(ttft_ms, 2) if ttft_ms is not None else None,
                    "tokens_per_second": round(tps, 2) if tps else None,
                    "total_ms": round((end - timings["start"]) * 1000, 2),
                },
            })
        finally:
            JOBS.pop(self.stream_id, None)


@functools.cache
def end_writers() -> ThreadPoolExecutor:
    """The threads that write replies' ends: many replies ending at once (the panic switch stops them all) write
    side by side instead of queueing on the worker's one database thread behind each other."""
    return ThreadPoolExecutor(max_workers=settings.STREAM_END_WRITERS, thread_name_prefix="stream-end")


def new_control_channel() -> str:
    """A channel of the job's own, addressable from every worker (a stop may come from any of them)."""
    return f"stream.control.{uuid.uuid4().hex}"


TURN_OVERHEAD_TOKENS = 4  # a chat template's role markers around each turn
FIT_BATCH_TURNS = 32


def max_prompt_turns(model: ModelInfo) -> int:
    """More turns than this cannot fit the model's window (each costs at least its overhead), so a start reads
    no more of the branch than this."""
    return model.context_length // TURN_OVERHEAD_TOKENS + 1


async def fit_to_context(turns: list[ChatTurn], model: ModelInfo, options: GenerationOptions) -> list[ChatTurn]:
    """Drop the oldest turns (never the system prompt or the newest turn) until the prompt fits the window.

    Turns are counted newest first, a batch per provider call, and counting stops once the window is full:
    a long chat costs what fits in the window, not what the room holds.
    """
    provider = registry.provider(model.provider)
    budget = model.context_length - options.max_tokens - 32  # room for the chat template's own tokens
    if budget <= 0:
        raise ProviderError(
            f"max_tokens {options.max_tokens} leaves no room in the {model.context_length}-token context.",
            code="context_too_small",
            status=400,
        )
    system = turns[:1] if turns and turns[0].role == "system" else []
    history = turns[len(system):]
    end = len(history)
    batch = history[max(0, end - FIT_BATCH_TURNS):end]
    counts = await provider.count_tokens(model=model, texts=[turn.content for turn in system + batch])
    used = sum(counts[:len(system)]) + TURN_OVERHEAD_TOKENS * len(system)  # counted with the newest batch
    counts, kept = counts[len(system):], 0
    while True:
        for count in reversed(counts):
            if kept and used + count + TURN_OVERHEAD_TOKENS > budget:
                return system + history[len(history) - kept:]
            used += count + TURN_OVERHEAD_TOKENS
            kept += 1
        end -= len(batch)
        if end <= 0:
            return system + history
        batch = history[max(0, end - FIT_BATCH_TURNS):end]
        counts = await provider.count_tokens(model=model, texts=[turn.content for turn in batch])
