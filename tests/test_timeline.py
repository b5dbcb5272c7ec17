"""posrec.timeline: window scores -> segments -> CSV/JSON/PNG/summary.

The inputs here are synthetic window scores built by hand: the module's input is a table of
numbers (window times and class probabilities), so no video or model is needed to pin down its
exact output, and hand-made numbers are the only way to place a class change or a gap exactly.
"""

import json
import math
import struct

import numpy as np
import pandas as pd
import pytest

from posrec.errors import PosrecError
from posrec.timeline import (COLUMNS, SUMMARY_COLUMNS, build_timeline, label_colours, merge_rows,
                             plot_timeline, read_summary_csv, read_timeline, summarize,
                             summary_row, write_summary_csv, write_timeline)

NAMES = ["jump", "run", "wave"]


def windows(*rows):
    """(track_id, start, end, probs) rows -> the window table and the (N, K) float32 probs."""
    w = pd.DataFrame([r[:3] for r in rows], columns=["track_id", "start", "end"])
    return w, np.array([r[3] for r in rows], dtype=np.float32).reshape(len(rows), len(NAMES))


def as_tuples(seg, digits=6):
    return [(int(r.track_id), round(r.start, digits), round(r.end, digits), r.label,
             round(r.score, digits)) for r in seg.itertuples()]


def png_size(path):
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_overlapping_windows_of_one_class_merge():
    w, p = windows((1, 0.0, 2.0, [0.9, 0.1, 0.0]), (1, 1.0, 3.0, [0.7, 0.3, 0.0]))
    seg = build_timeline(w, p, NAMES, threshold=0.5)
    # steps [0,1) 0.9, [1,2) mean 0.8, [2,3) 0.7: one segment, score their time-weighted mean
    assert as_tuples(seg) == [(1, 0.0, 3.0, "jump", 0.8)]
    assert list(seg.columns) == COLUMNS


def test_class_change_splits_where_the_mean_changes():
    w, p = windows((1, 0.0, 2.0, [0.9, 0.1, 0.0]), (1, 1.0, 3.0, [0.8, 0.2, 0.0]),
                   (1, 2.0, 4.0, [0.1, 0.9, 0.0]), (1, 3.0, 5.0, [0.1, 0.9, 0.0]))
    seg = build_timeline(w, p, NAMES, threshold=0.5)
    # [2,3) is covered by windows 2 and 3: mean (0.45, 0.55) -> run, so the cut is at 2.0 s;
    # jump scores (0.9 + 0.85) / 2, run (0.55 + 0.9 + 0.9) / 3
    assert as_tuples(seg) == [(1, 0.0, 2.0, "jump", 0.875), (1, 2.0, 5.0, "run", 0.783333)]


def test_window_under_threshold_is_no_action():
    w, p = windows((1, 0.0, 1.0, [0.9, 0.1, 0.0]), (1, 1.0, 2.0, [0.4, 0.35, 0.25]),
                   (1, 2.0, 3.0, [0.5, 0.3, 0.2]))
    seg = build_timeline(w, p, NAMES, threshold=0.5)
    # exactly at the threshold is labelled; under it is "no action", scored by its best guess
    assert as_tuples(seg) == [(1, 0.0, 1.0, "jump", 0.9), (1, 1.0, 2.0, "no action", 0.4),
                              (1, 2.0, 3.0, "jump", 0.5)]
    other = build_timeline(w, p, NAMES, threshold=0.95, no_action="idle")
    assert as_tuples(other) == [(1, 0.0, 3.0, "idle", 0.6)]


