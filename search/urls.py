"""Routes of search, files and token counting, mounted by chat/urls.py under the chat contract and rooms."""

from django.urls import path

from search import apis

chat_search_urlpatterns = [
    path("sessions/<str:chat_id>/upload", apis.FileUploadApi.as_view(), name="chat-files-upload"),
    path("sessions/<str:chat_id>/token-count", apis.TokenCountApi.as_view(), name="chat-tokens-count"),
    path("search", apis.SearchApi.as_view(), name="chat-search"),
    path("ane/search", apis.AneSearchApi.as_view(), name="chat-ane-search"),
    path("ane/stats", apis.AneStatsApi.as_view(), name="chat-ane-stats"),
    path("embedding/info", apis.EmbeddingInfoApi.as_view(), name="chat-embedding-info"),
]

room_file_urlpatterns = [
    path("<str:room_id>/files", apis.RoomFilesApi.as_view(), name="room-files"),
    path("<str:room_id>/files/<str:file_id>", apis.RoomFileDetailApi.as_view(), name="room-file"),
    path("<str:room_id>/files/<str:file_id>/content", apis.RoomFileContentApi.as_view(), name="room-file-content"),
    path("<str:room_id>/files/<str:file_id>/chunks/<int:ordinal>", apis.RoomFilePassageApi.as_view(),
         name="room-file-passage"),
]
