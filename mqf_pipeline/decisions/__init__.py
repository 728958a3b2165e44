"""The meta-brain (ensemble, Kelly sizing, decision rules) and the audit record of every decision."""
