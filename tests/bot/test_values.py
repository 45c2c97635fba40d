"""Pin edits keep every byte of values.yaml except the pinned scalars."""

from __future__ import annotations

import pytest

from bot.output import EnvbotError
from bot.values import ImagePin, ModelPin, ReleasePin, edit_pin_text, read_pin_text

COMMENTED = """\
# Heavily commented values   -- keep me
image:   # the release pin
  # registry and repository
  repository: old.azurecr.io/ai-app    # trailing comment

  tag: "0.9"     # people read this
  digest: 'sha256:aaaa'   # what deploys
  requireDigest: true
# between sections

model:
  source: blob
  name: iris-logreg
  version: 1          # plain int on purpose
  uri: https://acct.blob.core.windows.net/models/iris-logreg/1/model.onnx
  sha256:             # empty until pinned
  mountPath: /var/lib/ai-app/model
replicaCount: 3   # unrelated
list:
  - {a: 1,   b: "x"}
"""
NEW = ReleasePin(ImagePin("new.azurecr.io/ai-app", "1.0", "sha256:" + "b" * 64),
                 ModelPin("blob", "iris-logreg", "2",
                          "https://acct.blob.core.windows.net/models/iris-logreg/2/model.onnx", "c" * 64))


def test_only_pinned_scalars_change_byte_for_byte():
    edited = edit_pin_text(COMMENTED, NEW, "values.yaml")
    expected = (COMMENTED
                .replace("repository: old.azurecr.io/ai-app    #", "repository: new.azurecr.io/ai-app    #")
                .replace('tag: "0.9"     #', 'tag: "1.0"     #')
                .replace("digest: 'sha256:aaaa'   #", f"digest: 'sha256:{'b' * 64}'   #")
                .replace("version: 1          #", 'version: "2"          #')
                .replace("iris-logreg/1/model.onnx", "iris-logreg/2/model.onnx")
                .replace("sha256:             #", f'sha256: "{"c" * 64}"             #'))
    assert edited == expected
    assert read_pin_text(edited, "values.yaml") == NEW


def test_unchanged_pin_is_a_no_op():
    edited = edit_pin_text(COMMENTED, NEW, "values.yaml")
    assert edit_pin_text(edited, NEW, "values.yaml") == edited


def test_crlf_and_missing_key_insertion():
    text = "image:\r\n  repository: a.io/x\r\n  tag: t\r\nother: 1\r\n"
    edited = edit_pin_text(text, ReleasePin(ImagePin("a.io/x", "t2", "sha256:" + "d" * 64), ModelPin()), "v.yaml")
    assert edited == f'image:\r\n  repository: a.io/x\r\n  tag: t2\r\n  digest: "sha256:{"d" * 64}"\nother: 1\r\n'


def test_malformed_yaml_names_file_and_line():
    with pytest.raises(EnvbotError, match=r"^dev/values.yaml:3: malformed YAML"):
        read_pin_text("image:\n  tag: x\n  digest: [oops\n", "dev/values.yaml")


def test_missing_image_mapping_is_an_error():
    with pytest.raises(EnvbotError, match="no 'image:' mapping"):
        edit_pin_text("replicaCount: 1\n", NEW, "v.yaml")
