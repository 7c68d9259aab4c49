"""Thin HTTP views for rooms, projects, sessions and the chat contract's session endpoints."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, Q
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, permissions, renderers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat import selectors, services, transfer
from chat.serializers import (
    BranchMessageSerializer,
    BranchSwitchSerializer,
    ChatSessionCreateSerializer,
    ChatSessionSerializer,
    CountSerializer,
    FreshRoomSerializer,
    MessageSerializer,
    ProjectSerializer,
    ProjectUpdateSerializer,
    RatingSerializer,
    RoomCleanupQuerySerializer,
    RoomCreateSerializer,
    RoomImportSerializer,
    RoomListQuerySerializer,
    RoomSerializer,
    RoomWriteSerializer,
    SessionCreateSerializer,
    SessionResetSerializer,
    SessionSerializer,
    StopResultSerializer,
)
from chatproject.pagination import LimitOffsetPagination, paginate
from chatproject.schema import error_response
from ops.panic import NotDuringPanic

# Views that create chat content answer 423 while the panic switch is on.
CHAT_WORK = [permissions.IsAuthenticated, NotDuringPanic]


def _room_changes(user, validated: dict) -> dict:
    """Turn validated input into service arguments, resolving the project inside the user's scope."""
    changes = dict(validated)
    if "project" in changes and changes["project"] is not None:
        try:
            changes["project"] = selectors.get_project(user=user, project_id=changes["project"])
        except exceptions.NotFound as exc:
            raise exceptions.ValidationError({"project": ["No such project."]}) from exc
    return changes


ROOM_LIMIT = error_response("Your active-room limit is reached (code room_limit_reached).")

ROOM_LIST_PARAMETERS = [
    OpenApiParameter("sort", str, enum=list(selectors.ROOM_SORTS), description="Default -last_activity."),
    OpenApiParameter("archived", str, enum=["true", "false", "all"], description="Default false."),
    OpenApiParameter("pinned", bool),
    OpenApiParameter("tag", str),
    OpenApiParameter("project", str, description="Project id, or 'none' for rooms outside any project."),
    OpenApiParameter("q", str, description="Search names and last-message previews."),
    OpenApiParameter("team", int, description="Founders only: list every room of this team."),
]


@extend_schema(tags=["rooms"])
class RoomsApi(APIView):
    permission_classes = CHAT_WORK
    pagination_class = LimitOffsetPagination

    @extend_schema(operation_id="rooms_list", parameters=ROOM_LIST_PARAMETERS, responses=RoomSerializer(many=True))
    def get(self, request: Request) -> Response:
        params = RoomListQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        return paginate(self, request, selectors.rooms_list(user=request.user, params=params.validated_data),
                        RoomSerializer)

    @extend_schema(
        operation_id="rooms_create", request=RoomCreateSerializer, responses={201: RoomSerializer, 409: ROOM_LIMIT}
    )
    def post(self, request: Request) -> Response:
        data = RoomCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        changes = _room_changes(request.user, data.validated_data)
        team_id = changes.pop("team", None)
        pinned = changes.pop("pinned", False)
        archived = changes.pop("archived", False)
        room = services.create_room(owner=request.user, team_id=team_id, **changes)
        if pinned or archived:
            room = services.update_room(room=room, changes={"pinned": pinned, "archived": archived})
        return Response(RoomSerializer(room).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["rooms"])
