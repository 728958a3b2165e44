"""Kill-switch resource: the file that stops order creation, read when a step executes."""

from pathlib import Path

import dagster as dg

from mqf_pipeline import kill_switch
from resources.settings import SettingsResource


class KillSwitchResource(dg.ConfigurableResource):
    """Reads ``fund.paths.kill_switch`` (``runtime/KILL_SWITCH``); ``path`` overrides it (tests)."""

    settings: SettingsResource
    path: str = ""

    def file(self) -> Path:
        return Path(self.path) if self.path else self.settings.get().kill_switch_path

    def status(self) -> kill_switch.KillSwitchStatus:
        return kill_switch.status(self.file())

    def require_off(self, action: str) -> None:
        """Raise :class:`~mqf_pipeline.kill_switch.KillSwitchEngagedError` naming ``action`` while engaged."""
        kill_switch.require_off(self.file(), action)
