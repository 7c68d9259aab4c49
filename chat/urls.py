from django.urls import include, path

from chat import apis
from chat.not_built import not_built_urlpatterns
from chat.sse import MessageSendApi
from models_mgmt.urls import models_urlpatterns
from ops.apis import HealthCheckApi, PanicResetApi, PanicStatusApi, PanicTriggerApi
from ops.urls import performance_urlpatterns
from search.urls import chat_search_urlpatterns, room_file_urlpatterns

room_urlpatterns = [
    path("", apis.RoomsApi.as_view(), name="rooms"),
    path("fresh", apis.RoomFreshApi.as_view(), name="rooms-fresh"),
    path("cleanup-empty", apis.RoomCleanupApi.as_view(), name="rooms-cleanup-empty"),
    path("import", apis.RoomImportApi.as_view(), name="rooms-import"),
    path("<str:room_id>", apis.RoomDetailApi.as_view(), name="room-detail"),
    path("<str:room_id>/history", apis.RoomHistoryApi.as_view(), name="room-history"),
    path("<str:room_id>/messages/clear", apis.RoomMessagesClearApi.as_view(), name="room-messages-clear"),
    path("<str:room_id>/title", apis.RoomTitleApi.as_view(), name="room-title"),
    path("<str:room_id>/export", apis.RoomExportApi.as_view(), name="room-export"),
    path("<str:room_id>/branch", apis.BranchSwitchApi.as_view(), name="room-branch"),
    path("<str:room_id>/messages/<str:message_id>/rating", apis.MessageRatingApi.as_view(), name="message-rating"),
    *room_file_urlpatterns,
]

project_urlpatterns = [
    path("", apis.ProjectsApi.as_view(), name="projects"),
    path("<str:project_id>", apis.ProjectDetailApi.as_view(), name="project-detail"),
]

session_urlpatterns = [
    path("", apis.SessionsApi.as_view(), name="sessions"),
    path("<str:session_id>", apis.SessionDetailApi.as_view(), name="session-detail"),
    path("<str:session_id>/reset", apis.SessionResetApi.as_view(), name="session-reset"),
    path("<str:session_id>/stop", apis.SessionStopApi.as_view(), name="session-stop"),
    path("<str:session_id>/clear", apis.SessionHistoryClearApi.as_view(), name="session-history-clear"),
]

chat_urlpatterns = [
    path("sessions", apis.ChatSessionsApi.as_view(), name="chat-sessions"),
    path("sessions/<str:chat_id>", apis.ChatSessionDetailApi.as_view(), name="chat-session-detail"),
    path("sessions/<str:chat_id>/messages", MessageSendApi.as_view(), name="chat-messages-send"),
    *models_urlpatterns,
    path("health", HealthCheckApi.as_view(), name="chat-health"),
    path("performance/", include(performance_urlpatterns)),
    path("panic/trigger", PanicTriggerApi.as_view(), name="chat-panic-trigger"),
    path("panic/status", PanicStatusApi.as_view(), name="chat-panic-status"),
    path("panic/reset", PanicResetApi.as_view(), name="chat-panic-reset"),
    *chat_search_urlpatterns,
    *not_built_urlpatterns(),
]
