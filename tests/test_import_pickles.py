"""The restricted reader of pickled modules builds only its own stand-ins: crafted
pickles that try to set state on real classes or instances, or to call or fill
anything beyond tensors, containers and stand-ins, are refused in one line.

Each pickle is written opcode by opcode (protocol 2, as ``torch.save`` writes) into
torch's legacy file format, the form ``tvcore import`` reads for an old ``.pt``."""

from __future__ import annotations

import collections
import pickle
import struct
import sys

import pytest
import torch

from tvcore import CheckpointError
from tvcore.importers import load_pickle_restricted


def s(text: str) -> bytes:
    """BINUNICODE: a str."""
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def glob(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def dict_of(**items: bytes) -> bytes:
    """EMPTY_DICT, then SETITEM per pickled value."""
    return b"}" + b"".join(s(k) + v + b"s" for k, v in items.items())


def legacy_file(path, body: bytes):
    """torch's legacy format: magic number, protocol, system info, the object, storage keys."""
    header = b"".join(pickle.dumps(x, protocol=2) for x in (
        torch.serialization.MAGIC_NUMBER, torch.serialization.PROTOCOL_VERSION,
        {"protocol_version": torch.serialization.PROTOCOL_VERSION, "little_endian": sys.byteorder == "little",
         "type_sizes": {"short": 2, "int": 4, "long": 4}}))
    path.write_bytes(header + b"\x80\x02" + body + b"." + pickle.dumps([], protocol=2))
    return path


def refused(path) -> str:
    with pytest.raises(CheckpointError) as err:
        load_pickle_restricted(path)
    message = str(err.value)
    assert "\n" not in message and "refused" in message
    return message


def test_a_plain_stand_in_module_still_reads(tmp_path):
    # A stand-in built as pickle protocol 2 builds any object: NEWOBJ, then BUILD with its __dict__.
    body = glob("src.modeling", "ImageEncoder") + b")" + b"\x81" + dict_of(cache_dir=s("/data")) + b"b"
    obj, named = load_pickle_restricted(legacy_file(tmp_path / "ok.pt", body))
    assert named == ["src.modeling.ImageEncoder"] and obj.cache_dir == "/data"


def test_setting_attributes_on_an_allowed_class_is_refused(tmp_path):
    # BUILD with a slot state on the class collections.Counter itself: pickle's
    # load_build would setattr on the real class, for the whole process.
    body = glob("collections", "Counter") + b"N" + dict_of(tvcore_planted=b"K\x01") + b"\x86" + b"b"
    path = legacy_file(tmp_path / "class.pt", body)
    message = refused(path)
    assert "collections.Counter" in message
    assert not hasattr(collections.Counter, "tvcore_planted")
    with pytest.raises(pickle.UnpicklingError):  # torch's weights-only loader refuses it too
        torch.load(path, weights_only=True)


def test_setting_state_on_an_allowed_instance_is_refused(tmp_path):
    body = glob("collections", "Counter") + b")" + b"R" + dict_of(most_common=s("planted")) + b"b"
    assert "collections.Counter" in refused(legacy_file(tmp_path / "instance.pt", body))


def test_setting_attributes_on_a_stand_in_class_is_refused(tmp_path):
    body = glob("evil", "Thing") + b"N" + dict_of(__setstate__=glob("_codecs", "encode")) + b"\x86" + b"b"
    assert "the class" in refused(legacy_file(tmp_path / "standin-class.pt", body))


def test_a_planted_setstate_is_never_called(tmp_path):
    # The first BUILD puts an allowed function under __setstate__ in the stand-in's
    # __dict__; pickle would call it for the second BUILD. The stand-in keeps the state.
    body = (glob("src.modeling", "ImageEncoder") + b")" + b"\x81"
            + dict_of(__setstate__=glob("_codecs", "encode")) + b"b" + s("second") + b"b")
    obj, _ = load_pickle_restricted(legacy_file(tmp_path / "planted.pt", body))
    assert obj.__dict__["_standin_state"] == "second"


def test_items_go_only_into_real_containers(tmp_path):
    # A stand-in given an 'append' attribute, then APPEND: pickle would call that attribute.
    body = (glob("src.modeling", "ImageEncoder") + b")" + b"\x81"
            + dict_of(append=glob("collections", "Counter")) + b"b" + s("item") + b"a")
    assert "APPEND" in refused(legacy_file(tmp_path / "append.pt", body))


def test_ordered_dict_metadata_as_state_dicts_carry_it_still_reads(tmp_path):
    state = collections.OrderedDict(w=torch.ones(2))
    state._metadata = {"": {"version": 1}}
    torch.save({"state_dict": state, "note": collections.Counter(a=1)}, tmp_path / "sd.pt",
               _use_new_zipfile_serialization=False)
    obj, _ = load_pickle_restricted(tmp_path / "sd.pt")
    assert obj["state_dict"]._metadata == {"": {"version": 1}} and torch.equal(obj["state_dict"]["w"], torch.ones(2))
