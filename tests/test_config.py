"""YAML configs: validation into dataclasses, overrides, the shipped files in configs/."""

from __future__ import annotations

from pathlib import Path

import pytest

from posrec.config import (Config, config_from_dict, config_to_dict, load_config, resolve_path,
                           save_config)
from posrec.errors import PosrecError
from posrec.paths import shared_data_dir

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


def write(tmp_path: Path, text: str, name: str = "x.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def error(path_or_raw, overrides=()) -> str:
    with pytest.raises(PosrecError) as e:
        if isinstance(path_or_raw, Path):
            load_config(path_or_raw, overrides)
        else:
            config_from_dict(path_or_raw, "configs/x.yaml", overrides=overrides)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_defaults_and_name(tmp_path):
    cfg = load_config(write(tmp_path, "train: {lr: 0.05}\n", "my_run.yaml"))
    assert isinstance(cfg, Config)
    assert cfg.train.lr == 0.05 and cfg.train.nesterov and cfg.train.momentum == 0.9
    assert cfg.name == "my_run" and cfg.out_dir == "runs/my_run"
    assert cfg.data.feats == ["j"] and cfg.data.augment.flip == 0
    assert load_config(write(tmp_path, "")).train.epochs == 16  # an empty file is all defaults


def test_unknown_keys_name_the_file_and_dotted_key(tmp_path):
    p = write(tmp_path, "train:\n  lrr: 0.1\n")
    assert error(p) == f"{p}: unknown key 'train.lrr'"
    assert error({"data": {"augment": {"flipp": 1}}}) == \
        "configs/x.yaml: unknown key 'data.augment.flipp'"
    assert error({"modle": {}}) == "configs/x.yaml: unknown key 'modle'"


@pytest.mark.parametrize("raw, words", [
    ({"train": {"lr": "fast"}}, "'train.lr' must be a number, got 'fast' (str)"),
    ({"train": {"epochs": 2.5}}, "'train.epochs' must be an integer, got 2.5"),
    ({"train": {"epochs": True}}, "'train.epochs' must be an integer, got True"),
    ({"train": {"amp": "yes"}}, "'train.amp' must be true or false, got 'yes'"),
    ({"train": {"nesterov": 1}}, "'train.nesterov' must be true or false, got 1"),
    ({"model": {"flags": [1]}}, "'model.flags' must be a mapping"),
    ({"model": 3}, "'model' must be a mapping, got 3 (int)"),
    ({"data": {"feats": ["j", 5]}}, "'data.feats[1]' must be a string, got 5"),
    ({"data": {"feats": ["joint"]}}, "'data.feats[0]' must be one of j, b, jm, bm"),
    ({"model": {"arch": "resnet"}}, "'model.arch' must be one of stgcn, stgcn++, ctrgcn"),
    ({"data": {"format": "csv"}}, "'data.format' must be one of"),
    ({"train": {"batch_size": 0}}, "'train.batch_size' must be at least 1"),
    ({"train": {"weight_decay": -1}}, "'train.weight_decay' must not be negative"),
    ({"train": {"label_smoothing": 1.0}}, "'train.label_smoothing' must be in [0, 1)"),
    ({"data": {"augment": {"flip": 2}}}, "'data.augment.flip' is a probability"),
    ({"train": {"test_checkpoint": "first"}}, "'train.test_checkpoint' must be last or best"),
])
def test_wrong_types_and_values(raw, words):
    msg = error(raw)
    assert msg.startswith("configs/x.yaml: ") and words in msg


def test_yaml_conveniences():
    cfg = config_from_dict({"train": {"lr": 1, "grad_clip": None}, "data": {"feats": "b"}})
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)  # an int is a number
    assert cfg.train.grad_clip is None and cfg.data.feats == ["b"]


def test_invalid_yaml_and_missing_file(tmp_path):
    msg = error(write(tmp_path, "train: [1,\n"))
    assert "invalid YAML" in msg
    assert "cannot read config" in error(tmp_path / "missing.yaml")
    assert "must be a mapping" in error(write(tmp_path, "- 1\n- 2\n"))


def test_overrides_use_yaml_scalars_and_the_same_checks(tmp_path):
    p = write(tmp_path, "train: {lr: 0.1}\n")
    cfg = load_config(p, ["train.lr=0.05", "train.amp=false", "data.feats=[j, b]",
                          "model.flags.tcn_dropout=0.1", "train.grad_clip=null",
                          "data.augment.flip=0.5", "out_dir=/tmp/somewhere"])
    assert cfg.train.lr == 0.05 and cfg.train.amp is False and cfg.data.feats == ["j", "b"]
    assert cfg.model.flags == {"tcn_dropout": 0.1} and cfg.train.grad_clip is None
    assert cfg.data.augment.flip == 0.5 and cfg.out_dir == "/tmp/somewhere"
    assert error(p, ["train.lrr=1"]) == "--set train.lrr=1: unknown key 'train.lrr'"
    assert "'train.lr' must be a number, got 'abc'" in error(p, ["train.lr=abc"])
    assert "expected key=value" in error(p, ["train.lr"])
    assert "'train' is not a section" in error(write(tmp_path, "train: 3\n", "y.yaml"),
                                               ["train.lr=1"])
    assert "'train.batch_size' must be at least 1" in error(p, ["train.batch_size=0"])


def test_round_trip_through_dict_and_yaml(tmp_path):
    cfg = load_config(ROOT / "configs" / "ci_penn_slice.yaml", ["train.lr=0.02"])
    again = config_from_dict(config_to_dict(cfg), "checkpoint")
    assert again == cfg
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg


