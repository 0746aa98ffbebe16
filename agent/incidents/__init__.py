"""Incident bundles: the evidence of a kill, a freeze or an OOM kill, saved when it happens
(docs/policies.md, "Incidents")."""
