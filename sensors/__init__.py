"""Sensors: the kill switch, dead runs and the slippage refit on new fills. (The emergency rebalance is part of
the trading cycle: a session whose risk state breaches orders its de-risking set itself,
:mod:`mqf_pipeline.portfolio.emergency`.)"""

from sensors.dead_runs import dead_run_sensor
from sensors.kill_switch import kill_switch_sensor
from sensors.slippage_refit import slippage_refit_sensor

__all__ = ["dead_run_sensor", "kill_switch_sensor", "slippage_refit_sensor"]
