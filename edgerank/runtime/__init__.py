"""edgerank's local ranker for kiosks and apps: ``Ranker.load(artifact).rank(query, products)``.

Imports only the standard library, numpy, tokenizers, onnxruntime and ``edgerank.artifact``, so
``pip install edgerank`` (no extras) is enough to run it; optional backends pull in their own
libraries only when chosen.
"""

from .blend import Blend
from .errors import ArtifactError, BackendError, RankerInputError
from .products import product_text
from .ranker import RankedItem, Ranker, RankResult

__all__ = [
    "ArtifactError",
    "BackendError",
    "Blend",
    "RankResult",
    "RankedItem",
    "Ranker",
    "RankerInputError",
    "product_text",
]
