"""Container security: capabilities, seccomp profiles (our default and Docker-format files),
the compiled-filter cache, and the security options of a container spec (`--cap-add`,
`--privileged`, `--security-opt`, `--read-only`, `--tmpfs`, `--user`).

Everything here is pure logic except `filters`, which compiles profiles with libseccomp; the
launcher (launcher/corral-launch.c) is what applies the result to the container's init.
"""
