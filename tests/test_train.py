"""Training and evaluation on real Penn Action (../shared/data).

The CI run trains ST-GCN++ at full width on a class-balanced slice for a few epochs
(configs/ci_penn_slice.yaml); the other tests use even smaller slices of the same real data.
The only synthetic inputs are the corrupted datasets and score files of the error tests and a
reordered copy of real scores for the ensemble test, which real data cannot provide.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from posrec.config import config_from_dict, load_config
from posrec.errors import PosrecError
from posrec.io.pickle import load_dataset, load_pickle, save_dataset, save_pickle
from posrec.checkpoint import FORMAT_VERSION, load_checkpoint, load_model
from posrec.evaluate import ensemble, evaluate
from posrec.train import lr_schedule, train
from train_runs import CI_CONFIG, ROOT, ci_run, penn_pickle

CHANCE = 1 / 15


@pytest.fixture(scope="session")
def penn(tmp_path_factory) -> Path:
    return penn_pickle(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def ci(tmp_path_factory):
    return ci_run(tmp_path_factory.getbasetemp())


def tiny(penn: Path, out: Path, **over) -> object:
    """A few real clips per class, short clips, all augmentations on (they draw random numbers,
    which is what resuming must reproduce)."""
    sets = [f"data.source={penn}", "data.format=pickle", f"out_dir={out}",
            "data.train_per_class=3", "data.test_per_class=2", "data.clip_len=16",
            "data.num_clips=2", "train.epochs=3", "train.batch_size=8", "train.warmup_epochs=1",
            "data.augment={rotate: 0.2, scale: 0.1, shift: 0.05, noise: 0.02, drop: 0.05, "
            "flip: 0.5}", "train.final_test=false"]
    sets += [f"{k.replace('__', '.')}={v}" for k, v in over.items()]
    return load_config(CI_CONFIG, sets)


def ci_input(penn: Path, out: Path, **over) -> object:
    """A small config that scores the CI run's checkpoints: their input (clip length 32)."""
    return tiny(penn, out, data__clip_len=32, **over)


# --- the CI run ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_ci_run_learns_well_above_chance(ci):
    run, m, seconds = ci
    print(f"CI training run: {seconds:.1f} s, test top-1 {m['test_top1']:.3f}, "
          f"top-5 {m['test_top5']:.3f}")
    # Measured on this slice with seeds 0-3: test top-1 0.39-0.53, top-5 0.87-0.92, about 30 s
    # on 2 idle cores. 0.25 is nearly 4x chance and leaves margin for other platforms' floating
    # point (which changes the trajectory).
    assert m["test_top1"] >= 0.25 > 3 * CHANCE
    assert m["test_top5"] >= 0.6
    assert m["epoch"] == 6
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 7))
    assert set(rows[0]) == {"epoch", "train_loss", "train_acc", "val_top1", "val_top5", "lr",
                            "samples_per_s", "time"}
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    for f in ("config.yaml", "metrics.csv", "last.pt", "best.pt", "train.log", "curves.png",
              "test_best/metrics.json", "test_best/per_class.csv", "test_best/confusion.csv",
              "test_best/confusion.png", "test_best/scores.npy", "test_best/scores.pkl"):
        assert (run / f).is_file(), f
    assert not list(run.glob(".*tmp*"))  # no temporary files left behind


