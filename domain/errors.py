"""Errors the domain raises; the edge maps each `code` to the contract's error codes."""


class DomainError(Exception):
    """A problem the caller can fix or must know about; `code` is the contract's error code."""

    code = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadUserInput(DomainError):
    code = "BAD_USER_INPUT"


class Forbidden(DomainError):
    code = "FORBIDDEN"


class Unauthenticated(DomainError):
    code = "UNAUTHENTICATED"


class Rejected(DomainError):
    """Input the rules refuse: reported as a user error (`code`, `field` path), and raised
    inside the write's transaction so that nothing changes."""

    def __init__(self, code: str, message: str, *field: str) -> None:
        super().__init__(message)
        self.code = code
        self.field = list(field)
