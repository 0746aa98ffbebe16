"""Image registries: references, manifests, auth, pull and push over the OCI distribution API.

`reference` normalises names as docker does, `manifest` reads the four manifest formats,
`platform` chooses from an index, `auth` holds credentials and challenges, `transport` is HTTP to
one registry, `blobs` downloads verified blobs, `pull` and `push` are the two operations.
"""
