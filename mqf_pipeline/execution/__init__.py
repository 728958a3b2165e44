"""Execution: orders and their state machine, the positions ledger, brokers, the cost simulator, schedules."""