def test_shared_data_variable_expands_even_when_unset(monkeypatch):
    monkeypatch.delenv("POSREC_SHARED_DATA", raising=False)
    p = resolve_path("$POSREC_SHARED_DATA/skeleton/x")
    assert p == shared_data_dir() / "skeleton" / "x"
    monkeypatch.setenv("POSREC_SHARED_DATA", "/data")
    assert resolve_path("${POSREC_SHARED_DATA}/a") == Path("/data/a")


def test_shipped_configs_load_and_build():
    """Every file in configs/ validates, names a known layout and builds its model."""
    import torch

    from posrec.models import build_model
    from posrec.skeleton import get_layout

    assert len(CONFIGS) >= 14
    names = {p.stem for p in CONFIGS}
    for stream in ("joint", "bone", "joint_motion", "bone_motion"):
        assert {f"stgcn++_nwucla_{stream}", f"ctrgcn_nwucla_{stream}",
                f"stgcn++_penn_{stream}"} <= names
    assert {"stgcn_penn_joint", "ci_penn_slice"} <= names
    for p in CONFIGS:
        cfg = load_config(p)
        lay = get_layout(cfg.data.layout)
        src = resolve_path(cfg.data.source)
        # the real data, or a dataset pickle (built by a tool or `posrec extract`)
        assert src.parts[-1] in ("labels", "nw_ucla") or (
            cfg.data.format == "pickle" and src.suffix == ".pkl"), p
        c = 3 * len(cfg.data.feats)  # 2D + score or 3D, per stream
        model = build_model(cfg.model.arch, 15, cfg.data.layout, c, cfg.model.num_person,
                            **cfg.model.flags)
        x = torch.zeros(1, cfg.model.num_person, 8, lay.num_joints, c)
        assert model.eval()(x).shape == (1, 15), p


@pytest.mark.parametrize("command", [["train", "c.yaml"], ["test", "c.yaml", "last.pt"]])
def test_cli_set_takes_several_values_and_repeats(command):
    from posrec.cli import build_parser

    args = build_parser().parse_args(command + ["--set", "train.lr=0.01", "data.test_flip=true",
                                                "--set", "train.seed=1"])
    assert args.set == ["train.lr=0.01", "data.test_flip=true", "train.seed=1"]


def test_numbers_parse_as_yaml_1_2(tmp_path):
    # PyYAML (YAML 1.1) reads 5e-4 and 1e-3 as strings; PYSKL configs write them all the time
    p = write(tmp_path, "train: {weight_decay: 5e-4, lr: 1e-3, min_lr: 1E-5}\n"
                        "model: {flags: {tcn_dropout: 1e-1}}\n")
    cfg = load_config(p, ["train.label_smoothing=1e-1", "train.grad_clip=2e1"])
    assert (cfg.train.weight_decay, cfg.train.lr, cfg.train.min_lr) == (5e-4, 1e-3, 1e-5)
    assert cfg.train.label_smoothing == 0.1 and cfg.train.grad_clip == 20.0
    assert cfg.model.flags == {"tcn_dropout": 0.1}
    assert config_from_dict({"train": {"lr": "2e-3"}}).train.lr == 2e-3  # a dict from Python
    assert "must be a number, got 'e-3'" in error(p, ["train.lr=e-3"])


def test_zero_epochs_is_an_error():
    assert "'train.epochs' must be at least 1, got 0" in error({"train": {"epochs": 0}})


def test_base_include_overrides_section_by_section(tmp_path):
    (tmp_path / "sub").mkdir()
    write(tmp_path, "data: {layout: penn13, clip_len: 64, feats: [j], augment: {flip: 0.5}}\n"
                    "train: {epochs: 50, lr: 0.025}\n", "joint.yaml")
    p = write(tmp_path, "base: ../joint.yaml\ndata: {feats: [b], augment: {scale: 0.1}}\n"
                        "train: {epochs: 16}\n", "sub/bone.yaml")
    cfg = load_config(p)
    assert cfg.data.feats == ["b"] and cfg.data.clip_len == 64 and cfg.data.layout == "penn13"
    assert cfg.data.augment.flip == 0.5 and cfg.data.augment.scale == 0.1
    assert cfg.train.epochs == 16 and cfg.train.lr == 0.025
    assert cfg.name == "bone" and cfg.out_dir == "runs/bone"  # the including file names the run


def test_base_include_loop_and_missing_file(tmp_path, capsys):
    from posrec.cli import main

    write(tmp_path, "base: b.yaml\n", "a.yaml")
    write(tmp_path, "base: a.yaml\ntrain: {epochs: 2}\n", "b.yaml")
    assert "'base' includes loop back to a.yaml" in error(tmp_path / "a.yaml")
    missing = write(tmp_path, "base: nope.yaml\n", "m.yaml")
    assert f"{missing.resolve()}: base file {tmp_path / 'nope.yaml'}: cannot read config" in \
        error(missing)
    assert "'base' must be the path" in error(write(tmp_path, "base: [1]\n", "l.yaml"))
    for name in ("a.yaml", "m.yaml"):
        assert main(["train", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("posrec: error:")


def test_shipped_stream_configs_are_their_joint_config_plus_a_few_lines():
    streams = [p for p in CONFIGS if p.stem.endswith(("_bone", "_joint_motion", "_bone_motion"))]
    assert len(streams) == 9
    for p in streams:
        text = p.read_text()
        base = load_config(p.parent / text.split("base:")[1].split()[0])
        assert base.name.endswith("_joint") and load_config(p).data.feats != base.data.feats, p
        assert len([l for l in text.splitlines() if l.strip()]) < 6, p
