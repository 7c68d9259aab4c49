"""Limit/offset paging with a hard ceiling so one request cannot pull a whole table."""

from rest_framework.pagination import LimitOffsetPagination as _Base


class LimitOffsetPagination(_Base):
    """Default 50 per page, at most 200."""

    default_limit = 50
    max_limit = 200
