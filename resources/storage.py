"""Storage resource: the Parquet lake, the raw archive and the DuckDB catalog path."""

from pathlib import Path

import dagster as dg

from mqf_pipeline.storage.archive import RawArchive
from mqf_pipeline.storage.lake import Lake
from resources.settings import SettingsResource


class StorageResource(dg.ConfigurableResource):
    settings: SettingsResource

    def lake(self) -> Lake:
        return Lake(self.settings.get().lake_root)

    def archive(self) -> RawArchive:
        return RawArchive(self.settings.get().raw_dir)

    def catalog_path(self) -> Path:
        return self.settings.get().catalog_path
