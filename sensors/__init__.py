"""Sensors: the kill switch and dead runs. (The emergency rebalance is part of the trading cycle: a session
whose risk state breaches orders its de-risking set itself, :mod:`mqf_pipeline.portfolio.emergency`.)"""

from sensors.dead_runs import dead_run_sensor
from sensors.kill_switch import kill_switch_sensor

__all__ = ["dead_run_sensor", "kill_switch_sensor"]
