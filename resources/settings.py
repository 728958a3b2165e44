"""Settings resource: the validated configs/*.yaml of this deployment."""

import dagster as dg
from pydantic import PrivateAttr

from mqf_pipeline.config import Settings, load_settings


class SettingsResource(dg.ConfigurableResource):
    """Loads ``configs/`` once per process; ``config_dir`` empty means ``$MQF_CONFIG_DIR`` or ./configs."""

    config_dir: str = ""
    _settings: Settings | None = PrivateAttr(default=None)

    def get(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_dir or None)
        return self._settings
