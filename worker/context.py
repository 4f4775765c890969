"""What a worker process needs to run jobs: settings, database sessions, artifact store,
and the queue (the sweeper re-enqueues through it). Built once per process, lazily:
a prefork child builds its own after the fork, never sharing the parent's connections."""

from __future__ import annotations

import os
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from api.db.session import make_engine, make_session_factory
from api.queue import CeleryJobQueue
from api.settings import Settings
from api.storage import ArtifactStore, open_store


@dataclass
class WorkerContext:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    store: ArtifactStore
    queue: CeleryJobQueue

    def close(self) -> None:
        self.queue.close()
        self.engine.dispose()


def build_context(settings: Settings) -> WorkerContext:
    engine = make_engine(settings.database.url, echo=settings.database.echo)
    return WorkerContext(
        settings=settings,
        engine=engine,
        sessions=make_session_factory(engine),
        store=open_store(settings.artifacts),
        queue=CeleryJobQueue(settings.broker),
    )


def process_context(settings: Settings) -> WorkerContext:
    """The context of this process for `settings`: keyed by pid, so a forked child never
    uses connections it inherited from its parent."""
    key = (os.getpid(), id(settings))
    context = _CONTEXTS.get(key)
    if context is None or context.settings is not settings:
        context = _CONTEXTS[key] = build_context(settings)
    return context


_CONTEXTS: dict[tuple[int, int], WorkerContext] = {}
