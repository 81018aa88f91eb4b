from __future__ import annotations


class ApiError(Exception):
    """Raised by endpoints; mapped once to a JSON error response by the app."""

    def __init__(
        self, status_code: int, error: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.error = error
        self.detail = detail
        self.headers = headers or {}


def bad_parameter(name: str, problem: str) -> ApiError:
    return ApiError(400, "bad_parameter", f"{name}: {problem}")
