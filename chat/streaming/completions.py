"""Stateless completions: a reply to a list of turns that stores no room and no message.

The OpenAI- and Ollama-compatible APIs start their replies here. A completion runs as the same detached job as
a room's reply, with a stream row of its own, so it shares the per-user limit, stop from any worker, the
heartbeat and recovery, panic's stop-all, and the metrics recorded when a job finishes.
"""

from __future__ import annotations

import asyncio
import contextlib

from accounts.models import User
from chat.broadcast import call_service
from chat.streaming import writes
from chat.streaming.jobs import GenerationJob, new_control_channel
from chat.streaming.priority import starting
from chat.streaming.replies import FIRST_TOKEN_PRIORITY_SECONDS, Reply
from chatproject.errors import ApiError
from chatproject.logs import request_id
from models_mgmt.providers import ChatTurn, GenerationOptions, ProviderError
from models_mgmt.registry import registry
from models_mgmt.selectors import amodel_defaults
from ops.panic import ais_panicking, arefuse_during_panic


async def start_completion(
    *, user: User, turns: list[ChatTurn], model: str | None, options: GenerationOptions
) -> Reply:
    """Begin a stateless reply to `turns` and run it detached; the caller gets every event from the start.

    `model` is a catalogue name (None: the default model). Refused with 423 during panic, 400 for an unknown
    model and 429 beyond the per-user limit of running replies.
    """
    await arefuse_during_panic()
    with starting():
        try:
            resolved = await registry.resolve(model or None)
        except ProviderError as exc:
            raise ApiError(exc.message, code=exc.code, status_code=exc.status) from exc
        # Staff's defaults for the model fill in what the caller left out.
        model_defaults = await amodel_defaults(resolved)
        resolved, options = model_defaults.capped(resolved), model_defaults.fill(options)
        turns = model_defaults.with_system_prompt(turns)
        stream = await call_service(
            writes.start_completion, user=user, model=resolved.name, control_channel=new_control_channel()
        )
        job = GenerationJob(
            stream_id=str(stream.pk), message_id="", room_id="", model=resolved, options=options, turns=turns,
            control_channel=stream.control_channel, request_id=request_id.get(),
        )
        reply = Reply(job=job, events=job.subscribe())
        job.start()
        if await ais_panicking():  # the switch went on while this start was committing: it stops at once
            job.request_stop()
        with contextlib.suppress(TimeoutError):  # counted as starting until its first token, but never long
            await asyncio.wait_for(job.first_token.wait(), FIRST_TOKEN_PRIORITY_SECONDS)
    return reply
