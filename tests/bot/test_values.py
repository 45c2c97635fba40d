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
    # The inserted line takes the file's CRLF too.
    assert edited == f'image:\r\n  repository: a.io/x\r\n  tag: t2\r\n  digest: "sha256:{"d" * 64}"\r\nother: 1\r\n'


def test_malformed_yaml_names_file_and_line():
    with pytest.raises(EnvbotError, match=r"^dev/values.yaml:3: malformed YAML"):
        read_pin_text("image:\n  tag: x\n  digest: [oops\n", "dev/values.yaml")


def test_missing_image_mapping_is_an_error():
    with pytest.raises(EnvbotError, match="no 'image:' mapping"):
        edit_pin_text("replicaCount: 1\n", NEW, "v.yaml")


# Finding 6: line endings and a BOM survive a pin edit byte for byte.
PLAIN = "image:\n  repository: a.io/x\n  tag: t\n  digest: \"\"\nreplicaCount: 1\nlong: |\n  keep\n  me\n"
PIN = ReleasePin(ImagePin("a.io/x", "t2", "sha256:" + "e" * 64), ModelPin())


def _changed_lines(before: str, after: str) -> int:
    return sum(a != b for a, b in zip(before.splitlines(keepends=True), after.splitlines(keepends=True), strict=True))


def test_crlf_file_stays_crlf_and_only_pinned_lines_change():
    text = PLAIN.replace("\n", "\r\n")
    edited = edit_pin_text(text, PIN, "v.yaml")
    assert edited.count("\r\n") == text.count("\r\n") and "\n" not in edited.replace("\r\n", "")
    assert _changed_lines(text, edited) == 2


def test_mixed_line_endings_stay_as_they_were():
    text = "image:\r\n  repository: a.io/x\n  tag: t\r\n  digest: \"\"\nreplicaCount: 1\r\n"
    edited = edit_pin_text(text, PIN, "v.yaml")
    assert [line[-2:] == "\r\n" for line in edited.splitlines(keepends=True)] == \
        [line[-2:] == "\r\n" for line in text.splitlines(keepends=True)]
    assert _changed_lines(text, edited) == 2


def test_bom_is_kept():
    text = "\ufeff" + PLAIN
    edited = edit_pin_text(text, PIN, "v.yaml")
    assert edited.startswith("\ufeffimage:\n") and _changed_lines(text, edited) == 2
    assert read_pin_text(edited, "v.yaml").image == PIN.image


# Finding 7: flow mappings are edited in place; anchors, aliases and merge keys on pins are refused.
def test_flow_mapping_is_edited_in_place():
    text = 'image: {repository: a.io/x, tag: t, digest: ""}\nreplicaCount: 1\n'
    edited = edit_pin_text(text, PIN, "v.yaml")
    assert edited == f'image: {{repository: a.io/x, tag: t2, digest: "sha256:{"e" * 64}"}}\nreplicaCount: 1\n'
    text = "image: {repository: a.io/x, tag: t}\n"
    edited = edit_pin_text(text, PIN, "v.yaml")
    assert edited == f'image: {{repository: a.io/x, tag: t2, digest: "sha256:{"e" * 64}"}}\n'


@pytest.mark.parametrize(("text", "line", "message"), [
    ("defaults: &d\n  repository: a.io/x\n  tag: t\n  digest: \"\"\nimage:\n  <<: *d\n  tag: t\n", 6,
     "'image' has a YAML merge key (<<)"),
    ("base: &b\n  image:\n    repository: a.io/x\n    tag: t\n    digest: \"\"\n<<: *b\n", 6,
     "'image' comes from a YAML merge key (<<)"),
    ("image: &img\n  repository: a.io/x\n  tag: t\n  digest: \"\"\nother: *img\n", 1,
     "'image' has the anchor &img"),
    ("x: &tag t\nimage:\n  repository: a.io/x\n  tag: *tag\n  digest: \"\"\n", 4,
     "image.tag has the anchor &tag"),
    ("image:\n  repository: a.io/x\n  tag: &t t\n  digest: \"\"\nsidecar:\n  tag: *t\n", 3,
     "image.tag has the anchor &t"),
])
def test_anchors_aliases_and_merge_keys_on_pins_are_refused(text, line, message):
    with pytest.raises(EnvbotError) as caught:
        edit_pin_text(text, PIN, "dev/values.yaml")
    assert str(caught.value).startswith(f"dev/values.yaml:{line}: ")
    assert message in str(caught.value)


def test_anchors_elsewhere_are_fine():
    text = "common: &c {a: 1}\nimage:\n  repository: a.io/x\n  tag: t\n  digest: \"\"\nextra: *c\n"
    assert read_pin_text(edit_pin_text(text, PIN, "v.yaml"), "v.yaml").image == PIN.image
