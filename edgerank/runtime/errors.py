"""The runtime's error types: each one tells a kiosk developer what to fix, in one line.

Both are ``ValueError`` subclasses so a caller that already guards against bad values catches them;
``ArtifactError`` (from ``edgerank.artifact``) covers a missing, corrupt, tampered or too-new artifact.
"""

from __future__ import annotations

from ..artifact import ArtifactError


class RankerInputError(ValueError):
    """A query, product list or option the ranker cannot score, naming the product and field at fault."""


class BackendError(ValueError):
    """A backend or execution provider that cannot run on this machine, with what can."""


__all__ = ["ArtifactError", "BackendError", "RankerInputError"]
