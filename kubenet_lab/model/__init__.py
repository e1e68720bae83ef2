"""The data every room shares, importing nothing from the lab: what the manifests say and the plan made of it."""
