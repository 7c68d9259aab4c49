"""Retrieval for replies: the room's most relevant file passages go into the prompt as numbered sources.

Only rooms with files pay anything (one indexed existence check otherwise). The question is embedded on the
embedding module's own thread, the search runs on the database thread, and the passages that make it into
the prompt are stored on the reply as its citations before the first token is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

from channels.db import database_sync_to_async
from django.conf import settings

from chat.broadcast import call_service
from chat.models import Message
from models_mgmt.embeddings import EmbeddingError, embedder
from models_mgmt.providers import ChatTurn, ModelInfo
from search.chunking import CHARS_PER_TOKEN
from search.models import Attachment, Document
from search.selectors import hybrid_search

INSTRUCTIONS = (
    "Passages from the files in this chat follow, numbered. Use them when they help answer the user's "
    "question, and cite them by number like [1]. If they do not help, answer without them."
)


@dataclass(frozen=True)
class Retrieval:
    system_text: str
    citations: list[dict]


def room_has_files(room_id) -> bool:
    return Attachment.objects.filter(room_id=room_id).exists()


def budget_for(model: ModelInfo, max_tokens: int) -> int:
    """Tokens the passages may take: the setting, at most half of what the reply leaves of the window."""
    return max(0, min(settings.RAG_CONTEXT_TOKENS, (model.context_length - max_tokens) // 2))


def retrieve(*, room_id, question: str, question_vector, budget_tokens: int) -> Retrieval | None:
    """The passages of the room's files most relevant to the question, within the budget; None if none is."""
    scope = Document.objects.filter(room_id=room_id, attachment__isnull=False)
    result = hybrid_search(scope=scope, query=question, limit=settings.RAG_MAX_CHUNKS * 2,
                           query_vector=question_vector)
    chosen, used = [], 0
    for hit in result.hits:
        if hit.similarity is None or hit.similarity < settings.RAG_MIN_SCORE:
            continue  # a passage that only shares a word with the question is not evidence
        cost = len(hit.document.text) // CHARS_PER_TOKEN + 8
        if used + cost > budget_tokens or len(chosen) >= settings.RAG_MAX_CHUNKS:
            continue
        chosen.append(hit)
        used += cost
    if not chosen:
        return None
    blocks, citations = [], []
    for number, hit in enumerate(chosen, start=1):
        document = hit.document
        where = f"page {document.page}" if document.page else f"lines {document.line_start}-{document.line_end}"
        blocks.append(f"[{number}] {document.attachment.name} ({where}):\n{document.text}")
        citations.append({
            "n": number, "file_id": str(document.attachment_id), "file_name": document.attachment.name,
            "chunk": document.ordinal, "page": document.page, "line_start": document.line_start,
            "line_end": document.line_end, "score": round(hit.similarity, 4),
        })
    return Retrieval(system_text=INSTRUCTIONS + "\n\n" + "\n\n".join(blocks), citations=citations)


def save_citations(*, message_id, citations: list[dict]) -> None:
    """The reply keeps the sources it was given, whatever becomes of the generation."""
    message = Message.objects.filter(pk=message_id).only("metadata").first()
    if message is not None:
        Message.objects.filter(pk=message_id).update(metadata={**(message.metadata or {}), "citations": citations})


async def augment(*, room_id: str, message_id: str, turns: list[ChatTurn], model: ModelInfo,
                  max_tokens: int) -> list[ChatTurn]:
    """The turns with the room's relevant passages added to the system prompt (unchanged when there are none)."""
    question = next((turn.content for turn in reversed(turns) if turn.role == "user"), "")
    budget = budget_for(model, max_tokens)
    if not room_id or not question or budget <= 0 or not await database_sync_to_async(room_has_files)(room_id):
        return turns
    try:
        vector = (await embedder.aembed([question]))[0]
    except EmbeddingError:
        return turns  # retrieval is a help, never a reason for a reply to fail
    found = await database_sync_to_async(retrieve)(room_id=room_id, question=question, question_vector=vector,
                                                   budget_tokens=budget)
    if found is None:
        return turns
    await call_service(save_citations, message_id=message_id, citations=found.citations)
    if turns and turns[0].role == "system":
        return [ChatTurn(role="system", content=turns[0].content + "\n\n" + found.system_text), *turns[1:]]
    return [ChatTurn(role="system", content=found.system_text), *turns]
