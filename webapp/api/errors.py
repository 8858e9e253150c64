"""The API's own failures, raised anywhere in a request and answered with API.md's envelope."""

from __future__ import annotations

from flask import Response

from webapp.errors import api_error


class ApiError(Exception):
    """A request the API refuses: HTTP `status`, stable `code`, human `message`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> Response:
        response = api_error(self.status, self.code, self.message)
        if self.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="api"'
        return response


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message)


def validation_error(message: str) -> ApiError:
    return ApiError(400, "validation_error", message)