class RoomDetailApi(APIView):
    @extend_schema(operation_id="rooms_get", responses=RoomSerializer)
    def get(self, request: Request, room_id: str) -> Response:
        return Response(RoomSerializer(selectors.get_room_for_read(user=request.user, room_id=room_id)).data)

    @extend_schema(
        operation_id="rooms_update",
        request=RoomWriteSerializer,
        responses={200: RoomSerializer, 409: error_response("Un-archiving would pass the active-room limit.")},
    )
    def patch(self, request: Request, room_id: str) -> Response:
        room = selectors.get_room_for_write(user=request.user, room_id=room_id)
        data = RoomWriteSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        room = services.update_room(room=room, changes=_room_changes(request.user, data.validated_data))
        return Response(RoomSerializer(room).data)

    @extend_schema(operation_id="rooms_delete", responses={204: None})
    def delete(self, request: Request, room_id: str) -> Response:
        services.soft_delete_room(room=selectors.get_room_for_write(user=request.user, room_id=room_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["rooms"])
class RoomHistoryApi(APIView):
    pagination_class = LimitOffsetPagination

    @extend_schema(
        operation_id="rooms_history",
        parameters=[
            OpenApiParameter(
                "view", str, enum=["branch", "tree"],
                description="branch (default): the active branch, oldest first, with sibling ids; tree: every "
                "message with its parent.",
            ),
        ],
        responses=BranchMessageSerializer(many=True),
    )
    def get(self, request: Request, room_id: str) -> Response:
        room = selectors.get_room_for_read(user=request.user, room_id=room_id)
        view = request.query_params.get("view", "branch")
        if view == "tree":
            return paginate(self, request, selectors.message_tree(room).select_related("author"), MessageSerializer)
        if view != "branch":
            raise exceptions.ValidationError({"view": ["Use 'branch' or 'tree'."]})
        branch = selectors.active_branch(room)
        return paginate(self, request, branch.messages, BranchMessageSerializer, siblings=branch.siblings)


@extend_schema(tags=["rooms"])
class RoomMessagesClearApi(APIView):
    @extend_schema(operation_id="rooms_messages_clear", request=None, responses=CountSerializer)
    def post(self, request: Request, room_id: str) -> Response:
        room = selectors.get_room_for_write(user=request.user, room_id=room_id)
        return Response({"count": services.clear_room_messages(room=room)})


@extend_schema(tags=["rooms"])
class RoomFreshApi(APIView):
    permission_classes = CHAT_WORK
    @extend_schema(
        operation_id="rooms_fresh",
        request=FreshRoomSerializer,
        responses={200: RoomSerializer, 201: RoomSerializer, 409: ROOM_LIMIT},
        description="Returns your newest empty room (200) or creates one (201).",
    )
    def post(self, request: Request) -> Response:
        data = FreshRoomSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        room, created = services.get_or_create_fresh_room(owner=request.user, **data.validated_data)
        return Response(RoomSerializer(room).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


@extend_schema(tags=["rooms"])
class RoomTitleApi(APIView):
    permission_classes = CHAT_WORK
    @extend_schema(
        operation_id="rooms_title_generate",
        request=None,
        responses={200: RoomSerializer, 409: error_response("The room has no message yet (code nothing_to_title).")},
    )
    def post(self, request: Request, room_id: str) -> Response:
        room = selectors.get_room_for_write(user=request.user, room_id=room_id)
        room = services.generate_room_title(room=room, branch=selectors.active_branch(room).messages)
        return Response(RoomSerializer(room).data)


@extend_schema(tags=["rooms"])
class RoomCleanupApi(APIView):
    @extend_schema(
        operation_id="rooms_cleanup_empty",
        request=None,
        parameters=[RoomCleanupQuerySerializer],
        responses=CountSerializer,
        description="Deletes your rooms that never got a message, keeping the newest one for reuse.",
    )
    def post(self, request: Request) -> Response:
        params = RoomCleanupQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        minutes = params.validated_data["older_than_minutes"]
        count = services.cleanup_empty_rooms(owner=request.user, older_than=timedelta(minutes=minutes))
        return Response({"count": count})


class MarkdownRenderer(renderers.BaseRenderer):
    """Lets `?format=markdown` or `Accept: text/markdown` pick the Markdown export."""

    media_type = "text/markdown"
    format = "markdown"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, str):
            return data.encode(self.charset)
        return renderers.JSONRenderer().render(data)


@extend_schema(tags=["rooms"])
class RoomExportApi(APIView):
    renderer_classes = [renderers.JSONRenderer, MarkdownRenderer, renderers.BrowsableAPIRenderer]

    @extend_schema(
        operation_id="rooms_export",
        parameters=[OpenApiParameter("format", str, enum=["json", "markdown"], description="Default json.")],
        responses={
            (200, "application/json"): OpenApiTypes.OBJECT,
            (200, "text/markdown"): OpenApiTypes.STR,
        },
    )
    def get(self, request: Request, room_id: str) -> Response:
        room = selectors.get_room_for_read(user=request.user, room_id=room_id)
        if request.accepted_renderer.format == "markdown":
            response = Response(transfer.export_room_markdown(room))
            response["Content-Disposition"] = f'attachment; filename="room-{room.pk}.md"'
            return response
        return Response(transfer.export_room_json(room))


@extend_schema(tags=["rooms"])
class RoomImportApi(APIView):
    permission_classes = CHAT_WORK
    @extend_schema(
        operation_id="rooms_import", request=RoomImportSerializer, responses={201: RoomSerializer, 409: ROOM_LIMIT}
    )
    def post(self, request: Request) -> Response:
        if not isinstance(request.data, dict):
            raise exceptions.ValidationError({"non_field_errors": ["Send the JSON object that rooms_export gives."]})
        RoomImportSerializer(data=request.data).is_valid(raise_exception=True)
        room = transfer.import_room(owner=request.user, data=request.data)
        return Response(RoomSerializer(room).data, status=status.HTTP_201_CREATED)


# --- projects --------------------------------------------------------------------------------------


def _projects_with_counts(user):
    return selectors.projects_of(user).annotate(room_count=Count("rooms", filter=Q(rooms__is_deleted=False)))


@extend_schema(tags=["projects"])
class ProjectsApi(APIView):
    pagination_class = LimitOffsetPagination

    @extend_schema(operation_id="projects_list", responses=ProjectSerializer(many=True))
    def get(self, request: Request) -> Response:
        return paginate(self, request, _projects_with_counts(request.user), ProjectSerializer)

    @extend_schema(operation_id="projects_create", request=ProjectSerializer, responses={201: ProjectSerializer})
    def post(self, request: Request) -> Response:
        data = ProjectSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        project = services.create_project(owner=request.user, **data.validated_data)
        return Response(ProjectSerializer(project).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["projects"])
class ProjectDetailApi(APIView):
    @extend_schema(operation_id="projects_update", request=ProjectUpdateSerializer, responses=ProjectSerializer)
    def patch(self, request: Request, project_id: str) -> Response:
        project = selectors.get_project(user=request.user, project_id=project_id)
        data = ProjectUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        services.update_project(project=project, changes=data.validated_data)
        return Response(ProjectSerializer(_projects_with_counts(request.user).get(pk=project.pk)).data)

    @extend_schema(operation_id="projects_delete", responses={204: None})
    def delete(self, request: Request, project_id: str) -> Response:
        services.delete_project(project=selectors.get_project(user=request.user, project_id=project_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- sessions --------------------------------------------------------------------------------------

SESSION_GONE = OpenApiResponse(description="Unknown or expired session (code session_expired).")


@extend_schema(tags=["sessions"])
class SessionsApi(APIView):
    permission_classes = CHAT_WORK
    @extend_schema(operation_id="session_create", request=SessionCreateSerializer, responses={201: SessionSerializer})
    def post(self, request: Request) -> Response:
        data = SessionCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        room = selectors.get_room_for_write(user=request.user, room_id=data.validated_data["room_id"])
        session = services.create_session(user=request.user, room=room)
        return Response(SessionSerializer(session).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["sessions"])
class SessionDetailApi(APIView):
    @extend_schema(operation_id="session_get", responses={200: SessionSerializer, 404: SESSION_GONE})
    def get(self, request: Request, session_id: str) -> Response:
        session = selectors.get_live_session(user=request.user, session_id=session_id)
        return Response(SessionSerializer(services.touch_session(session=session)).data)

    @extend_schema(operation_id="session_delete", responses={204: None})
    def delete(self, request: Request, session_id: str) -> Response:
        selectors.get_live_session(user=request.user, session_id=session_id).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["sessions"])
class SessionResetApi(APIView):
    @extend_schema(operation_id="session_reset", request=SessionResetSerializer, responses=SessionSerializer)
    def post(self, request: Request, session_id: str) -> Response:
        session = selectors.get_live_session(user=request.user, session_id=session_id)
        data = SessionResetSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(SessionSerializer(services.reset_session(session=session, **data.validated_data)).data)


@extend_schema(tags=["sessions"])
class SessionStopApi(APIView):
    @extend_schema(operation_id="session_stop", request=None, responses=StopResultSerializer)
    def post(self, request: Request, session_id: str) -> Response:
        session = selectors.get_live_session(user=request.user, session_id=session_id)
        services.touch_session(session=session)
        return Response({"stopped": services.request_stop(room=session.room)})


@extend_schema(tags=["sessions"])
class SessionHistoryClearApi(APIView):
    @extend_schema(operation_id="session_history_clear", request=None, responses=CountSerializer)
    def post(self, request: Request, session_id: str) -> Response:
        session = selectors.get_live_session(user=request.user, session_id=session_id)
        services.touch_session(session=session)
        return Response({"count": services.clear_room_messages(room=session.room)})


# --- chat contract: sessions are rooms -------------------------------------------------------------


@extend_schema(tags=["chat"])
class ChatSessionsApi(APIView):
    permission_classes = CHAT_WORK
    pagination_class = LimitOffsetPagination

    @extend_schema(operation_id="chat_sessions_list", responses=ChatSessionSerializer(many=True))
    def get(self, request: Request) -> Response:
        qs = selectors.rooms_list(user=request.user, params={})
        return paginate(self, request, qs, ChatSessionSerializer)

    @extend_schema(
        operation_id="chat_sessions_create",
        request=ChatSessionCreateSerializer,
        responses={201: ChatSessionSerializer, 409: ROOM_LIMIT},
    )
    def post(self, request: Request) -> Response:
        data = ChatSessionCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        room = services.create_room(
            owner=request.user, name=data.validated_data["title"], model=data.validated_data["model"]
        )
        return Response(ChatSessionSerializer(room).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["chat"])
class ChatSessionDetailApi(APIView):
    @extend_schema(operation_id="chat_sessions_get", responses=ChatSessionSerializer)
    def get(self, request: Request, chat_id: str) -> Response:
        return Response(ChatSessionSerializer(selectors.get_room_for_read(user=request.user, room_id=chat_id)).data)

    @extend_schema(operation_id="chat_sessions_delete", responses={204: None})
    def delete(self, request: Request, chat_id: str) -> Response:
        services.soft_delete_room(room=selectors.get_room_for_write(user=request.user, room_id=chat_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["rooms"])
class MessageRatingApi(APIView):
    @extend_schema(operation_id="messages_rate", request=RatingSerializer, responses=MessageSerializer)
    def post(self, request: Request, room_id: str, message_id: str) -> Response:
        room = selectors.get_room_for_write(user=request.user, room_id=room_id)
        message = selectors.get_message_in_room(room=room, message_id=message_id)
        data = RatingSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(MessageSerializer(services.rate_message(message=message, **data.validated_data)).data)


@extend_schema(tags=["rooms"])
class BranchSwitchApi(APIView):
    @extend_schema(
        operation_id="rooms_branch_switch",
        request=BranchSwitchSerializer,
        responses=RoomSerializer,
        description="Show another branch (the ‹ 2/3 › arrows): the newest leaf under the message becomes active.",
    )
    def post(self, request: Request, room_id: str) -> Response:
        room = selectors.get_room_for_write(user=request.user, room_id=room_id)
        data = BranchSwitchSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        message = selectors.get_message_in_room(room=room, message_id=data.validated_data["message_id"])
        services.switch_branch(room=room, message=message)
        room.refresh_from_db()
        return Response(RoomSerializer(room).data)
