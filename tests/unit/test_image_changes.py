"""Dockerfile config instructions (`commit --change`) and image history rows: pure logic."""
from __future__ import annotations

import json

import pytest

from agent.errors import InvalidArgument
from agent.images.changes import apply_changes
from agent.images.describe import _seconds, history
from agent.images.model import Image, ImageConfig
from agent.images.store import ImageStore

BASE = ImageConfig(cmd=["sh"], env=["PATH=/bin"])


def test_each_instruction_changes_its_field():
    config = apply_changes(BASE, ['CMD ["nginx", "-g", "daemon off;"]', "ENV A=1 B=\"two words\"", "ENV C old form",
                                  "LABEL x=y", "EXPOSE 80 53/udp", 'VOLUME ["/data"]', "WORKDIR app",
                                  "USER www", "STOPSIGNAL SIGQUIT"])
    assert config.cmd == ["nginx", "-g", "daemon off;"]
    assert config.env == ["PATH=/bin", "A=1", "B=two words", "C=old form"]
    assert config.labels == {"x": "y"} and config.exposed_ports == ["53/udp", "80/tcp"]
    assert config.volumes == ["/data"] and config.workdir == "/app" and config.user == "www"
    assert config.stop_signal == "SIGQUIT"


def test_shell_form_uses_the_images_shell_and_entrypoint_clears_cmd():
    config = apply_changes(BASE, ['SHELL ["/bin/bash", "-c"]', "ENTRYPOINT echo hi"])
    assert config.entrypoint == ["/bin/bash", "-c", "echo hi"] and config.cmd == []
    assert apply_changes(BASE, ["CMD [not json"]).cmd == ["/bin/sh", "-c", "[not json"]


@pytest.mark.parametrize("change, message", [
    ("RUN make", "RUN cannot be applied"), ("CMD", "CMD needs an argument"),
    ("LABEL novalue", "'novalue' is not KEY=VALUE"), ("EXPOSE http", "exposed port"),
    ('CMD ["a", 1]', "JSON list of strings"), ("ENV A='unclosed", "No closing quotation"),
])
def test_bad_changes_name_the_instruction(change, message):
    with pytest.raises(InvalidArgument, match=message) as caught:
        apply_changes(BASE, [change])
    assert repr(change.strip()) in caught.value.message


def test_history_rows_follow_the_config_blob(tmp_path):
    store = ImageStore(tmp_path)
    layers = [f"sha256:{c * 64}" for c in "ab"]
    for digest, size in zip(layers, (100, 20)):
        store.layer_dir(digest).mkdir(parents=True)
        store.layer_dir(digest).with_suffix(".json").write_text(json.dumps({"size": size}))
    blob = store.save_blob(json.dumps({"history": [
        {"created": "2024-01-02T03:04:05.123456789Z", "created_by": "ADD rootfs"},
        {"created": "2024-01-02T03:04:06Z", "created_by": "ENV A=1", "empty_layer": True},
        {"created": "2024-01-02T03:04:07Z", "created_by": "RUN make", "comment": "c"}]}).encode())
    image = Image(id=f"sha256:{'c' * 64}", name="app", tag="1", layers=layers, config=BASE, created=0, size=120,
                  config_digest=blob)
    rows = history(store, image)
    assert [(r["CreatedBy"], r["Size"]) for r in rows] == [("RUN make", 20), ("ENV A=1", 0), ("ADD rootfs", 100)]
    assert rows[0]["Id"] == image.id and rows[0]["Tags"] == ["app:1"] and rows[1]["Id"] == "<missing>"
    assert rows[2]["Created"] == 1704164645


def test_history_without_a_config_blob_is_one_row_per_layer(tmp_path):
    store = ImageStore(tmp_path)
    image = Image(id=f"sha256:{'c' * 64}", name="app", tag="1", layers=[f"sha256:{'a' * 64}"], config=BASE,
                  created=5, size=0)
    assert [(r["Comment"], r["Size"], r["Created"]) for r in history(store, image)] == [("layer", 0, 5)]
    assert _seconds("garbage", 7) == 7
