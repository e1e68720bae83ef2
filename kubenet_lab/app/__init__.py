"""One module per verb family: building and removing the lab (build), the fast read-only queries
(query), the readiness sync the supervisor calls (readiness). Kept empty so that a query imports
nothing heavy."""