def test_two_tracks_stay_apart_and_sort_by_track_then_start():
    w, p = windows((7, 1.0, 3.0, [0.0, 0.0, 1.0]), (2, 0.0, 2.0, [1.0, 0.0, 0.0]),
                   (7, 0.0, 2.0, [0.0, 1.0, 0.0]), (2, 1.0, 3.0, [1.0, 0.0, 0.0]))
    seg = build_timeline(w, p, NAMES, threshold=0.5)
    # track 7's middle step [1,2) is a tie of run and wave: the first class in the list wins
    assert as_tuples(seg) == [(2, 0.0, 3.0, "jump", 1.0), (7, 0.0, 2.0, "run", 0.75),
                              (7, 2.0, 3.0, "wave", 1.0)]


def test_gap_between_windows_stays_a_gap_unless_closed():
    w, p = windows((1, 0.0, 2.0, [1, 0, 0]), (1, 5.0, 7.0, [1, 0, 0]), (1, 7.03, 8.0, [1, 0, 0]))
    seg = build_timeline(w, p, NAMES, threshold=0.5)
    assert as_tuples(seg) == [(1, 0.0, 2.0, "jump", 1.0), (1, 5.0, 7.0, "jump", 1.0),
                              (1, 7.03, 8.0, "jump", 1.0)]
    closed = build_timeline(w, p, NAMES, threshold=0.5, max_gap=0.05)  # one frame is closed
    assert as_tuples(closed) == [(1, 0.0, 2.0, "jump", 1.0), (1, 5.0, 8.0, "jump", 1.0)]


def test_single_window_and_float_noise_in_times():
    w, p = windows((3, 0.25, 1.75, [0.1, 0.2, 0.7]))
    assert as_tuples(build_timeline(w, p, NAMES, 0.5)) == [(3, 0.25, 1.75, "wave", 0.7)]
    # 0.1 + 0.2 != 0.3 in floats: the two windows still meet, with no sliver of a segment
    w, p = windows((1, 0.0, 0.1 + 0.2, [1, 0, 0]), (1, 0.3, 0.6, [1, 0, 0]))
    assert as_tuples(build_timeline(w, p, NAMES, 0.5)) == [(1, 0.0, 0.6, "jump", 1.0)]


def test_segments_tile_each_tracks_windows_without_overlap():
    rng = np.random.default_rng(0)
    rows = []
    for track in (1, 2, 3):
        for s in np.arange(rng.uniform(0, 5), 30, 0.5):
            if not 10 <= s < 14 or track != 2:  # track 2 leaves the frame for a while
                rows.append((track, s, s + 2.0, rng.dirichlet(np.ones(3) * 0.5)))
    w, p = windows(*rows)
    seg = build_timeline(w, p, NAMES, threshold=0.6)
    for track, g in seg.groupby("track_id"):
        mine = w[w.track_id == track]
        assert (g.start.to_numpy()[1:] >= g.end.to_numpy()[:-1] - 1e-9).all()  # no overlap
        # from the first window's start to the last one's end (times snapped to microseconds)
        assert g.start.min() == pytest.approx(mine.start.min(), abs=1e-6)
        assert g.end.max() == pytest.approx(mine.end.max(), abs=1e-6)
        covered = (g.end - g.start).sum()
        gap = 0.0 if track != 2 else (g.start.to_numpy()[1:] - g.end.to_numpy()[:-1]).sum()
        assert covered + gap == pytest.approx(mine.end.max() - mine.start.min(), abs=1e-6)
    mine, track2 = w[w.track_id == 2], seg[seg.track_id == 2]
    left, right = mine.end[mine.start < 10].max(), mine.start[mine.start >= 14].min()
    assert ((track2.end <= left + 1e-6) | (track2.start >= right - 1e-6)).all()  # the gap stays
    assert np.isclose(track2.end, left, atol=1e-6).any()
    assert (seg.label.shift() != seg.label).where(seg.track_id.shift() == seg.track_id).any()


