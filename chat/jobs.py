"""Detached generation jobs: an asyncio task per reply, independent of the request or socket that began it.

A job streams deltas from a provider and fans them out to the room's channel-layer group (every worker's
watchers) and to in-process listeners (the SSE response that started it). Reading and publishing are
separate: whatever has arrived since the last send goes out as one delta once the reader pauses (a
callback with the in-memory layer, which sends without waiting; a publisher task with any other), so frames
carry one token while the server keeps up and several when it falls behind (`seq` counts tokens, so it
may jump). The
partial text is flushed to the database at least every STREAM_FLUSH_SECONDS, and the job listens on its
own control channel so `stop` and `snapshot` requests reach it from any worker.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import time
import uuid
import weakref
from dataclasses import dataclass, field

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from chat import generation
from chat.broadcast import call_service, room_group
from chat.models import MessageStatus
from chatproject.tasks import cancel_and_wait
from models_mgmt.providers import ChatTurn, GenerationOptions, ModelInfo, ProviderError, Usage
from models_mgmt.registry import registry

logger = logging.getLogger(__name__)

# Jobs running in this process, by stream id. Strong references keep their tasks alive.
JOBS: dict[str, GenerationJob] = {}


@dataclass
class GenerationJob:
    stream_id: str
    message_id: str
    room_id: str
    user_id: int
    model: ModelInfo
    options: GenerationOptions
    turns: list[ChatTurn]
    control_channel: str = ""
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
    _pending: list[str] = field(default_factory=list)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _publisher_task: asyncio.Task | None = None
    _publish_soon: bool = False
    _consume_task: asyncio.Task | None = None
    _flush_task: asyncio.Task | None = None
    _closing: bool = False  # the helpers' loops end once it is set, even if their cancellation was swallowed

    @property
    def group(self) -> str:
        return room_group(self.room_id)

    @property
    def text(self) -> str:
        return "".join(self.parts)

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> asyncio.Task:
        """Schedule the job on the running loop; idempotent."""
        if self.task is None:
            JOBS[self.stream_id] = self
            self.task = asyncio.get_running_loop().create_task(self._run(), name=f"stream-{self.stream_id}")
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
        if self._consume_task is not None:
            self._consume_task.cancel()

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

    async def _publish(self, event: dict) -> None:
        for queue in tuple(self.listeners):
            queue.put_nowait(event)
        layer = get_channel_layer()
        if layer is not None:
            send_nowait = getattr(layer, "group_send_nowait", None)
            if send_nowait is not None:
                send_nowait(self.group, event, fresh=True)  # every event is built for its one send
            else:
                await layer.group_send(self.group, event)

    def _wake_publisher(self) -> None:
        """Have what was read sent once the reader pauses (it reads on while more is buffered)."""
        if self._publisher_task is not None:
            self._wake.set()
        elif not self._publish_soon:
            self._publish_soon = True
            asyncio.get_running_loop().call_soon(self._publish_pending_now)

    def _publish_pending_now(self) -> None:
        """With a layer that sends without waiting, a callback publishes: no task step per token."""
        self._publish_soon = False
        event = self._take_pending()
        if event is not None:
            for queue in tuple(self.listeners):
                queue.put_nowait(event)
            get_channel_layer().group_send_nowait(self.group, event, fresh=True)  # built here, never changed

    async def _publish_pending(self) -> None:
        """Send everything read since the last send as one delta."""
        event = self._take_pending()
        if event is not None:
            await self._publish(event)

    def _take_pending(self) -> dict | None:
        if not self._pending:
            return None
        delta = "".join(self._pending)
        from_seq = self.seq
        self.seq += len(self._pending)
        self._pending.clear()
        self.parts.append(delta)
        self.seqs.append(self.seq)
        self.lengths.append(self.lengths[-1] + len(delta))
        # `from_seq` lets a watcher notice a lost event (channel layers deliver at most once) and fill the gap.
        return {"type": "stream.token", "stream_id": self.stream_id, "from_seq": from_seq, "seq": self.seq,
                "delta": delta}

    async def _publisher(self) -> None:
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            await self._publish_pending()

    # --- helpers running beside the generation --------------------------------------------------------

    async def _control_loop(self, layer) -> None:
        """Serve stop and snapshot requests addressed to this job from any worker."""
        receiving = asyncio.ensure_future(layer.receive(self.control_channel))
        try:
            if not _keeps_undelivered(layer):
                # Pub/sub delivers only to subscribed channels: a stop sent before this job subscribed is
                # lost, but every stop also sets the database flag. Look at it once the subscription is out.
                await asyncio.sleep(CONTROL_SUBSCRIBE_SECONDS)
                if await database_sync_to_async(generation.stop_requested)(stream_id=self.stream_id):
                    self.request_stop()
            while not self._closing:
                message = await receiving
                receiving = asyncio.ensure_future(layer.receive(self.control_channel))
                await self._on_control(layer, message)
        finally:
            await cancel_and_wait([receiving])

    async def _on_control(self, layer, message: dict) -> None:
        kind = message.get("type")
        if kind == "stream.stop":
            self.request_stop()
        elif kind == "stream.snapshot" and message.get("reply_channel"):
            await layer.send(
                message["reply_channel"],
                {"type": "stream.snapshot", **self.snapshot(int(message.get("last_seq") or 0))},
            )

    async def _heartbeat_loop(self) -> None:
        """Keep the job visibly alive while it waits (e.g. queued behind another local generation)."""
        interval = max(1.0, settings.STREAM_HEARTBEAT_TIMEOUT_SECONDS / 3)
        while not self._closing:
            await asyncio.sleep(interval)
            if await database_sync_to_async(generation.heartbeat)(stream_id=self.stream_id):
                self.request_stop()

    def _maybe_flush(self) -> None:
        """At most one flush in flight, so a slow database never holds up the tokens."""
        if self._flush_task is not None and not self._flush_task.done():
            return
        self._flush_task = asyncio.get_running_loop().create_task(
            call_service(generation.save_partial, message_id=self.message_id, stream_id=self.stream_id,
                         text=self.text)
        )

    # --- the job -----------------------------------------------------------------------------------

    async def _consume(self, timings: dict) -> Usage:
        provider = registry.provider(self.model.provider)
        flush_every = settings.STREAM_FLUSH_SECONDS
        last_flush = time.monotonic()
        async for chunk in provider.stream_chat(model=self.model, messages=self.turns, options=self.options):
            if chunk.done:
                return chunk.usage
            if not chunk.delta:
                continue
            self._pending.append(chunk.delta)
            if timings["first"] is None:
                timings["first"] = time.monotonic()
                await self._publish_pending()  # the first token goes out at once, never batched
                self.first_token.set()
            else:
                self._wake_publisher()
                if _starts_busy():
                    await yield_to_starts()
                elif len(self._pending) >= 32:
                    await asyncio.sleep(0)  # a burst read from one buffer: let the publisher send some
            now = time.monotonic()
            if now - last_flush >= flush_every:
                last_flush = now
                self._maybe_flush()
        return Usage()

    async def _run(self) -> None:
        layer = get_channel_layer()
        helpers: list[asyncio.Task] = []
        if not hasattr(layer, "group_send_nowait"):  # a layer that waits to send: a task of its own publishes
            self._publisher_task = asyncio.create_task(self._publisher())
            helpers.append(self._publisher_task)
        timings: dict = {"start": time.monotonic(), "first": None}
        usage = Usage()
        error: ProviderError | None = None
        status = MessageStatus.COMPLETE
        try:
            if layer is not None and self.control_channel:
                helpers.append(asyncio.create_task(self._control_loop(layer)))
            helpers.append(asyncio.create_task(self._heartbeat_loop()))
            await self._publish(
                {"type": "stream.start", "stream_id": self.stream_id, "message_id": self.message_id,
                 "model": self.model.name}
            )
            self.turns = await fit_to_context(self.turns, self.model, self.options)
            self._consume_task = asyncio.create_task(self._consume(timings))
            try:
                usage = await self._consume_task
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
            self._closing = True
            self._wake.set()
            for helper in helpers:
                helper.cancel()
            await asyncio.shield(self._finish(status, usage, timings, error))
            await cancel_and_wait(helpers)  # again, for any that swallowed the first cancellation

    async def _finish(self, status: str, usage: Usage, timings: dict, error: ProviderError | None) -> None:
        self.first_token.set()
        try:
            await self._publish_pending()  # what was read is shown and stored, even on stop or error
        except Exception:  # noqa: BLE001
            logger.exception("could not publish the tail of stream %s", self.stream_id)
        self.status = status
        end = time.monotonic()
        first = timings["first"]
        ttft_ms = (first - timings["start"]) * 1000 if first is not None else None
        completion = usage.completion_tokens if usage.completion_tokens is not None else self.seq
        usage = Usage(prompt_tokens=usage.prompt_tokens, completion_tokens=completion)
        tps = completion / (end - first) if first is not None and end > first and completion else None
        try:
            if self._flush_task is not None:
                await asyncio.gather(self._flush_task, return_exceptions=True)
            await call_service(
                generation.finish_stream,
                stream_id=self.stream_id,
                message_id=self.message_id,
                room_id=self.room_id,
                text=self.text,
                status=status,
                usage=usage,
                ttft_ms=ttft_ms,
                tokens_per_second=tps,
                error=error.message if error else "",
            )
        except Exception:  # noqa: BLE001
            logger.exception("could not save the end of stream %s", self.stream_id)
        try:
            if error is not None:
                await self._publish(
                    {"type": "stream.error", "stream_id": self.stream_id, "code": error.code, "message": error.message}
                )
            await self._publish(
                {
                    "type": "stream.end",
                    "stream_id": self.stream_id,
                    "message_id": self.message_id,
                    "seq": self.seq,
                    "status": status,
                    "usage": {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens},
                    "timings": {
                        "time_to_first_token_ms": round(ttft_ms, 2) if ttft_ms is not None else None,
                        "tokens_per_second": round(tps, 2) if tps else None,
                        "total_ms": round((end - timings["start"]) * 1000, 2),
                    },
                }
            )
        finally:
            JOBS.pop(self.stream_id, None)


# How long a job's control-channel subscription is given before it checks for a stop that came earlier.
CONTROL_SUBSCRIBE_SECONDS = 0.05


def _keeps_undelivered(layer) -> bool:
    """Whether a message sent to a channel nobody is receiving yet waits for its receiver (the in-memory
    and list-based layers queue it; channels-redis's pub/sub layer drops it)."""
    from channels_redis.pubsub import RedisPubSubChannelLayer

    return not isinstance(layer, RedisPubSubChannelLayer)


def new_control_channel() -> str:
    """A channel of the job's own, addressable from every worker.

    Not a process-local name from `new_channel()`: with channels-redis every process-local channel of a
    worker shares one receive loop, so a job's control receive took part in the consumers' receives. With
    process-local names the WebSocket tests on Redis failed about one run in two (frames out of the order
    the tests expect); with these, none in ten. The cost is one pooled Redis connection per running job
    while it waits for a stop or snapshot request.
    """
    return f"stream.control.{uuid.uuid4().hex}"


def parse_options(raw: dict | None) -> GenerationOptions:
    """Sampling options from a validated request."""
    raw = raw or {}
    return GenerationOptions(
        temperature=float(raw.get("temperature", 0.7)),
        top_p=float(raw.get("top_p", 0.9)),
        top_k=int(raw.get("top_k", 40)),
        repeat_penalty=float(raw.get("repeat_penalty", 1.1)),
        max_tokens=int(raw.get("max_tokens") or settings.DEFAULT_MAX_TOKENS),
    )


TURN_OVERHEAD_TOKENS = 4  # a chat template's role markers around each turn
FIT_BATCH_TURNS = 32


def max_prompt_turns(model: ModelInfo) -> int:
    """More turns than this cannot fit the model's window (each costs at least its overhead, even one whose
    text counts no tokens), so a start reads no more of the branch than this."""
    return model.context_length // TURN_OVERHEAD_TOKENS + 1


async def fit_to_context(turns: list[ChatTurn], model: ModelInfo, options: GenerationOptions) -> list[ChatTurn]:
    """Drop the oldest turns (never the system prompt or the newest turn) until the prompt fits the window.

    Turns are counted newest first, a batch per provider call, and counting stops once the window is full:
    a long chat costs what fits in the window, not what the room holds (a 2,000-message room took 250 ms of
    the bundled model's thread when every turn was counted, one call each).
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


def create(*, started: generation.StartedGeneration, model: ModelInfo, options: GenerationOptions) -> GenerationJob:
    """A job for a begun generation, not yet started (so a caller can subscribe first)."""
    stream = started.stream
    return GenerationJob(
        stream_id=str(stream.pk),
        message_id=str(started.assistant.pk),
        room_id=str(stream.room_id),
        user_id=stream.user_id,
        model=model,
        options=options,
        turns=started.turns,
        control_channel=stream.control_channel,
    )


def launch(*, started: generation.StartedGeneration, model: ModelInfo, options: GenerationOptions) -> GenerationJob:
    """Start the job for a begun generation on the running loop."""
    job = create(started=started, model=model, options=options)
    job.start()
    return job


async def request_snapshot(*, control_channel: str, reply_channel: str, last_seq: int) -> None:
    layer = get_channel_layer()
    await layer.send(control_channel, {"type": "stream.snapshot", "reply_channel": reply_channel, "last_seq": last_seq})


class _Starts:
    """This worker's start slots, and how many starts are under way (waiting for a slot or holding one)."""

    def __init__(self) -> None:
        self.gate = asyncio.Semaphore(settings.STREAM_START_CONCURRENCY)
        self.under_way = 0
        self.idle = asyncio.Event()
        self.idle.set()


_starts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Starts] = weakref.WeakKeyDictionary()


