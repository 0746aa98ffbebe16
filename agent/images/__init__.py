"""Images and the root filesystems of containers.

  model    `Image`, `ImageConfig` and `parse_reference` ("busybox" -> ("busybox", "latest"))
  store    `ImageStore`: content-addressed layers (one extracted directory per layer, named by
           the sha256 of its uncompressed tar), a JSON index of references, imports of
           `docker export` tarballs and OCI image layouts, and the embedded busybox image
  overlay  mounting and unmounting overlayfs through mount(2)/umount2(2)
  rootfs   `RootfsManager`: a container's upper/work directories and its mounted overlay root
"""
