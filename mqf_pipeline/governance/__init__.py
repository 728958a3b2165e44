"""Governance: the data-quality score, trading eligibility and the Phase 0-4 gates (seed 000 sections 4.2, 10.4)."""
