"""Embedding models: one small interface and a registry of implementations."""

from codebase_mcp.embeddings.base import EmbeddingModel, Mode, create_model, register

__all__ = ["EmbeddingModel", "Mode", "create_model", "register"]