def test_empty_input_gives_empty_outputs(tmp_path):
    w = pd.DataFrame({"track_id": [], "start": [], "end": []})
    seg = build_timeline(w, np.zeros((0, 3), np.float32), NAMES, 0.5)
    assert list(seg.columns) == COLUMNS and seg.empty
    assert summarize(seg) == "nobody was found in the video"
    row = summary_row("empty.mp4", 4.0, seg)
    assert row["people"] == 0 and row["segments"] == 0 and row["top_label"] == ""
    assert math.isnan(row["top_share"])
    png = plot_timeline(seg, tmp_path / "timeline.png", duration=4.0)
    width, height = png_size(png)
    assert 900 < width < 1400 and 100 < height < 400
    csv_path, json_path = write_timeline(seg, tmp_path, duration=4.0)
    assert list(pd.read_csv(csv_path).columns) == COLUMNS and pd.read_csv(csv_path).empty
    assert json.loads(json_path.read_text())["segments"] == []
    assert read_timeline(tmp_path)[0].empty


def test_csv_and_json_round_trip(tmp_path):
    seg = pd.DataFrame({"track_id": [1, 1, 4], "start": [0.0, 0.1 + 0.2, 1 / 3],
                        "end": [0.1 + 0.2, 2 / 3, 10.00049], "label": ["jump", "no action", "wave"],
                        "score": [0.912345678, 0.3, 1 / 3]})
    csv_path, json_path = write_timeline(seg, tmp_path / "run", duration=12.34567,
                                         meta={"video": tmp_path / "a.mp4",
                                               "threshold": np.float32(0.5), "format": "x"})
    text = csv_path.read_text()
    assert text.splitlines()[0] == "track_id,start,end,label,score"
    assert text.splitlines()[1] == "1,0.0,0.3,jump,0.9123"  # ms and 4 decimals, no float noise
    expect = [(1, 0.0, 0.3, "jump", 0.9123), (1, 0.3, 0.667, "no action", 0.3),
              (4, 0.333, 10.0, "wave", 0.3333)]
    assert as_tuples(pd.read_csv(csv_path)) == expect
    doc = json.loads(json_path.read_text())
    assert doc["duration"] == 12.346 and doc["people"] == 2
    assert doc["video"] == str(tmp_path / "a.mp4") and doc["format"] == "posrec-timeline"
    assert [tuple(s[c] for c in COLUMNS) for s in doc["segments"]] == expect
    back, meta = read_timeline(json_path)
    assert as_tuples(back) == expect and meta["threshold"] == 0.5
    assert not list(tmp_path.glob("run/.*"))  # no temporary files left behind


def test_plot_is_a_png_that_grows_with_the_people(tmp_path):
    names = [f"action_{i}" for i in range(30)]
    rows = [(t, s, s + 1.0, np.eye(30)[(t + int(s)) % 30]) for t in range(1, 21)
            for s in np.arange(0.0, 20.0, 1.0)]
    w = pd.DataFrame([r[:3] for r in rows], columns=["track_id", "start", "end"])
    seg = build_timeline(w, np.array([r[3] for r in rows]), names, 0.5)
    one = plot_timeline(seg[seg.track_id == 1], tmp_path / "one.png", duration=20.0)
    many = plot_timeline(seg, tmp_path / "many.png", duration=20.0, title="20 people",
                         class_names=names)
    (w1, h1), (w20, h20) = png_size(one), png_size(many)
    assert 900 < w1 < 1400 and 900 < w20 < 1400
    assert 150 < h1 < 500 and 900 < h20 < 1600  # a lane per person, a legend for 30 labels
    colours = label_colours(["wave", "no action", "jump"], NAMES)
    assert list(colours) == ["jump", "wave", "no action"]  # model order, then no action
    assert colours == label_colours(["jump", "wave"], NAMES) | {"no action": colours["no action"]}
    assert len(set(label_colours(names).values())) == 31  # 30 labels + grey, all distinct