@pytest.mark.slow
def test_checkpoint_contents_load_weights_only(ci):
    run = ci[0]
    ck = torch.load(run / "last.pt", weights_only=True)  # no code runs: only tensors/containers
    assert {"format_version", "state_dict", "config", "class_names", "layout", "metrics",
            "epoch", "optimizer", "scheduler", "rng", "arch", "flags", "num_classes",
            "in_channels", "num_person", "pipeline", "selected_on"} <= set(ck)
    assert ck["format_version"] == FORMAT_VERSION
    assert ck["arch"] == "stgcn++" and ck["layout"] == "penn13" and ck["num_classes"] == 15
    assert ck["class_names"][0] == "baseball_pitch" and ck["epoch"] == 6
    assert ck["config"]["model"]["arch"] == "stgcn++"
    assert ck["pipeline"]["clip_len"] == 32 and ck["pipeline"]["feats"] == ["j"]
    assert ck["selected_on"] == {"rule": "last epoch", "split": None, "epoch": 6}
    # best.pt records the validation split that chose it: carved from train, never the test
    best = load_checkpoint(run / "best.pt")
    sel = best["selected_on"]
    assert sel["split"] == "val" and sel["carved_from"] == "train" and sel["metric"] == "val_top1"
    assert sel["epoch"] == best["epoch"] == best["best_epoch"]
    assert sel["value"] == best["best_val_top1"] == best["metrics"]["val_top1"]
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert max(float(r["val_top1"]) for r in rows) == pytest.approx(sel["value"])
    # the resolved config in the run directory is itself a loadable config
    assert load_config(run / "config.yaml").train.epochs == 6


@pytest.mark.slow
def test_load_model_needs_no_config(ci, penn):
    """The model and its input rebuilt from the checkpoint alone give evaluate's scores."""
    from posrec.data.dataset import SkeletonDataset
    from posrec.data.pipeline import InputSpec, build_transform

    run = ci[0]
    model, ck = load_model(run / "best.pt")
    assert not model.training
    spec = InputSpec.from_dict(ck["pipeline"])
    raw = load_pickle(run / "test_best" / "scores.pkl")
    data = load_dataset(penn)
    data["split"]["scored"] = raw["frame_dirs"][:8]
    ds = SkeletonDataset(data, "scored", build_transform(spec, num_clips=2))
    with torch.no_grad():
        x = torch.stack([ds[i][0] for i in range(8)]).flatten(0, 1)  # (8 * 2 clips, M, T, V, C)
        s = model(x).softmax(-1).view(8, 2, -1).mean(1).numpy()
    np.testing.assert_allclose(s, raw["scores"][:8], atol=1e-5)


@pytest.mark.slow
def test_evaluation_outputs_are_consistent(ci):
    run = ci[0]
    m = json.loads((run / "test_best" / "metrics.json").read_text())
    assert m["checkpoint"] == str(run / "best.pt") and m["split"] == "test"
    assert m["selected_on"]["split"] == "val" and m["num_clips"] == 2
    scores = np.load(run / "test_best" / "scores.npy")
    raw = load_pickle(run / "test_best" / "scores.pkl")
    labels = raw["labels"]
    assert scores.shape == (150, 15) and len(raw["frame_dirs"]) == 150
    np.testing.assert_allclose(scores.sum(1), 1, atol=1e-4)  # averaged softmax
    assert m["top1"] == pytest.approx((scores.argmax(1) == labels).mean())
    top5 = np.argsort(-scores, 1)[:, :5]
    assert m["top5"] == pytest.approx((top5 == labels[:, None]).any(1).mean())
    rows = list(csv.DictReader(open(run / "test_best" / "per_class.csv")))
    assert len(rows) == 15 and sum(int(r["support"]) for r in rows) == 150
    assert m["mean_class_acc"] == pytest.approx(np.mean([float(r["accuracy"]) for r in rows]),
                                                abs=1e-5)
    cm = np.array([r[1:] for r in csv.reader(open(run / "test_best" / "confusion.csv"))][1:],
                  int)
    assert np.trace(cm) == round(m["top1"] * 150)
    # the Penn frame_dirs are the .mat stems of the official test clips
    assert all(fd.isdigit() and len(fd) == 4 for fd in raw["frame_dirs"])


@pytest.mark.slow
def test_test_flip_averages_the_mirrored_clips(ci, penn, tmp_path):
    from posrec.data.transforms import flip

    data = load_dataset(penn)
    mirrored = [{**a, **{k: v for k, v in flip(a, "penn13").items()
                         if k in ("keypoint", "keypoint_score")}} for a in data["annotations"]]
    save_dataset({**data, "annotations": mirrored}, tmp_path / "mirrored.pkl")
    ckpt = ci[0] / "last.pt"

    def scores(name, source=penn, **over):
        evaluate(ci_input(source, tmp_path / "r", data__num_clips=2, **over), ckpt,
                 tmp_path / name)
        return np.load(tmp_path / name / "scores.npy")

    plain, both = scores("plain"), scores("both", data__test_flip=True)
    np.testing.assert_allclose(both, (plain + scores("m", tmp_path / "mirrored.pkl")) / 2,
                               atol=1e-5)
    assert not np.allclose(both, plain, atol=1e-3)


