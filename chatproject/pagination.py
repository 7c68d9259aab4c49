"""Limit/offset paging with a hard ceiling so one request cannot pull a whole table."""

from rest_framework import pagination


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    """Default 50 per page, at most 200; answers {count, next, previous, results}."""

    default_limit = 50
    max_limit = 200


def paginate(view, request, items, serializer_class, **context):
    """Page `items` with the view's paginator (the default one if it names none) and serialise the page."""
    paginator = (getattr(view, "pagination_class", None) or LimitOffsetPagination)()
    page = paginator.paginate_queryset(items, request, view=view)
    data = serializer_class(page, many=True, context={"request": request, **context}).data
    return paginator.get_paginated_response(data)
