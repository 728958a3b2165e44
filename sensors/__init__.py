"""Sensors: the kill switch and the emergency rebalance."""

from sensors.kill_switch import kill_switch_sensor
from sensors.risk_breach import emergency_rebalance_sensor

__all__ = ["emergency_rebalance_sensor", "kill_switch_sensor"]
