"""Kill-switch resource: the switch file and the ``kill_switch_events`` table, read when a step executes."""

from pathlib import Path

import dagster as dg
import polars as pl

from mqf_pipeline import kill_switch
from mqf_pipeline.storage.lake import Lake
from resources.settings import SettingsResource


class KillSwitchResource(dg.ConfigurableResource):
    """Reads ``fund.paths.kill_switch`` (``runtime/KILL_SWITCH``) and the lake's ``kill_switch_events``;
    ``path`` and ``lake_root`` override them (tests)."""

    settings: SettingsResource
    path: str = ""
    lake_root: str = ""

    def file(self) -> Path:
        return Path(self.path) if self.path else self.settings.get().kill_switch_path

    def lake(self) -> Lake:
        """The lake holding ``kill_switch_events`` (the fund's lake)."""
        return Lake(self.lake_root or self.settings.get().lake_root)

    def status(self) -> kill_switch.KillSwitchStatus:
        """The state from the latest event and the file, read afresh."""
        return kill_switch.status(self.file(), self.lake())

    def record_file(self) -> kill_switch.KillSwitchEvent | None:
        """Record a present, not yet recorded switch file as a ``source=file`` engaged event."""
        return kill_switch.record_file(self.file(), self.lake())

    def events(self, last: int | None = None) -> pl.DataFrame:
        """The recorded events (the ``last`` ones), oldest first."""
        return kill_switch.events(self.lake(), last)

    def require_off(self, action: str) -> None:
        """Raise :class:`~mqf_pipeline.kill_switch.KillSwitchEngagedError` naming ``action`` while engaged."""
        kill_switch.require_off(self.file(), action, self.lake())
