"""Retrieval for replies: the most relevant passages go into the prompt as numbered sources.

A reply draws on its room's files; on the files its question was sent with (`files` on `send_message`),
first and whatever their similarity; and, when the question asked for it (`search_all_rooms`), on the
messages and files of the asker's other readable rooms, found by the context engine's own scope. Rooms with
no files and questions that ask for nothing more pay one indexed query. The question is embedded on the
embedding module's own thread, the searches run on the database thread, and the passages that make it into
the prompt are stored on the reply as its citations before the first token is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Exists, OuterRef

from chat.broadcast import call_service
from chat.models import Message
from models_mgmt.embeddings import EmbeddingError, embedder
from models_mgmt.providers import ChatTurn, ModelInfo
from search.chunking import CHARS_PER_TOKEN
from search.models import Attachment, Document
from search.selectors import Hit, hybrid_search, readable_documents

INSTRUCTIONS = (
    "Numbered passages follow, from the files in this chat{others}. Use them when they help answer the "
    "user's question, and cite them by number like [1]. If they do not help, answer without them."
)
OTHER_ROOMS = " and from the user's other chats"
ATTACHED_ANY_SCORE = -1.0  # a file the user attached to the question is a source whatever its similarity


@dataclass(frozen=True)
class Plan:
    """What a reply's question asks its sources to be."""

    owner_id: int
    room_has_files: bool
    attached: list[str] = field(default_factory=list)
    all_rooms: bool = False


@dataclass(frozen=True)
class Retrieval:
    system_text: str
    citations: list[dict]


def room_has_files(room_id) -> bool:
    return Attachment.objects.filter(room_id=room_id).exists()


def plan_for(*, message_id) -> Plan | None:
    """The reply's room and question, in one query: None when there is nothing to look in."""
    row = (Message.objects.filter(pk=message_id)
           .annotate(has_files=Exists(Attachment.objects.filter(room_id=OuterRef("room_id"))))
           .values_list("room__owner_id", "has_files", "parent__metadata").first())
    if row is None:
        return None
    owner_id, has_files, asked = row
    asked = asked if isinstance(asked, dict) else {}
    attached = [str(item["id"]) for item in asked.get("files", []) if isinstance(item, dict) and "id" in item]
    plan = Plan(owner_id=owner_id, room_has_files=has_files, attached=attached,
                all_rooms=bool(asked.get("search_all_rooms")))
    return plan if plan.room_has_files or plan.all_rooms else None