# --- resume after a kill ------------------------------------------------------------------------


class Killed(Exception):
    pass


def _comparable(rows):
    return [{k: v for k, v in r.items() if k not in ("time", "samples_per_s")} for r in rows]


@pytest.mark.slow
@pytest.mark.parametrize("kill", ["after_epoch", "while_saving"])
def test_resume_after_kill_equals_uninterrupted(penn, tmp_path, monkeypatch, kill):
    full = train(tiny(penn, tmp_path / "full"))

    cfg = tiny(penn, tmp_path / "killed")
    if kill == "after_epoch":  # dies anywhere in epoch 2: on disk, that is the state after epoch 1
        def hook(epoch, row):
            if epoch == 1:
                raise Killed
        with pytest.raises(Killed):
            train(cfg, on_epoch_end=hook)
    else:  # dies half-way through writing last.pt of epoch 2: the old one must survive
        real_save = torch.save

        def dying_save(obj, f, *a, **k):
            if obj.get("epoch") == 2:  # the first checkpoint file of epoch 2
                f.write(b"\x80\x02half a checkpoint")
                raise Killed
            return real_save(obj, f, *a, **k)
        monkeypatch.setattr(torch, "save", dying_save)
        with pytest.raises(Killed):
            train(cfg)
        monkeypatch.setattr(torch, "save", real_save)
        assert load_checkpoint(tmp_path / "killed" / "last.pt")["epoch"] == 1
    resumed = train(cfg, resume=True)

    assert resumed == full
    a = load_checkpoint(tmp_path / "full" / "last.pt")
    b = load_checkpoint(tmp_path / "killed" / "last.pt")
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    assert _comparable(a["history"]) == _comparable(b["history"])
    rows = list(csv.DictReader(open(tmp_path / "killed" / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]  # no lost or doubled epoch
    log = (tmp_path / "killed" / "train.log").read_text()
    assert "resumed" in log
    peaks = [int(x) for x in re.findall(r"peak memory (\d+) MB", log)]
    assert len(peaks) == 3 and all(300 < p < 24_000 for p in peaks)  # one per epoch, plausible


@pytest.mark.slow
def test_resume_with_workers_equals_uninterrupted(penn, tmp_path):
    # DataLoader workers draw their augmentations from seeds derived from the restored RNG.
    full = train(tiny(penn, tmp_path / "full", train__num_workers=1, train__epochs=2))

    def hook(epoch, row):
        if epoch == 1:
            raise Killed
    cfg = tiny(penn, tmp_path / "killed", train__num_workers=1, train__epochs=2)
    with pytest.raises(Killed):
        train(cfg, on_epoch_end=hook)
    assert train(cfg, resume=True) == full


def test_resume_refuses_a_changed_config(penn, tmp_path):
    cfg = tiny(penn, tmp_path / "run", train__epochs=1)
    train(cfg)
    with pytest.raises(PosrecError, match=r"already holds a run"):
        train(cfg)
    with pytest.raises(PosrecError, match=r"config differs .* train\.lr"):
        train(tiny(penn, tmp_path / "run", train__epochs=1, train__lr=0.5), resume=True)
    # a finished run resumes to its final metrics without training again
    assert train(cfg, resume=True)["epoch"] == 1


def test_streams_concatenate_into_channels(penn, tmp_path):
    m = train(tiny(penn, tmp_path / "jb", data__feats="[j, b]", train__epochs=1))
    assert m["epoch"] == 1
    assert load_checkpoint(tmp_path / "jb" / "last.pt")["in_channels"] == 6  # (x, y, score) x 2
    with pytest.raises(PosrecError, match=r"model.in_channels is 3 but .* has 6 channels"):
        train(tiny(penn, tmp_path / "jb3", data__feats="[j, b]", model__in_channels=3))


def test_init_from_starts_from_weights_with_a_fresh_schedule(penn, tmp_path):
    train(tiny(penn, tmp_path / "a", train__epochs=1))
    src = load_checkpoint(tmp_path / "a" / "last.pt")["state_dict"]
    weights = [k for k in src if k.endswith("weight") and src[k].ndim > 1]  # convs and fc
    # lr 0: the weights are run a's, untouched (only BN running statistics move)
    train(tiny(penn, tmp_path / "b", train__epochs=1, train__lr=0.0,
               train__init_from=str(tmp_path / "a" / "last.pt")))
    frozen = load_checkpoint(tmp_path / "b" / "last.pt")["state_dict"]
    assert all(torch.equal(frozen[k], src[k]) for k in weights)
    # a fresh warm-up and cosine from those weights
    lrs = []
    train(tiny(penn, tmp_path / "c", train__epochs=2, train__warmup_epochs=1,
               train__init_from=str(tmp_path / "a" / "last.pt")),
          on_epoch_end=lambda e, row: lrs.append(row["lr"]))
    ck = load_checkpoint(tmp_path / "c" / "last.pt")
    assert ck["epoch"] == 2 and lrs[0] < lrs[1]  # epoch 1 starts at the bottom of a warm-up
    assert not all(torch.equal(ck["state_dict"][k], src[k]) for k in weights)
    with pytest.raises(PosrecError, match="another model"):
        train(tiny(penn, tmp_path / "d", model__arch="stgcn",
                   train__init_from=str(tmp_path / "a" / "last.pt")))


# --- schedule -----------------------------------------------------------------------------------


def test_warmup_then_cosine_per_iteration():
    cfg = config_from_dict({"train": {"epochs": 10, "warmup_epochs": 2, "lr": 0.1,
                                      "min_lr": 0.001}})
    f = lr_schedule(cfg, iters_per_epoch=5)  # 50 iterations, 10 of warm-up
    assert [round(f(i), 3) for i in range(3)] == [0.1, 0.2, 0.3]
    assert f(9) == pytest.approx(1.0) and f(10) == pytest.approx(1.0)
    assert f(30) == pytest.approx(0.01 + 0.99 * 0.5)  # half-way through the cosine
    assert f(50) == pytest.approx(0.01)
    assert all(f(i) >= f(i + 1) for i in range(10, 50))


# --- bad inputs: one-line PosrecError -----------------------------------------------------------


def _one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg and msg
    return msg


def test_layout_mismatch(penn, tmp_path):
    with pytest.raises(PosrecError) as e:
        train(tiny(penn, tmp_path / "r", data__layout="coco17"))
    assert "layout 'penn13'" in _one_line(e) and "coco17" in str(e.value)


@pytest.fixture(scope="module")
def penn_data(penn):
    return load_dataset(penn)


def test_label_out_of_range(penn_data, tmp_path):
    bad = dict(penn_data)
    fd = bad["split"]["train"][0]
    bad["annotations"] = [dict(a, label=99) if a["frame_dir"] == fd else a
                          for a in penn_data["annotations"]]
    save_dataset(bad, tmp_path / "bad.pkl")
    with pytest.raises(PosrecError) as e:
        train(tiny(tmp_path / "bad.pkl", tmp_path / "r"))
    assert "label 99" in _one_line(e) and fd in str(e.value)


def test_empty_or_missing_split(penn_data, tmp_path):
    with pytest.raises(PosrecError) as e:
        train(tiny(Path("unused"), tmp_path / "r", data__source=str(ROOT / "nope.pkl")))
    assert "does not exist" in _one_line(e)
    save_dataset({**penn_data, "split": {**penn_data["split"], "test": []}}, tmp_path / "e.pkl")
    with pytest.raises(PosrecError) as e:
        train(tiny(tmp_path / "e.pkl", tmp_path / "r"))
    assert "split 'test' is empty" in _one_line(e)
    with pytest.raises(PosrecError) as e:
        train(tiny(tmp_path / "e.pkl", tmp_path / "r", data__train_split="xsub_train"))
    assert "split 'xsub_train'" in _one_line(e)


@pytest.mark.slow
def test_checkpoint_from_another_model(ci, penn, tmp_path):
    ckpt = ci[0] / "last.pt"  # stgcn++, 15 classes, penn13
    for arch in ("stgcn", "ctrgcn"):
        with pytest.raises(PosrecError) as e:
            evaluate(tiny(penn, tmp_path / "r", model__arch=arch), ckpt, tmp_path / "t")
        assert "another model: stgcn++, 15 classes, layout penn13" in _one_line(e)
        assert f"the config builds {arch}," in str(e.value)
    ck = load_checkpoint(ckpt)
    for key, value, words in [("layout", "coco17", "layout coco17"),
                              ("num_classes", 60, "60 classes")]:
        torch.save({**ck, key: value}, tmp_path / "other.pt")
        with pytest.raises(PosrecError) as e:
            evaluate(ci_input(penn, tmp_path / "r"), tmp_path / "other.pt", tmp_path / "t")
        assert "another model" in _one_line(e) and words in str(e.value)
    sd = dict(ck["state_dict"])
    key = next(k for k in sd if k.endswith("weight") and sd[k].ndim > 1)
    sd[key] = torch.zeros(sd[key].shape[0] + 1, *sd[key].shape[1:])
    torch.save({**ck, "state_dict": sd}, tmp_path / "shape.pt")
    with pytest.raises(PosrecError) as e:
        evaluate(ci_input(penn, tmp_path / "r"), tmp_path / "shape.pt", tmp_path / "t")
    assert "do not fit the model" in _one_line(e)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(PosrecError) as e:
        evaluate(tiny(penn, tmp_path / "r"), tmp_path / "junk.pt")
    assert "not a readable posrec checkpoint" in _one_line(e)
    with pytest.raises(PosrecError, match="does not exist"):
        evaluate(tiny(penn, tmp_path / "r"), tmp_path / "missing.pt")


# --- ensembles ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_ensemble_matches_by_frame_dir_and_weights(ci, tmp_path):
    a = load_pickle(ci[0] / "test_best" / "scores.pkl")
    single = json.loads((ci[0] / "test_best" / "metrics.json").read_text())
    # A second "stream": the same real scores in another clip order, so fusion must align them
    # by frame_dir; equal weights then give the single stream's result.
    perm = np.random.default_rng(0).permutation(len(a["labels"]))
    b = {"scores": a["scores"][perm], "labels": a["labels"][perm],
         "frame_dirs": [a["frame_dirs"][i] for i in perm], "class_names": a["class_names"]}
    save_pickle(b, tmp_path / "b.pkl")
    m = ensemble([ci[0] / "test_best", tmp_path / "b.pkl"], [1.0, 1.0], out_dir=tmp_path / "ens")
    assert m["top1"] == pytest.approx(single["top1"]) and m["streams"] == [m["top1"]] * 2
    assert (tmp_path / "ens" / "confusion.png").is_file()
    # a stream that is uniform noise with weight 0 changes nothing; one with a large weight
    # decides alone
    c = dict(b, scores=np.random.default_rng(1).random(b["scores"].shape).astype(np.float32))
    save_pickle(c, tmp_path / "c.pkl")
    assert ensemble([ci[0] / "test_best", tmp_path / "c.pkl"], [1, 0])["top1"] == single["top1"]
    noise_top1 = (c["scores"].argmax(1) == c["labels"]).mean()
    assert ensemble([ci[0] / "test_best", tmp_path / "c.pkl"], [1, 1e6])["top1"] == \
        pytest.approx(noise_top1)
    save_pickle(dict(b, frame_dirs=["x"] + b["frame_dirs"][1:]), tmp_path / "d.pkl")
    with pytest.raises(PosrecError, match="other clips"):
        ensemble([ci[0] / "test_best", tmp_path / "d.pkl"])
    with pytest.raises(PosrecError, match="2 score files but 1 weights"):
        ensemble([ci[0] / "test_best", tmp_path / "b.pkl"], [1.0])


# --- torchrun / DDP ------------------------------------------------------------------------------


@pytest.mark.slow
def test_torchrun_two_processes(penn, tmp_path):
    """Two CPU processes (gloo): one run directory, every test clip scored exactly once."""
    out = tmp_path / "ddp"
    script = (
        "import sys, json\n"
        "from posrec.config import load_config\n"
        "from posrec.train import train\n"
        f"cfg = load_config({str(CI_CONFIG)!r}, sys.argv[1:])\n"
        "m = train(cfg)\n"
        "import os; print('RESULT', os.environ['RANK'], json.dumps(m))\n")
    (tmp_path / "run.py").write_text(script)
    sets = [f"data.source={penn}", "data.format=pickle", f"out_dir={out}",
            "data.train_per_class=2", "data.test_per_class=3", "data.clip_len=16",
            "train.epochs=1", "train.batch_size=4", "train.threads=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                        "--nproc_per_node=2", str(tmp_path / "run.py"), *sets],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    results = {}
    for line in p.stdout.splitlines():
        if line.startswith("RESULT"):
            _, rank, js = line.split(" ", 2)
            results[rank] = json.loads(js)
    assert results.keys() == {"0", "1"} and results["0"] == results["1"]
    raw = load_pickle(out / "test_best" / "scores.pkl")
    assert len(raw["frame_dirs"]) == len(set(raw["frame_dirs"])) == 45  # 3 per class, no dups
    assert np.allclose(raw["scores"].sum(1), 1, atol=1e-4)
    assert len(list(csv.DictReader(open(out / "metrics.csv")))) == 1


# --- validation ---------------------------------------------------------------------------------


def test_epochs_without_validation_log_none_and_no_val_split_means_last(penn, tmp_path):
    train(tiny(penn, tmp_path / "a", train__epochs=2, train__val_interval=2))
    rows = list(csv.DictReader(open(tmp_path / "a" / "metrics.csv")))
    assert rows[0]["val_top1"] == rows[0]["val_top5"] == "" and float(rows[1]["val_top1"]) >= 0
    lines = [l for l in (tmp_path / "a" / "train.log").read_text().splitlines() if " epoch " in l]
    assert "val top1" not in lines[0] and "nan" not in lines[0] and "val top1" in lines[1]
    # val_fraction 0: every training clip trains, nothing validates, only last.pt; the final
    # test scores last.pt into test_last/
    cfg = tiny(penn, tmp_path / "b", train__epochs=1, data__val_fraction=0,
               train__final_test=True)
    m = train(cfg)
    assert m["val_top1"] is None and m["best_epoch"] == 0 and 0 <= m["test_top1"] <= 1
    assert not (tmp_path / "b" / "best.pt").exists()
    saved = json.loads((tmp_path / "b" / "test_last" / "metrics.json").read_text())
    assert saved["selected_on"]["rule"] == "last epoch" and saved["top1"] == m["test_top1"]
    assert "no validation" in (tmp_path / "b" / "train.log").read_text()
    # resuming the finished run gives its result again, from the test it already has
    assert train(cfg, resume=True) == m


# --- threads -------------------------------------------------------------------------------------


def test_thread_choice_respects_explicit_choices(monkeypatch):
    from posrec.train import choose_threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert choose_threads(3) == 3                        # train.threads wins
        monkeypatch.setattr(os, "cpu_count", lambda: 8)
        assert choose_threads(None) == 1                     # spinning OpenMP: one thread
        monkeypatch.setenv("OMP_WAIT_POLICY", "passive")
        assert choose_threads(None) == 2                     # sleeping: all torch has, up to cores
        assert choose_threads(None, world=8) == 1            # shared among torchrun processes
        torch.set_num_threads(1)
        assert choose_threads(None) == 1                     # the caller's set_num_threads holds
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        torch.set_num_threads(2)
        assert choose_threads(None) == 2                     # OMP_NUM_THREADS: torch's count
    finally:
        torch.set_num_threads(before)
