"""The embedding registry: a provider registered under a new name is selectable through the settings,
and an unknown provider is an error naming the known ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from codebase_mcp.embeddings.base import EmbeddingModel, create_model, register
from codebase_mcp.embeddings.fake import FakeEmbeddingModel
from codebase_mcp.errors import CodebaseError
from codebase_mcp.settings import Settings


def test_a_registered_provider_is_selectable_and_an_unknown_one_is_named(tmp_path: Path) -> None:
    @register("test-constant")
    def _constant(settings: Settings) -> EmbeddingModel:
        return FakeEmbeddingModel(dimension=8, name="constant-8")

    model = create_model(Settings(home=tmp_path, embedding_provider="test-constant"))
    assert model.name == "constant-8" and model.dimension == 8
    with pytest.raises(CodebaseError, match=r"Unknown embedding provider 'nope'.*fake.*local.*test-constant"):
        create_model(Settings(home=tmp_path, embedding_provider="nope"))
