"""Label names with control or bidirectional characters are refused wherever labels enter vsgg; files that are not
UTF-8 text, or not maps, are named in the error."""
import json

import pytest

from engine.io.vidvrd import load_vidvrd
from engine.vocab import Vocabulary, builtin, check_name, load_name_map

BAD_NAMES = ["per\x9bson", "\u202eperson", "per\u2066son", "dog\x1b[2J", "zero\u200dwidth", "line\u2028sep",
             "tab\tname", "nul\x00"]
FIXTURE = "tests/data/vidor/3598080384.json"


@pytest.mark.parametrize("name", BAD_NAMES)
def test_check_name_refuses_control_and_bidi_characters(name):
    with pytest.raises(ValueError, match=r"here: label name .* is not allowed \(non-printable character U\+"):
        check_name(name, "here")


@pytest.mark.parametrize("name, why", [("", "empty name"), (" person", "leading or trailing whitespace"),
                                       ("person\n", "leading or trailing whitespace")])
def test_check_name_empty_or_padded(name, why):
    with pytest.raises(ValueError, match=rf"label name .* is not allowed \({why}\)"):
        check_name(name, "here")


def test_check_name_accepts_ordinary_names_and_shows_bad_ones_escaped():
    for ok in ("person", "in_front_of", "teddy bear", "café", "狗", "domestic_cat"):
        assert check_name(ok, "x") == ok
    with pytest.raises(ValueError) as e:
        check_name("a\x9bb\u202ec", "x")
    assert "\x9b" not in str(e.value) and "\u202e" not in str(e.value) and r"'a\x9bb\u202ec'" in str(e.value)
    with pytest.raises(TypeError, match="label name 5 is not allowed"):
        check_name(5, "x")


def test_every_builtin_vocabulary_passes():
    for name in ("vidvrd_objects", "vidvrd_predicates", "ag_objects", "ag_predicates", "meva_objects",
                 "meva_predicates"):
        assert len(builtin(name)) > 0


@pytest.mark.parametrize("name", BAD_NAMES[:4])
def test_vocabulary_and_class_file_refuse_bad_names(tmp_path, name):
    with pytest.raises(ValueError, match=r"vocabulary 'v' entry 1: label name"):
        Vocabulary("v", ("person", name))
    p = tmp_path / "classes.txt"
    p.write_text(f"person\n{name}\ncar\n")
    with pytest.raises(ValueError, match=r"classes\.txt: vocabulary 'classes' entry 1: label name .* is not "
                                         r"allowed \(non-printable"):
        Vocabulary.from_file(p)


def test_vocabulary_unknown_label_error_is_escaped():
    v = Vocabulary("v", ("person",))
    with pytest.raises(ValueError, match=r"unknown label 'x\\x9b' for vocabulary 'v'"):
        v.index("x\x9b")


def test_binary_class_file_is_named(tmp_path):
    p = tmp_path / "classes.txt"
    p.write_bytes(b"person\n\xff\xd8\xff\xe0 jpeg")
    with pytest.raises(ValueError, match=r"vocabulary file .*classes\.txt: not UTF-8 text \(undecodable byte at "
                                         r"offset 7\)"):
        Vocabulary.from_file(p)


@pytest.mark.parametrize("where, name", [("category", "\u202eadult"), ("predicate", "next\x9b_to")])
def test_vidvrd_json_refuses_bad_names(tmp_path, where, name):
    d = json.loads(open(FIXTURE).read())
    if where == "category":
        d["subject/objects"][0]["category"] = name
    else:
        d["relation_instances"][0]["predicate"] = name
    p = tmp_path / "a.json"
    p.write_text(json.dumps(d))
    with pytest.raises(ValueError, match=rf"a\.json \(video 3598080384\) .*'{where}': label name .* is not "
                                         r"allowed \(non-printable"):
        load_vidvrd(p)


@pytest.mark.parametrize("suffix, text", [(".yaml", "adult: \"per\\x9bson\"\n"),
                                          (".yaml", "\"\\u202eadult\": person\n"),
                                          (".json", '{"adult": "per\\u202eson"}')])
def test_category_map_refuses_bad_names(tmp_path, suffix, text):
    p = tmp_path / f"cats{suffix}"
    p.write_text(text)
    with pytest.raises(ValueError, match=rf"category map .*cats\{suffix}.*label name .* is not allowed "
                                         r"\(non-printable character"):
        load_name_map(p, "category map")


def test_category_map_reads_yaml_and_json(tmp_path):
    (tmp_path / "m.yaml").write_text("adult: person\nstingray: null\n")
    (tmp_path / "m.json").write_text('{"adult": "person"}')
    (tmp_path / "e.yaml").write_text("")
    assert load_name_map(tmp_path / "m.yaml") == {"adult": "person", "stingray": None}
    assert load_name_map(tmp_path / "m.json") == {"adult": "person"}
    assert load_name_map(tmp_path / "e.yaml") == {}


@pytest.mark.parametrize("name, content, match", [
    ("bin.yaml", b"\x89PNG\r\n\x1a\n\x00\x00", r"category map .*bin\.yaml: not UTF-8 text"),
    ("list.yaml", b"- adult\n- person\n",
     r"category map .*list\.yaml: expected a mapping \{name: label\}, got list"),
    ("num.yaml", b"1: person\n", r"category map .*num\.yaml: entries must be 'name: label' or 'name: null', got 1"),
    ("nested.yaml", b"adult: {a: b}\n", r"entries must be .* got 'adult': \{'a': 'b'\}"),
    ("bad.json", b"{adult: person", r"category map .*bad\.json: not valid JSON"),
    ("bad.yaml", b"adult: [person\n", r"category map .*bad\.yaml: not valid YAML"),
    ("deep.json", b"[" * 200_000 + b"]" * 200_000, r"category map .*deep\.json: nested too deeply to parse"),
])
def test_category_map_bad_files_are_named(tmp_path, name, content, match):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        load_name_map(p, "category map")


def test_category_map_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"category map not found: .*nope\.yaml"):
        load_name_map(tmp_path / "nope.yaml", "category map")
