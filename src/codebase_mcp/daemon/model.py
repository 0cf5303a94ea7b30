"""One embedding model per machine: MCP servers embed their queries in the daemon of their data directory,
which holds the model anyway (it runs the jobs), instead of loading a copy each (~250 MB resident per
server). When no daemon answers, or it uses another model, the server's own copy is loaded and used: a
search never fails for want of a daemon."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from codebase_mcp.daemon import client as daemon_client
from codebase_mcp.embeddings.base import EmbeddingModel, Mode, Vectors

log = logging.getLogger(__name__)

QUERY_TIMEOUT = 30.0  # a daemon busy embedding a batch still answers a query within this
WARM_UP_WAIT = 30.0  # how long warming up waits for a daemon being started to listen


class DaemonEmbedded(EmbeddingModel):
    """``own``'s name and vectors, computed by the daemon of ``home`` when it answers."""

    def __init__(self, own: EmbeddingModel, home: Path) -> None:
        self.own = own
        self.home = home
        self.name = own.name
        self.dimension = own.dimension
        self.by_daemon = 0  # texts the daemon embedded for this process
        self.by_own = 0  # texts embedded here, with no daemon answering

    def embed_batch(self, texts: Sequence[str], mode: Mode = "document") -> Vectors:
        if mode == "query":
            vectors = self._ask(texts)
            if vectors is not None:
                return vectors
        self.by_own += len(texts)
        return self.own.embed_batch(texts, mode)

    def load(self) -> None:
        """Make the daemon load its model, if one answers; load nothing here."""
        self.warm_daemon()

    def warm_daemon(self) -> bool:
        """Whether a daemon answered (and so has its model loaded now)."""
        return self._ask(["warm up"]) is not None

    def _ask(self, texts: Sequence[str]) -> Vectors | None:
        try:
            answer = daemon_client.request_blocking(
                self.home, "embed", timeout=QUERY_TIMEOUT, model=self.name, texts=list(texts)
            )
        except daemon_client.NotRunning:
            return None
        vectors = np.frombuffer(base64.b64decode(answer["vectors"]), dtype="<f4").astype(np.float32)
        self.by_daemon += len(texts)
        return vectors.reshape(len(texts), int(answer["dimension"]))


async def warm_up(model: EmbeddingModel) -> None:
    """Load the model a server's queries will use, so its first search does not pay for it: the daemon's,
    waiting a while for a daemon being started; its own otherwise. Cancellable between tries."""
    if not isinstance(model, DaemonEmbedded):
        await asyncio.to_thread(model.load)
        return
    deadline = time.monotonic() + WARM_UP_WAIT
    while not await asyncio.to_thread(model.warm_daemon):
        if time.monotonic() > deadline:
            log.info("no daemon answered for %.0f s: queries load this server's own model", WARM_UP_WAIT)
            return
        await asyncio.sleep(0.2)
