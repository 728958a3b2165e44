"""Settings resource: the validated configs/*.yaml of this deployment."""

import dagster as dg
from pydantic import PrivateAttr

from mqf_pipeline.config import ConfigError, Settings, load_settings


class SettingsResource(dg.ConfigurableResource):
    """Loads ``configs/`` once per process; ``config_dir`` empty means ``$MQF_CONFIG_DIR`` or ./configs."""

    config_dir: str = ""
    _settings: Settings | None = PrivateAttr(default=None)

    def get(self) -> Settings:
        """The settings; a bad config fails the step at once (a retry cannot fix it) with the file and key."""
        if self._settings is None:
            try:
                self._settings = load_settings(self.config_dir or None)
            except ConfigError as exc:
                raise dg.Failure(description=f"config: {exc}", allow_retries=False) from exc
        return self._settings
