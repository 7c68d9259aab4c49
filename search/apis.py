"""Thin HTTP views: search, the context engine (ane), embedding info, files in rooms, token counting."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from django.http import FileResponse
from drf_spectacular.utils import extend_schema
from rest_framework import parsers, permissions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat import selectors as chat_selectors
from chatproject.errors import ApiError
from chatproject.schema import error_response
from models_mgmt.embeddings import EmbeddingError, embedder
from models_mgmt.providers import ProviderError
from models_mgmt.registry import registry
from ops.panic import NotDuringPanic
from search import selectors, services
from search.selectors import SearchFilters
from search.serializers import (
    AneResultSerializer,
    AneSearchQuerySerializer,
    AneStatsSerializer,
    AttachmentSerializer,
    EmbeddingInfoSerializer,
    PassageSerializer,
    SearchQuerySerializer,
    SearchResultSerializer,
    TokenCountResultSerializer,
    TokenCountSerializer,
    UploadSerializer,
)

EMBEDDING_DOWN = error_response("The embedding engine is unavailable (code embedding_unavailable).")


def _embedding_guard(call):
    """Run `call`, turning an engine failure into a 503 JSON error."""
    try:
        return call()
    except EmbeddingError as exc:
        raise ApiError(exc.message, code=exc.code, status_code=exc.status) from exc


def _query_params(serializer_class, request: Request):
    data = serializer_class(data=request.query_params.dict())
    data.is_valid(raise_exception=True)
    return data


@extend_schema(tags=["chat"])
class SearchApi(APIView):
    @extend_schema(
        operation_id="chat_search_semantic",
        parameters=[SearchQuerySerializer],
        responses={200: SearchResultSerializer, 503: EMBEDDING_DOWN},
        description="Hybrid search over every message and file you can read (your rooms; as a founder, your "
                    "teams' rooms): full text and meaning, fused by reciprocal rank.",
    )
    def get(self, request: Request) -> Response:
        data = _query_params(SearchQuerySerializer, request)
        query = data.validated_data["q"]
        scope = selectors.readable_documents(request.user, data.filters())
        result = _embedding_guard(lambda: selectors.hybrid_search(
            scope=scope, query=query, limit=data.validated_data["limit"], mode=data.validated_data["mode"]))
        return Response(SearchResultSerializer({"query": query, "count": len(result.hits), "results": result.hits,
                                                "timings_ms": result.timings_ms}).data)


@extend_schema(tags=["chat"])
class AneSearchApi(APIView):
    @extend_schema(
        operation_id="chat_ane_search",
        parameters=[AneSearchQuerySerializer],
        responses={200: AneResultSerializer, 503: EMBEDDING_DOWN},
        description="The cross-room context engine: the messages and file chunks most relevant to a text, with "
                    "their whole text and scores, as replies use them.",
    )
    def get(self, request: Request) -> Response:
        data = _query_params(AneSearchQuerySerializer, request)
        values = data.validated_data
        scope = selectors.readable_documents(request.user, SearchFilters(room=values.get("room"),
                                                                         kind=values.get("kind")))
        result = _embedding_guard(lambda: selectors.hybrid_search(scope=scope, query=values["q"],
                                                                  limit=values["limit"]))
        return Response(AneResultSerializer({"query": values["q"], "count": len(result.hits),
                                             "results": result.hits, "timings_ms": result.timings_ms}).data)


@extend_schema(tags=["chat"])
class AneStatsApi(APIView):
    @extend_schema(operation_id="chat_ane_stats", responses={200: AneStatsSerializer, 503: EMBEDDING_DOWN})
    def get(self, request: Request) -> Response:
        stats = _embedding_guard(lambda: selectors.index_stats(request.user))
        return Response(AneStatsSerializer({**stats, "vector_index": "exact"}).data)


@extend_schema(tags=["chat"])
class EmbeddingInfoApi(APIView):
    @extend_schema(
        operation_id="chat_embedding_info",
        responses={200: EmbeddingInfoSerializer, 503: EMBEDDING_DOWN},
        description="The engine, model, device and dimension, with a throughput measured on this machine "
                    "(once per worker, on the first call).",
    )
    def get(self, request: Request) -> Response:
        return Response(EmbeddingInfoSerializer(_embedding_guard(embedder.info)).data)


@extend_schema(tags=["chat"])
class FileUploadApi(APIView):
    permission_classes = [permissions.IsAuthenticated, NotDuringPanic]
    parser_classes = [parsers.MultiPartParser, parsers.FormParser]

    @extend_schema(
        operation_id="chat_files_upload",
        request={"multipart/form-data": UploadSerializer},
        responses={
            201: AttachmentSerializer,
            413: error_response("Over UPLOAD_MAX_BYTES (code file_too_large)."),
            415: error_response("Not text, Markdown, code, CSV, JSON or PDF (code unsupported_file_type)."),
            422: error_response("The file yields no text (code no_text)."),
        },
        description="Add a file to the room: its text is extracted, chunked and embedded for search and for "
                    "the room's replies. A refused file leaves nothing behind.",
    )
    def post(self, request: Request, chat_id: str) -> Response:
        room = chat_selectors.get_room_for_write(user=request.user, room_id=chat_id)
        data = UploadSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        attachment = services.upload_attachment(user=request.user, room=room, uploaded=data.validated_data["file"])
        return Response(AttachmentSerializer(attachment).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["rooms"])
class RoomFilesApi(APIView):
    @extend_schema(operation_id="rooms_files_list", responses=AttachmentSerializer(many=True))
    def get(self, request: Request, room_id: str) -> Response:
        files = selectors.attachments_of_room(user=request.user, room_id=room_id)
        return Response(AttachmentSerializer(files, many=True).data)


@extend_schema(tags=["rooms"])
class RoomFileDetailApi(APIView):
    @extend_schema(operation_id="rooms_files_get", responses=AttachmentSerializer)
    def get(self, request: Request, room_id: str, file_id: str) -> Response:
        return Response(AttachmentSerializer(_file_in_room(request, room_id, file_id)).data)

    @extend_schema(operation_id="rooms_files_delete", responses={204: None})
    def delete(self, request: Request, room_id: str, file_id: str) -> Response:
        chat_selectors.get_room_for_write(user=request.user, room_id=room_id)
        services.delete_attachment(attachment=_file_in_room(request, room_id, file_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["rooms"])
class RoomFileContentApi(APIView):
    @extend_schema(operation_id="rooms_files_download", responses={(200, "application/octet-stream"): bytes})
    def get(self, request: Request, room_id: str, file_id: str):
        attachment = _file_in_room(request, room_id, file_id)
        return FileResponse(attachment.file.open("rb"), as_attachment=True, filename=attachment.name,
                            content_type="application/octet-stream")


@extend_schema(tags=["rooms"])
class RoomFilePassageApi(APIView):
    @extend_schema(operation_id="rooms_files_passage", responses=PassageSerializer,
                   description="One chunk of a file, as cited under a reply.")
    def get(self, request: Request, room_id: str, file_id: str, ordinal: int) -> Response:
        attachment = _file_in_room(request, room_id, file_id)
        return Response(PassageSerializer(selectors.chunk_of(attachment=attachment, ordinal=ordinal)).data)


def _file_in_room(request: Request, room_id: str, file_id: str):
    attachment = selectors.get_attachment_for_read(user=request.user, attachment_id=file_id)
    if str(attachment.room_id) != str(chat_selectors.room_id_or_404(room_id)):
        raise ApiError("File not found.", code="not_found", status_code=404)
    return attachment


@extend_schema(tags=["chat"])
class TokenCountApi(APIView):
    @extend_schema(
        operation_id="chat_tokens_count",
        request=TokenCountSerializer,
        responses={200: TokenCountResultSerializer, 503: error_response("The model's backend is down.")},
        description="Tokens of a text for the room's model: exact for local GGUF models (their own tokenizer), "
                    "an estimate for other providers (exact: false).",
    )
    def post(self, request: Request, chat_id: str) -> Response:
        room = chat_selectors.get_room_for_read(user=request.user, room_id=chat_id)
        data = TokenCountSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        name = data.validated_data.get("model") or room.model or None
        try:
            model = async_to_sync(registry.resolve)(name)
            provider = registry.provider(model.provider)
            count = async_to_sync(provider.count_tokens)(model=model, texts=[data.validated_data["text"]])[0]
        except ProviderError as exc:
            raise ApiError(exc.message, code=exc.code, status_code=exc.status) from exc
        return Response(TokenCountResultSerializer({
            "count": count, "exact": model.provider == "local", "model": model.name, "provider": model.provider,
            "context_length": model.context_length,
        }).data)
