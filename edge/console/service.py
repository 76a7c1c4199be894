"""Running the console under the daemon: its parts wired to the device's, uvicorn on 127.0.0.1.

The console only binds to loopback: a kiosk's or tablet's own browser uses it; nothing on the
township's network can reach it. Identity reads reach it through the daemon's
:class:`~edge.card_reads.CardHandoff` (``card_reads``; None: the device has no reader).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import uvicorn

from edge.card_reads import CardHandoff
from edge.centre_tasks import CentreTaskStore
from edge.console.accounts import ClerkAccounts
from edge.console.app import ConsoleServices, create_console_app
from edge.console.drafts import DraftStore
from edge.console.search import PeopleSearch
from edge.console.visits import VisitDesk
from edge.hardware import Hardware
from edge.licence_guard import LicenceGuard
from edge.outbox import Outbox
from edge.sealer import Sealer
from edge.slice_store import SliceStore
from muster.clock import Clock
from muster.profiles import FirmwareProfile
from muster.region_names import describe

HOST = "127.0.0.1"


class _EmbeddedUvicorn(uvicorn.Server):
    """Uvicorn without its own signal handling: the daemon decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Console:
    def __init__(
        self,
        *,
        profile: FirmwareProfile,
        state_dir: Path,
        identity_dir: Path,
        township_code: str,
        device_id: str,
        hardware: Hardware,
        card_reads: CardHandoff | None,
        sealer: Sealer,
        outbox: Outbox,
        guard: LicenceGuard,
        slices: SliceStore,
        online: Callable[[], bool],
        on_sealed: Callable[[], None],
        clock: Clock,
    ) -> None:
        self.profile = profile
        self.accounts = ClerkAccounts(state_dir / "console", clock=clock)
        self.drafts = DraftStore(
            state_dir / "console" / "drafts.sqlite3", identity_dir / "drafts.key"
        )
        # The daemon keeps what each Health answer says here (take_health) and sends the
        # queued answers with each Health call (add_answers).
        self.centre = CentreTaskStore(
            state_dir / "console" / "centre.sqlite3", identity_dir / "centre.key"
        )
        self.services = ConsoleServices(
            accounts=self.accounts,
            drafts=self.drafts,
            people=PeopleSearch(slices.people, lambda: slices.version),
            township_code=township_code,
            township_name=describe(township_code),
            verdict=lambda: guard.verdict,
            clock=clock,
            seal=sealer.seal,
            already_sealed=outbox.contains,
            read_card=card_reads.take if card_reads is not None else None,
            capture_photo=hardware.capture_photo if profile.camera.kind != "none" else None,
            online=online,
            on_sealed=on_sealed,
            home_visit=profile.home_visit,
            session_idle=dt.timedelta(minutes=profile.console.session_idle_minutes),
            centre=self.centre,
            rejected=outbox.rejected,
            outbox_states=outbox.states,
            visits=VisitDesk(
                visits=slices.visits,
                visit=slices.visit,
                mark_done=slices.mark_visit_done,
                seal_document=sealer.seal_document,
                device_id=device_id,
            ),
        )
        self.app = create_console_app(self.services)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.profile.console.port}/"

    async def run(self) -> None:
        config = uvicorn.Config(
            self.app,
            host=HOST,
            port=self.profile.console.port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
        server = _EmbeddedUvicorn(config)
        try:
            await server.serve()
        finally:
            server.should_exit = True

    def close(self) -> None:
        self.drafts.close()
        self.centre.close()
