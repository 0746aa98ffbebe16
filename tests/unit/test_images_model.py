"""Image references, ImageConfig and Image: parsing, validation and the JSON round trip."""
from __future__ import annotations

import pytest

from agent.errors import InvalidArgument
from agent.images.model import DEFAULT_PATH, Image, ImageConfig, image_id, parse_reference

LAYER = "sha256:" + "ab" * 32


@pytest.mark.parametrize("reference, expected", [
    ("busybox", ("busybox", "latest")),
    ("busybox:1.36", ("busybox", "1.36")),
    ("library/busybox:latest", ("library/busybox", "latest")),
    ("localhost:5000/team/app:v1", ("localhost:5000/team/app", "v1")),
    ("localhost:5000/app", ("localhost:5000/app", "latest")),
    ("registry.example.com/a_b/c-d__e:V_1.0-rc", ("registry.example.com/a_b/c-d__e", "V_1.0-rc")),
])
def test_parse_reference_accepts_docker_style_names(reference, expected):
    assert parse_reference(reference) == expected


@pytest.mark.parametrize("reference, reason", [
    ("", "required"),
    ("Busybox", "lowercase"),
    ("bad name", "not a valid name component"),
    ("busybox:", "tag"),
    ("busybox:-rc", "tag"),
    ("busybox:" + "x" * 129, "tag"),
    ("/busybox", "not a valid name component"),
    ("busybox/", "not a valid name component"),
    ("a..b", "not a valid name component"),
    ("busybox@sha256:" + "0" * 64, "digest"),
    ("bad_host:x/app", "registry"),
])
def test_parse_reference_rejects_bad_references_naming_them(reference, reason):
    with pytest.raises(InvalidArgument) as info:
        parse_reference(reference)
    assert repr(reference) in str(info.value)
    assert reason in str(info.value)


def test_config_defaults_and_round_trip():
    config = ImageConfig()
    assert config.env == [DEFAULT_PATH] and config.workdir == "/" and config.cmd == []
    custom = ImageConfig(entrypoint=["/bin/app"], cmd=["--serve"], env=["A=1"], workdir="/srv")
    assert ImageConfig.from_dict(custom.to_dict()) == custom


def test_config_from_dict_rejects_unknown_keys_and_bad_values():
    with pytest.raises(InvalidArgument, match="unknown field 'Cmd'"):
        ImageConfig.from_dict({"Cmd": ["sh"]})
    with pytest.raises(InvalidArgument, match="image config.cmd: expected a list of strings"):
        ImageConfig.from_dict({"cmd": "sh"})
    with pytest.raises(InvalidArgument, match="'NOEQUALS'"):
        ImageConfig(env=["NOEQUALS"])
    with pytest.raises(InvalidArgument, match="'srv'"):
        ImageConfig(workdir="srv")


def _image(**changes) -> Image:
    config = ImageConfig(cmd=["sh"])
    fields = dict(id=image_id([LAYER], config), name="busybox", tag="latest", layers=[LAYER],
                  config=config, created=1700000000.5, size=1234)
    fields.update(changes)
    return Image(**fields)


def test_image_round_trip_and_display_fields():
    image = _image()
    assert Image.from_dict(image.to_dict()) == image
    assert image.reference == "busybox:latest"
    assert len(image.short_id) == 12 and image.id.startswith("sha256:" + image.short_id)


def test_image_from_dict_rejects_unknown_and_missing_keys():
    data = _image().to_dict()
    with pytest.raises(InvalidArgument, match="unknown field 'repo'"):
        Image.from_dict({**data, "repo": "x"})
    del data["size"]
    with pytest.raises(InvalidArgument, match="field 'size' is required"):
        Image.from_dict(data)
    with pytest.raises(InvalidArgument, match="not a sha256 digest"):
        _image(layers=["md5:abc"])


def test_image_id_depends_on_layers_their_order_and_config():
    other = "sha256:" + "cd" * 32
    base = image_id([LAYER, other], ImageConfig())
    assert base == image_id([LAYER, other], ImageConfig())
    assert base != image_id([other, LAYER], ImageConfig())
    assert base != image_id([LAYER, other], ImageConfig(cmd=["sh"]))
    assert base.startswith("sha256:") and len(base) == 7 + 64


DOCKER_CONFIG = {"Env": ["PATH=/bin", "A=1"], "Cmd": ["nginx", "-g", "daemon off;"], "Entrypoint": ["/init"],
                 "WorkingDir": "/srv", "User": "www-data:www-data", "Labels": {"maintainer": "x"},
                 "ExposedPorts": {"80/tcp": {}, "53/udp": {}}, "Volumes": {"/data": {}},
                 "StopSignal": "SIGQUIT", "Shell": ["/bin/bash", "-c"], "ArgsEscaped": True,
                 "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000, "Retries": 3}}


def test_config_reads_docker_image_config_and_writes_it_back():
    config = ImageConfig.from_oci(DOCKER_CONFIG, "blob")
    assert config.user == "www-data:www-data" and config.stop_signal == "SIGQUIT"
    assert config.exposed_ports == ["53/udp", "80/tcp"] and config.volumes == ["/data"]
    assert config.healthcheck == {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000, "Retries": 3}
    written = config.to_oci()
    assert "ArgsEscaped" not in written     # what docker ignores is not carried
    assert ImageConfig.from_oci(written, "again") == config
    assert ImageConfig.from_dict(config.to_dict()) == config


def test_config_from_oci_defaults_and_errors_name_the_field():
    assert ImageConfig.from_oci(None, "blob") == ImageConfig()
    with pytest.raises(InvalidArgument, match=r"blob\.Labels"):
        ImageConfig.from_oci({"Labels": {"a": 1}}, "blob")
    with pytest.raises(InvalidArgument, match=r"blob\.Healthcheck: unknown field 'Bogus'"):
        ImageConfig.from_oci({"Healthcheck": {"Bogus": 1}}, "blob")
    with pytest.raises(InvalidArgument, match="exposed port '80/xyz'"):
        ImageConfig.from_oci({"ExposedPorts": {"80/xyz": {}}}, "blob")


def test_new_config_fields_leave_the_ids_of_older_images_alone():
    # An image stored before user/labels/... existed hashed only the first four fields.
    assert set(ImageConfig(cmd=["sh"]).to_dict()) == {"entrypoint", "cmd", "env", "workdir"}
    assert image_id([f"sha256:{'a' * 64}"], ImageConfig(cmd=["sh"])) != image_id(
        [f"sha256:{'a' * 64}"], ImageConfig(cmd=["sh"], user="1000"))
