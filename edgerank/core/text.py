"""The text a cross-encoder reads for a product, in one place for training, export, bench and runtime."""

from __future__ import annotations


def product_text(title: str, description: str = "") -> str:
    """Title, then the description if any: a runtime that read products differently from training
    would lose quality silently, so every stage builds the text with this one rule."""
    return f"{title} {description}".strip() if description else title