def test_summary_row_picks_the_top_label_by_time():
    # jump 3 + 1 = 4 s over two people, run 2 + 3 = 5 s, no action 6 s (not counted): run wins
    seg = pd.DataFrame({"track_id": [1, 1, 2, 2, 3], "start": [0, 3, 0, 5, 0],
                        "end": [3, 9, 2, 8, 1], "label": ["jump", "no action", "run", "run", "jump"],
                        "score": [0.9] * 5})
    row = summary_row("clips/a.mp4", 9.5, seg)
    assert row == {"video": "clips/a.mp4", "duration": 9.5, "people": 3, "top_label": "run",
                   "top_share": round(5 / 15, 3), "segments": 5}
    idle = seg.assign(label="no action")
    assert summary_row("b.mp4", 9.5, idle)["top_label"] == "no action"
    assert summary_row("b.mp4", 9.5, idle)["top_share"] == 1.0


def test_summarize_lists_each_persons_main_actions():
    seg = pd.DataFrame({"track_id": [1, 1, 1, 2], "start": [0.0, 2.1, 7.9, 1.0],
                        "end": [2.1, 7.9, 9.8, 4.0],
                        "label": ["no action", "clean_and_jerk", "no action", "wave"],
                        "score": [0.3, 0.9, 0.2, 0.8]})
    assert summarize(seg, duration=10.0).splitlines() == [
        "2 people in 10.0 s of video",
        "person 1 (0.0-9.8 s): clean_and_jerk 59% (2.1-7.9 s); no action 41%",
        "person 2 (1.0-4.0 s): wave 100% (1.0-4.0 s)"]
    many = pd.DataFrame({"track_id": 1, "start": np.arange(6.0), "end": np.arange(6.0) + 1,
                         "label": ["a", "b", "a", "c", "d", "a"], "score": 0.9})
    assert summarize(many, top=2).splitlines()[1] == (
        "person 1 (0.0-6.0 s): a 50% (0.0-1.0, 2.0-3.0, 5.0-6.0 s), b 17% (1.0-2.0 s), "
        "2 other actions 33%")


def test_summary_csv_merges_rows_and_round_trips(tmp_path):
    path = tmp_path / "out" / "summary.csv"
    assert read_summary_csv(path) == []
    first = [{"video": "b/x.mp4", "duration": 3.0, "people": 1, "top_label": "run",
              "top_share": 0.8, "segments": 2},
             summary_row("a.mp4", 2.0, pd.DataFrame(columns=COLUMNS))]
    write_summary_csv(merge_rows([], first), path)
    again = [{"video": "b/x.mp4", "duration": 3.0, "people": 2, "top_label": "jump",
              "top_share": 0.5, "segments": 4}]
    rows = merge_rows(read_summary_csv(path), again)
    write_summary_csv(rows, path)
    df = pd.read_csv(path, keep_default_na=False)
    assert list(df.columns) == SUMMARY_COLUMNS
    assert df.video.tolist() == ["a.mp4", "b/x.mp4"] and df.people.tolist() == [0, 2]
    back = read_summary_csv(path)
    assert back[1] == again[0] and back[0]["top_label"] == "" and math.isnan(back[0]["top_share"])


@pytest.mark.parametrize("change, message", [
    (lambda w, p: (w, p[:1]), "shape"),
    (lambda w, p: (w.assign(end=w.start), p), "ends"),
    (lambda w, p: (w.drop(columns="track_id"), p), "track_id"),
    (lambda w, p: (w, p * np.nan), "finite"),
    (lambda w, p: (w.assign(track_id=[0.5, 1]), p), "whole"),
    (lambda w, p: (w.assign(track_id=["a", "b"]), p), "whole"),
])
def test_bad_windows_are_one_line_errors(change, message):
    w, p = windows((1, 0.0, 2.0, [1, 0, 0]), (1, 1.0, 3.0, [1, 0, 0]))
    with pytest.raises(PosrecError, match=message):
        build_timeline(*change(w, p), NAMES, 0.5)
    with pytest.raises(PosrecError, match="threshold"):
        build_timeline(w, p, NAMES, 1.5)
