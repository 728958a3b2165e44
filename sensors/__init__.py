"""Sensors: the kill switch."""

from sensors.kill_switch import kill_switch_sensor

__all__ = ["kill_switch_sensor"]
