"""What every stage shares, free of torch and pandas: query groups and catalogs, product text, ranking
metrics, BM25, serving lists and the one comparison every report prints.

Only numpy is imported here; scipy (bootstrap, Kendall tau) and bm25s are imported inside the
functions that need them, so the runtime can import this package on its base install.
"""

from .groups import Catalog, QueryGroup, evaluable, sample_queries, score_by_group
from .text import product_text

__all__ = ["Catalog", "QueryGroup", "evaluable", "product_text", "sample_queries", "score_by_group"]
