"""Broker resource: the execution venue of this deployment's mode.

simulated -> the paper broker (SQLite order book under runtime/broker/, fills through the simulator's
cost model); paper -> Alpaca's paper endpoint; live -> Alpaca live, refused unless every safeguard of
:func:`mqf_pipeline.execution.live_guard.check_trading_allowed` holds. Keys only from the environment.
"""

import dagster as dg
from pydantic import PrivateAttr

from mqf_pipeline.config import Mode
from mqf_pipeline.execution.brokers.base import Broker
from mqf_pipeline.execution.brokers.paper import PaperBroker
from mqf_pipeline.execution.live_guard import check_trading_allowed
from mqf_pipeline.stages.params import cost_params
from resources.settings import SettingsResource


class BrokerResource(dg.ConfigurableResource):
    """``directory`` overrides ``fund.paths.broker`` for the paper broker (tests)."""

    settings: SettingsResource
    directory: str = ""
    _broker: Broker | None = PrivateAttr(default=None)

    def broker(self) -> Broker:
        if self._broker is None:
            cfg = self.settings.get()
            mode = cfg.fund.mode
            check_trading_allowed(mode, cfg.providers.priority.get(mode, []), broker=cfg.broker_kind)
            if cfg.broker_kind == "local":
                self._broker = PaperBroker(
                    self.directory or cfg.broker_dir,
                    initial_cash=cfg.risk.initial_nav,
                    params=cost_params(cfg.execution),
                    seed=cfg.simulator.seed,
                )
            else:
                from mqf_pipeline.execution.brokers.alpaca import AlpacaBroker

                self._broker = AlpacaBroker(paper=mode is Mode.PAPER, url_override=cfg.execution.alpaca_url_override)
        return self._broker
