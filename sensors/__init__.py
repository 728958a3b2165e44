"""Sensors: the kill switch. (The emergency rebalance is part of the trading cycle: a session whose risk
state breaches orders its de-risking set itself, :mod:`mqf_pipeline.portfolio.emergency`.)"""

from sensors.kill_switch import kill_switch_sensor

__all__ = ["kill_switch_sensor"]
