"""A container's files from the host: paths resolved inside the container's root (resolve.py),
read as tar streams (tar_out.py), written from tar streams (tar_in.py) and compared with the
image (diff.py). `corral cp`, `corral export`, `corral diff` and filling a new volume from the
image all go through here, so no file operation on a container's behalf follows a link out of it.
"""