def budget_for(model: ModelInfo, max_tokens: int) -> int:
    """Tokens the passages may take: the setting, at most half of what the reply leaves of the window."""
    return max(0, min(settings.RAG_CONTEXT_TOKENS, (model.context_length - max_tokens) // 2))


def _candidates(*, room_id, plan: Plan, question: str, question_vector) -> list[Hit]:
    """Attached files' passages first (best first), then the room's other files and, if asked, other rooms',
    by similarity; each list is ranked by the same hybrid search as the search box."""
    limit = settings.RAG_MAX_CHUNKS * 2
    first: list[Hit] = []
    if plan.attached:
        scope = Document.objects.filter(room_id=room_id, attachment_id__in=plan.attached)
        first = hybrid_search(scope=scope, query=question, limit=limit, query_vector=question_vector,
                              min_similarity=ATTACHED_ANY_SCORE).hits
    rest: list[Hit] = []
    if plan.room_has_files:
        scope = Document.objects.filter(room_id=room_id, attachment__isnull=False).exclude(
            attachment_id__in=plan.attached)
        rest += hybrid_search(scope=scope, query=question, limit=limit, query_vector=question_vector).hits
    if plan.all_rooms:
        owner = get_user_model().objects.get(pk=plan.owner_id)
        scope = readable_documents(owner).exclude(room_id=room_id)  # this room's talk is already in the prompt
        rest += hybrid_search(scope=scope, query=question, limit=limit, query_vector=question_vector).hits
    # A passage that only shares a word with the question is not evidence.
    rest = [hit for hit in rest if hit.similarity is not None and hit.similarity >= settings.RAG_MIN_SCORE]
    rest.sort(key=lambda hit: -(hit.similarity or 0.0))
    return first + rest


def _source(number: int, hit: Hit, room_id) -> tuple[str, dict]:
    """A passage's block in the prompt and its citation."""
    document = hit.document
    score = round(hit.similarity, 4) if hit.similarity is not None else None
    elsewhere = str(document.room_id) != str(room_id)
    citation: dict = {"n": number, "kind": "chunk" if document.attachment_id else "message", "score": score}
    if elsewhere:
        citation.update(room_id=str(document.room_id), room_name=document.room.name)
    if document.attachment_id:
        where = f"page {document.page}" if document.page else f"lines {document.line_start}-{document.line_end}"
        citation.update(file_id=str(document.attachment_id), file_name=document.attachment.name,
                        chunk=document.ordinal, page=document.page, line_start=document.line_start,
                        line_end=document.line_end,
                        link=f"/chat/{document.room_id}/?file={document.attachment_id}&chunk={document.ordinal}")
        label = f"{document.attachment.name} ({where})"
        if elsewhere:
            label += f', in the chat "{document.room.name}"'
    else:
        citation.update(message_id=str(document.message_id), role=document.role,
                        created_at=document.created_at.isoformat(),
                        link=f"/chat/{document.room_id}/?message={document.message_id}#message-{document.message_id}")
        label = f'the chat "{document.room.name}", {document.role} message of {document.created_at:%Y-%m-%d}'
    citation["label"] = label
    return f"[{number}] {label}:\n{document.text}", citation


def retrieve(*, room_id, plan: Plan, question: str, question_vector, budget_tokens: int) -> Retrieval | None:
    """The most relevant passages for the question, within the budget; None if none is relevant."""
    chosen, used, seen = [], 0, set()
    for hit in _candidates(room_id=room_id, plan=plan, question=question, question_vector=question_vector):
        cost = len(hit.document.text) // CHARS_PER_TOKEN + 16
        if hit.document.pk in seen or used + cost > budget_tokens or len(chosen) >= settings.RAG_MAX_CHUNKS:
            continue
        chosen.append(hit)
        seen.add(hit.document.pk)
        used += cost
    if not chosen:
        return None
    sources = [_source(number, hit, room_id) for number, hit in enumerate(chosen, start=1)]
    others = OTHER_ROOMS if any(str(hit.document.room_id) != str(room_id) for hit in chosen) else ""
    return Retrieval(system_text=INSTRUCTIONS.format(others=others) + "\n\n" + "\n\n".join(b for b, _ in sources),
                     citations=[citation for _, citation in sources])


def save_citations(*, message_id, citations: list[dict]) -> None:
    """The reply keeps the sources it was given, whatever becomes of the generation."""
    message = Message.objects.filter(pk=message_id).only("metadata").first()
    if message is not None:
        Message.objects.filter(pk=message_id).update(metadata={**(message.metadata or {}), "citations": citations})


async def augment(*, room_id: str, message_id: str, turns: list[ChatTurn], model: ModelInfo,
                  max_tokens: int) -> list[ChatTurn]:
    """The turns with the relevant passages added to the system prompt (unchanged when there are none)."""
    question = next((turn.content for turn in reversed(turns) if turn.role == "user"), "")
    budget = budget_for(model, max_tokens)
    if not room_id or not question or budget <= 0:
        return turns
    plan = await database_sync_to_async(plan_for)(message_id=message_id)
    if plan is None:
        return turns
    try:
        vector = (await embedder.aembed([question]))[0]
    except EmbeddingError:
        return turns  # retrieval is a help, never a reason for a reply to fail
    found = await database_sync_to_async(retrieve)(room_id=room_id, plan=plan, question=question,
                                                   question_vector=vector, budget_tokens=budget)
    if found is None:
        return turns
    await call_service(save_citations, message_id=message_id, citations=found.citations)
    if turns and turns[0].role == "system":
        return [ChatTurn(role="system", content=turns[0].content + "\n\n" + found.system_text), *turns[1:]]
    return [ChatTurn(role="system", content=found.system_text), *turns]