def _starts_here() -> _Starts:
    loop = asyncio.get_running_loop()
    starts = _starts.get(loop)
    if starts is None:
        starts = _starts[loop] = _Starts()
    return starts


@contextlib.asynccontextmanager
async def start_slot():
    """At most STREAM_START_CONCURRENCY starts at a time per worker, each until its first token (or a short wait).

    asyncio runs ready work first come, first served, so fifty sends arriving together all advance step by
    step and all reach their first token at the very end. Admitting a few at a time lets the first ones
    finish early without making the last one later.
    """
    starts = _starts_here()
    starts.under_way += 1
    starts.idle.clear()
    try:
        async with starts.gate:
            yield
    finally:
        starts.under_way -= 1
        if not starts.under_way:
            starts.idle.set()


def _starts_busy() -> bool:
    starts = _starts.get(asyncio.get_running_loop())
    return starts is not None and starts.under_way > 0


async def yield_to_starts() -> None:
    """First tokens before later ones: while replies are starting, a running reply stops reading for up to
    STREAM_START_PRIORITY_MS. What it would have relayed meanwhile waits in the socket and goes out as one
    frame afterwards (as LLM servers run waiting prefills before further decode steps)."""
    if not _starts_busy() or settings.STREAM_START_PRIORITY_MS <= 0:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(_starts_here().idle.wait(), settings.STREAM_START_PRIORITY_MS / 1000)


async def until_first_token(job: GenerationJob, timeout: float = 0.05) -> None:
    """Hold a start slot until the job's first token, but never long: a slow backend must not block others."""
    try:
        await asyncio.wait_for(job.first_token.wait(), timeout)
    except TimeoutError:
        pass
