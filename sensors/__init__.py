"""Sensors: react to events. The data layer has none yet; later stages add the kill-switch
and emergency-rebalance sensors here."""
