"""What a command handler gets: the caller, the app's services, the request."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nats.aio.client import Client
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloudiag.accounts.secret_box import SecretBox
from cloudiag.domain import Caller
from cloudiag.jobs.data_archive import DataArchives
from cloudiag.services.used_signatures import Use
from cloudiag.settings import Settings

if TYPE_CHECKING:
    from cloudiag.jobs.runner import JobRunner


@dataclass
class AppState:
    """Long-lived services shared by every request of one server process."""

    settings: Settings
    db: async_sessionmaker[AsyncSession]
    runner: JobRunner
    nc: Client
    #: Seals and opens the API secret keys stored in the database.
    secrets: SecretBox
    #: None when the NATS server has no JetStream (then output streams live only).
    js: JetStreamContext | None = None
    #: getDiagnosticsData's zips (None: this server keeps none, as in some tests).
    archives: DataArchives | None = None


@dataclass
class RequestContext:
    """One API call: who calls, through which app, and cookies to set on the answer."""

    app: AppState
    caller: Caller | None
    client_ip: str = ""
    #: (name, value, max_age) of cookies the handler wants set; max_age 0 deletes.
    cookies: list[tuple[str, str, int]] = field(default_factory=list)
    #: The raw session cookie of the request, for logout.
    session_cookie: str = ""
    #: The once-only signature a `spends_signature` command's handler spends.
    signature: Use | None = None
    #: The server's root as the client reached it (download URLs are made absolute on it).
    base_url: str = ""

    @property
    def user(self) -> Caller:
        """The caller; handlers of authenticated commands can rely on it."""
        assert self.caller is not None
        return self.caller
