"""The one path a reply takes: start it, run it detached, fan it out, resume it, stop it.

The WebSocket consumer and the SSE view start a room's replies through `start_reply`; the OpenAI- and
Ollama-compatible APIs start stateless ones, on the same jobs, through `start_completion`.
"""

from chat.streaming.completions import start_completion
from chat.streaming.jobs import GenerationJob, fit_to_context, max_prompt_turns
from chat.streaming.replies import (
    Reply,
    RunningStream,
    ended_stream,
    local_snapshot,
    parse_options,
    request_snapshot,
    running_streams,
    start_reply,
    stop_replies,
    stored_text,
    typing_event,
)
from chat.streaming.writes import recover_at_startup, recover_interrupted_streams

__all__ = [
    "GenerationJob",
    "Reply",
    "RunningStream",
    "ended_stream",
    "fit_to_context",
    "local_snapshot",
    "max_prompt_turns",
    "parse_options",
    "recover_at_startup",
    "recover_interrupted_streams",
    "request_snapshot",
    "running_streams",
    "start_completion",
    "start_reply",
    "stop_replies",
    "stored_text",
    "typing_event",
]
