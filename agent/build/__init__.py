"""`corral build`: Dockerfiles into images, each RUN in a real Corral container (docs/images.md)."""
