from django.urls import path

from ops import performance_apis

performance_urlpatterns = [
    path("current", performance_apis.PerformanceCurrentApi.as_view(), name="performance-current"),
    path("stats", performance_apis.PerformanceStatsApi.as_view(), name="performance-stats"),
    path("history", performance_apis.PerformanceHistoryApi.as_view(), name="performance-history"),
    path("thermal", performance_apis.PerformanceThermalApi.as_view(), name="performance-thermal"),
    path("reset", performance_apis.PerformanceResetApi.as_view(), name="performance-reset"),
]
