"""Profiles, drift statistics, A/B statistics and the online monitor, against scipy and hand-made cases."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from mlsd.core.records import FeatureLogRecord, encode_record
from mlsd.evaluation.classification import normalized_entropy, roc_auc
from mlsd.evaluation.significance import bootstrap_difference, paired_bootstrap_mean, two_proportion_ztest
from mlsd.experiments.ab import assign_arm, bucket
from mlsd.monitoring import DatasetProfile, DriftThresholds, MonitorConfig, OnlineMonitor, detect_drift
from mlsd.monitoring.calibrate import calibrate, describe, window_ids
from mlsd.monitoring.drift import column_drift, js_distance, psi
from mlsd.monitoring.online import stable_hash
from mlsd.monitoring.outcomes import drift_outcome
from mlsd.monitoring.runner import CHECKPOINT, MonitorPasses, _Tail, _time_ordered


def test_psi_and_js_match_their_definitions() -> None:
    r, c = np.array([0.5, 0.3, 0.2]), np.array([0.2, 0.3, 0.5])
    assert psi(r, c) == pytest.approx(float(np.sum((c - r) * np.log(c / r))))
    assert psi(r, r) == 0.0
    assert js_distance(r, c) == pytest.approx(float(jensenshannon(r, c)))
    assert js_distance(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(np.sqrt(np.log(2)))


def test_profile_round_trips_through_json_and_gives_the_same_statistics() -> None:
    rng = np.random.default_rng(0)
    profile = DatasetProfile.build({"x": rng.normal(0, 1, 20_000)}, {"c": rng.integers(0, 30, 20_000)})
    current = {"x": rng.normal(0.3, 1, 3_000), "c": rng.integers(0, 40, 3_000)}
    again = DatasetProfile.from_dict(json.loads(json.dumps(profile.to_dict())))
    assert detect_drift(profile, current) == detect_drift(again, current)


def test_binned_ks_is_close_to_scipy_and_never_above_it() -> None:
    rng = np.random.default_rng(1)
    reference, current = rng.exponential(1.0, 50_000), rng.exponential(1.2, 5_000)
    drift = detect_drift(DatasetProfile.build({"x": reference}), {"x": current})["x"]
    exact = stats.ks_2samp(reference, current)
    assert drift.ks is not None
    assert drift.ks_p is not None
    assert drift.ks <= exact.statistic + 1e-9
    assert drift.ks == pytest.approx(exact.statistic, abs=0.01)
    assert drift.ks_p < 1e-10
    assert exact.pvalue < 1e-10


def test_chi_squared_is_two_sample_as_scipy_contingency() -> None:
    reference = np.repeat(["a", "b", "c"], [500, 300, 200])
    current = np.repeat(["a", "b", "c"], [40, 35, 25])
    drift = detect_drift(DatasetProfile.build({}, {"c": reference}), {"c": current})["c"]
    expected = stats.chi2_contingency([[500, 300, 200], [40, 35, 25]], correction=False)
    assert drift.chi2_p == pytest.approx(expected.pvalue, rel=1e-6)
    # the reference is a sample too: less significant than a goodness of fit against its shares as exact
    assert drift.chi2_p > stats.chisquare([40, 35, 25], [50, 30, 20]).pvalue


def test_drift_verdicts_separate_shifted_columns_from_unchanged_ones() -> None:
    rng = np.random.default_rng(2)
    n = 20_000
    reference = {"same": rng.normal(0, 1, n), "shifted": rng.normal(0, 1, n), "missing": rng.normal(0, 1, n)}
    categories = {"same_c": rng.choice(list("abcdef"), n), "new_value": rng.choice(list("abcdef"), n)}
    profile = DatasetProfile.build(reference, categories)
    current_missing = rng.normal(0, 1, 4000)
    current_missing[:2000] = np.nan
    current = {"same": rng.normal(0, 1, 4000), "shifted": rng.normal(1.0, 1, 4000), "missing": current_missing,
               "same_c": rng.choice(list("abcdef"), 4000),
               "new_value": np.where(rng.random(4000) < 0.4, "zz", rng.choice(list("abcdef"), 4000))}
    verdicts = {name: d.drift for name, d in detect_drift(profile, current).items()}
    assert verdicts == {"same": False, "shifted": True, "missing": False, "same_c": False, "new_value": True}
    assert detect_drift(profile, current)["missing"].missing == pytest.approx(0.5)


def test_small_windows_over_many_categories_do_not_alarm_by_chance() -> None:
    # 300 rows over 200 equally likely categories: PSI is large by chance alone; the test must veto it.
    rng = np.random.default_rng(3)
    profile = DatasetProfile.build({}, {"c": rng.integers(0, 200, 200_000)})
    alarms = 0
    for _ in range(50):
        d = detect_drift(profile, {"c": rng.integers(0, 200, 300)})["c"]
        assert d.psi > 0.25  # the effect size alone would alarm every time
        alarms += d.drift
    assert alarms <= 2
    assert detect_drift(profile, {"c": rng.integers(0, 200, 300)}, DriftThresholds(p_value=None))["c"].drift


def test_sample_size_weakens_the_test_for_repeated_rows() -> None:
    rng = np.random.default_rng(4)
    profile = DatasetProfile.build({"x": rng.normal(0, 1, 50_000)})
    current = np.repeat(rng.normal(0.1, 1, 200), 50)  # 200 requests of 50 candidates sharing one value
    rows = detect_drift(profile, {"x": current})["x"]
    requests = detect_drift(profile, {"x": current}, sample_size=200)["x"]
    assert rows.ks == requests.ks
    assert requests.ks_p is not None
    assert rows.ks_p is not None
    assert requests.ks_p > rows.ks_p


def test_two_proportion_ztest_matches_the_textbook_formula() -> None:
    test = two_proportion_ztest(120, 2000, 150, 2000)
    pooled = 270 / 4000
    z = (0.075 - 0.06) / np.sqrt(pooled * (1 - pooled) * (2 / 2000))
    assert test.z == pytest.approx(z)
    assert test.p_value == pytest.approx(2 * stats.norm.sf(abs(z)))
    assert test.ci95[0] < test.difference < test.ci95[1]


def test_ztest_rejects_at_the_nominal_rate_under_the_null() -> None:
    rng = np.random.default_rng(5)
    rejections = sum(two_proportion_ztest(rng.binomial(4000, 0.05), 4000, rng.binomial(4000, 0.05), 4000).p_value
                     < 0.05 for _ in range(400))
    assert 8 <= rejections <= 36  # 20 expected


def test_hashed_assignment_is_deterministic_balanced_and_independent_across_experiments() -> None:
    arms = [assign_arm(user, "exp-a") for user in range(20_000)]
    assert arms == [assign_arm(user, "exp-a") for user in range(20_000)]
    assert 0.48 < arms.count("challenger") / len(arms) < 0.52
    other = [assign_arm(user, "exp-b") for user in range(20_000)]
    agreement = np.mean([a == b for a, b in zip(arms, other, strict=True)])
    assert 0.48 < agreement < 0.52
    assert all(0 <= bucket(u, "x") < 1 for u in range(100))
    assert [assign_arm(u, "exp-a", 0.1) for u in range(5000)].count("challenger") == pytest.approx(500, abs=80)


def test_bootstrap_interval_covers_a_known_difference() -> None:
    rng = np.random.default_rng(6)
    y0 = rng.random(4000) < 0.1
    p0 = np.clip(0.1 + 0.05 * (y0 - 0.1) + rng.normal(0, 0.02, 4000), 0.01, 0.99)
    y1 = rng.random(4000) < 0.1
    p1 = np.clip(0.1 + 0.15 * (y1 - 0.1) + rng.normal(0, 0.02, 4000), 0.01, 0.99)
    diff, (lo, hi) = bootstrap_difference(roc_auc, (y0.astype(float), p0), (y1.astype(float), p1), resamples=200)
    assert diff == pytest.approx(roc_auc(y1, p1) - roc_auc(y0, p0))
    assert lo < diff < hi
    assert lo > 0


def test_paired_bootstrap_mean_matches_the_normal_interval() -> None:
    diffs = np.random.default_rng(3).normal(0.0, 0.2, 900)
    diffs += 0.005 - diffs.mean()  # a mean gain of 0.005, 0.75 standard errors
    mean, (lo, hi) = paired_bootstrap_mean(diffs, level=0.95, resamples=4000)
    half = 1.96 * diffs.std(ddof=1) / np.sqrt(len(diffs))
    assert mean == pytest.approx(diffs.mean())
    assert lo == pytest.approx(mean - half, abs=0.15 * half)
    assert hi == pytest.approx(mean + half, abs=0.15 * half)
    assert lo < 0 < hi  # not established at 95%
    assert paired_bootstrap_mean(diffs + 0.05)[1][0] > 0
    assert np.isnan(paired_bootstrap_mean(np.zeros(0))[0])


def _record(i: int, at: float, value: float, arm: str, p: float) -> FeatureLogRecord:
    # Two candidates: the second is ranked lower and drawn like the first, so neither drifts by design.
    return FeatureLogRecord(request_id=f"q{i}", at_us=round(at * 1e6), model_version="1", arm=arm,
                            features={"x": [value, value]}, entities={"c": ["a", "b"]}, predictions=[p, p * 0.999])


def test_online_monitor_windows_labels_alerts_and_ab() -> None:
    rng = np.random.default_rng(7)
    profile = DatasetProfile.build({"x": rng.normal(0, 1, 20_000), "prediction": rng.uniform(0, 0.2, 20_000)},
                                   {"c": rng.choice(["a", "b"], 20_000)})
    monitor = OnlineMonitor(profile, MonitorConfig(window_s=100, label_delay_s=50))
    records, labels, truth = [], [], {}
    for i in range(3000):
        at = i * 0.1  # 10 requests per second: 3 windows of 100 s
        shift = 3.0 if at >= 200 else 0.0  # the last window drifts
        arm = "challenger" if i % 2 else "champion"
        p = float(rng.uniform(0, 0.2))
        y = float(rng.random() < p)
        records.append(_record(i, at, float(rng.normal(shift, 1)), arm, p))
        truth[f"q{i}"] = (y, p, arm, int(at // 100))
        if y:
            labels.append({"request_id": f"q{i}", "label": 1.0})
    monitor.add_labels(labels[:5])  # labels may arrive before their requests are read
    monitor.add_records(records)
    monitor.add_labels(labels[5:])
    assert [w["start"] for w in monitor.closed] == [0, 100]  # the last window is still open
    monitor.add_records([_record(9999, 301.0, 0.0, "champion", 0.1)])
    assert [w["start"] for w in monitor.closed] == [0, 100, 200]
    monitor.add_labels([], watermark_s=300 + 50)
    alerted = {a["window_start"] for a in monitor.alerts if a["column"] == "x"}
    assert alerted == {200}
    first = monitor.closed[0]
    champion = [(y, p) for y, p, arm, w in truth.values() if w == 0 and arm == "champion"]
    ys, ps = np.array([y for y, _ in champion]), np.array([p for _, p in champion])
    assert first["labels"]["champion"]["rows"] == len(champion)
    assert first["labels"]["champion"]["rate"] == pytest.approx(ys.mean())
    assert first["labels"]["champion"]["ne"] == pytest.approx(normalized_entropy(ys, ps))
    ab = monitor.ab_summary()
    assert ab is not None
    assert 0 <= ab["p_value"] <= 1
    assert ab["champion"]["rows"] + ab["challenger"]["rows"] == 3000
    delay, false_alarms, rate = drift_outcome(monitor.state(), 200.0)
    assert false_alarms == 0
    assert rate == 0
    assert delay is not None
    assert 0 < delay <= 101


def test_window_counts_give_the_same_drift_as_every_value() -> None:
    """The window keeps bin counts, not values: its drift equals the statistics over every value."""
    rng = np.random.default_rng(11)
    profile = DatasetProfile.build({"x": rng.normal(0, 1, 20_000), "prediction": rng.uniform(0, 0.2, 20_000)},
                                   {"c": rng.choice(["a", "b", "c"], 20_000)})
    monitor = OnlineMonitor(profile, MonitorConfig(window_s=1000, label_delay_s=10))
    xs, cs, ps = [], [], []
    records = []
    for i in range(9000):  # more values than one buffer: counted in several chunks
        x = [float(rng.normal(1.0, 1)), None] if i % 7 == 0 else [float(rng.normal(1.0, 1))] * 2
        c = [str(rng.choice(["a", "b", "d"]))] * 2
        p = float(rng.uniform(0, 0.25))
        records.append(FeatureLogRecord(request_id=f"r{i}", at_us=round(i * 0.1 * 1e6), model_version="1",
                                        features={"x": x}, entities={"c": c}, predictions=[p, p / 2]))
        xs += [np.nan if v is None else v for v in x]
        cs += c
        ps += [p, p / 2]
    monitor.add_records(records)
    monitor.add_labels([], watermark_s=2000.0)
    window = monitor.closed[0]
    expected = detect_drift(profile, {"x": np.asarray(xs), "c": np.asarray(cs, dtype=object),
                                      "prediction": np.asarray(ps)}, sample_size=9000)
    assert window["drift"] == {name: d.to_dict() for name, d in expected.items()}
    assert window["drift"]["x"]["drift"]  # a real shift, found either way


def test_untrusted_event_times_cannot_move_the_monitors_clock() -> None:
    rng = np.random.default_rng(3)
    profile = DatasetProfile.build({"x": rng.normal(0, 1, 5_000)})
    monitor = OnlineMonitor(profile, MonitorConfig(window_s=100, label_delay_s=10))
    start = 1.5e9
    monitor.add_records([_record(i, start + i, 0.0, "champion", 0.1) for i in range(50)])
    monitor.add_records([_record(10_000, 4_102_444_800.0, 0.0, "champion", 0.1)])  # a request dated 2100
    monitor.add_records([_record(10_001, 1.0, 0.0, "champion", 0.1)])  # and one from 1970
    assert monitor.closed == []  # nothing closed early
    assert len(monitor.windows) == 1  # and no 1970 window
    monitor.add_records([_record(i, start + i, 0.0, "champion", 0.1) for i in range(50, 150)])
    assert monitor.future_records == 1  # held, then found to be strays
    assert monitor.late_records == 1
    assert monitor.records == 150  # later requests are still monitored
    assert [w["start"] for w in monitor.closed] == [start - start % 100]
    # the label stream (a writer with the token) may move the clock across a real gap in traffic
    monitor.add_labels([], watermark_s=start + 10 * 86_400)
    monitor.add_records([_record(20_000, start + 10 * 86_400, 0.0, "champion", 0.1)])
    assert monitor.future_records == 1
    assert monitor.records == 151
    state = monitor.state()
    assert state["future_records"] == 1
    assert state["late_records"] == 1


def test_labels_of_unknown_requests_are_bounded() -> None:
    profile = DatasetProfile.build({"x": np.arange(100.0)})
    monitor = OnlineMonitor(profile, MonitorConfig(max_early_labels=1000))
    for batch in range(20):
        monitor.add_labels([{"request_id": f"nobody-{batch}-{i}", "label": 1} for i in range(500)])
    assert len(monitor._label_ids) <= 2000


def test_the_clock_follows_traffic_that_moved_not_one_stray_request() -> None:
    """A request sent "now" before a replay of 2008 must not make the whole replay late."""
    rng = np.random.default_rng(5)
    profile = DatasetProfile.build({"x": rng.normal(0, 1, 5_000)})
    monitor = OnlineMonitor(profile, MonitorConfig(window_s=100, label_delay_s=10, quorum=8))
    monitor.add_records([_record(0, 1.79e9, 0.0, "champion", 0.1)])  # a request without a timestamp: now
    replay_start = 1.2e9
    monitor.add_records([_record(i, replay_start + i, 0.0, "champion", 0.1) for i in range(1, 301)])
    assert monitor.records == 300  # the 8 held ones are counted too, once the clock followed them
    assert monitor.late_records == 1  # the stray request's window went with the wrong clock
    assert monitor.request_watermark == replay_start + 300
    monitor.add_labels([], watermark_s=replay_start + 10_000)
    assert sum(w["requests"] for w in monitor.closed) == 300


def _seasonal_day(rng: np.random.Generator, day: int, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """One day of a click count over the last hour: it follows the day's traffic curve (as on TalkingData)."""
    times = np.sort(rng.uniform(0, 86_400, 20_000)) + day * 86_400
    hour = (times % 86_400) / 3600
    rate = scale * 40 * (1.2 + np.sin(2 * np.pi * hour / 24))
    return times, rng.poisson(rate).astype(np.float64)


def test_calibration_quiets_a_seasonal_column_and_still_catches_a_shift() -> None:
    rng = np.random.default_rng(7)
    times, values = _seasonal_day(rng, 0)
    profile = DatasetProfile.build({"count_1h": values})
    calibrated = calibrate(profile, {"count_1h": values}, times, 1800.0)
    assert calibrated.calibration is not None
    assert calibrated.calibration.windows == 48
    line = calibrated.calibration.columns["count_1h"]
    assert line["windows"] == 48
    assert line["psi"] > DriftThresholds().psi  # type: ignore[operator]

    def alerting(day_times: np.ndarray, day_values: np.ndarray, thresholds: DriftThresholds) -> int:
        ids = window_ids(day_times, 1800.0)
        return sum(column_drift("count_1h", profile.columns["count_1h"], day_values[ids == w], thresholds).drift
                   for w in np.unique(ids))

    next_times, next_values = _seasonal_day(rng, 1)  # a clean day the calibration never saw
    assert alerting(next_times, next_values, DriftThresholds()) >= 10  # one line for every column alarms
    tuned = DriftThresholds().calibrated(calibrated.calibration)
    assert alerting(next_times, next_values, tuned) == 0
    shifted_times, shifted_values = _seasonal_day(rng, 2, scale=3.0)
    # Tripled traffic still alerts in most windows; a night window tripled looks like a clean day window
    # to a whole-day reference, the price of a seasonal column's wide line.
    assert alerting(shifted_times, shifted_values, tuned) >= 24


def test_calibration_travels_with_the_profile_into_the_monitor() -> None:
    rng = np.random.default_rng(8)
    times, values = _seasonal_day(rng, 0)
    profile = calibrate(DatasetProfile.build({"count_1h": values, "flat": rng.normal(0, 1, values.size)}),
                        {"count_1h": values, "flat": rng.normal(0, 1, values.size)}, times, 1800.0)
    again = DatasetProfile.from_dict(json.loads(json.dumps(profile.to_dict())))
    assert again.calibration == profile.calibration
    monitor = OnlineMonitor(again, MonitorConfig(window_s=1800.0))
    assert monitor.thresholds.for_column("count_1h").psi == profile.calibration.columns["count_1h"]["psi"]  # type: ignore[union-attr]
    assert monitor.thresholds.for_column("flat").psi == DriftThresholds().psi  # a steady column keeps the base line
    assert DriftThresholds(psi=None).calibrated(profile.calibration).for_column("count_1h").psi is None
    assert [row["column"] for row in describe(profile)] == ["count_1h"]
    with pytest.raises(ValueError, match="max_alert_rate"):
        calibrate(profile, {}, times, 1800.0, max_alert_rate=1.0)
    with pytest.raises(ValueError, match="margin"):
        calibrate(profile, {}, times, 1800.0, margin=0.5)


def test_minimum_rows_count_requests_with_a_value_not_candidates() -> None:
    rng = np.random.default_rng(9)
    profile = DatasetProfile.build({"x": rng.normal(0, 1, 50_000)})
    per_request = rng.normal(3.0, 1, 120)  # far off the reference
    per_request[:100] = np.nan  # 20 of 120 requests have a value
    current = np.repeat(per_request, 20)  # 20 candidates per request, 400 present rows
    assert not detect_drift(profile, {"x": current}, sample_size=120)["x"].drift  # 20 observations: no verdict
    assert detect_drift(profile, {"x": np.repeat(rng.normal(3.0, 1, 120), 20)}, sample_size=120)["x"].drift


def test_a_pass_merges_the_serving_processes_logs_by_event_time(tmp_path: Path) -> None:
    """Two workers' logs, each crossing a window boundary: read one after the other, the second's
    requests of the first window would arrive after the first had closed it and count as late."""
    rng = np.random.default_rng(9)
    profile = DatasetProfile.build({"x": rng.normal(0, 1, 5_000)})
    logs, labels = tmp_path / "logs", tmp_path / "labels"
    logs.mkdir()
    labels.mkdir()
    monitor = OnlineMonitor(profile, MonitorConfig(window_s=100, label_delay_s=10))
    passes = MonitorPasses(monitor, logs, labels, tmp_path / "out")
    torn = encode_record(_record(9_999, 251.0, 0.0, "champion", 0.1))
    for worker, offset in (("a", 0.0), ("b", 0.5)):
        lines = [encode_record(_record(int(2 * at + offset * 2), at + offset, 0.0, "champion", 0.1))
                 for at in range(0, 250)]
        # the last line is still being written: read on the next pass, not torn
        tail = torn[:10] if worker == "a" else b""
        (logs / f"features-1-{worker}.jsonl").write_bytes(b"\n".join(lines) + b"\n" + tail)
    passes.step()
    assert monitor.late_records == 0
    assert monitor.records == 500
    assert [w["start"] for w in monitor.closed] == [0, 100]
    assert [w["requests"] for w in monitor.closed] == [200, 200]
    with open(logs / "features-1-a.jsonl", "ab") as handle:  # the torn line completed
        handle.write(torn[10:] + b"\n")
    passes.step()
    assert monitor.records == 501


def test_the_tail_reads_whole_lines_across_chunks_and_holds_no_file_open(tmp_path: Path) -> None:
    lines = [(b"x" * (i % 37)) + str(i).encode() for i in range(5000)]
    path = tmp_path / "features-1.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n" + b"partial")
    tail = _Tail(tmp_path, "features-*.jsonl")
    tail.CHUNK = 1000  # lines cross chunk boundaries
    assert list(tail.read()) == lines
    assert tail.offsets[path] == len(b"\n".join(lines)) + 1  # the partial line is not read yet
    with open(path, "ab") as handle:
        handle.write(b"-end\n")
    assert list(tail.read()) == [b"partial-end"]
    # a restart's merge over many logs (one per service start) holds no descriptor per file
    many = tmp_path / "many"
    many.mkdir()
    for n in range(300):
        record = encode_record(_record(n, 1_000.0 + n, 0.0, "champion", 0.1))
        (many / f"features-{n}.jsonl").write_bytes(record + b"\n" + record + b"\n")
    before = len(list(Path("/proc/self/fd").iterdir()))
    merged = _time_ordered(_Tail(many, "features-*.jsonl").streams())
    first = next(merged)
    assert len(list(Path("/proc/self/fd").iterdir())) - before < 5
    assert first.request_id == "q0"
    assert 1 + sum(1 for _ in merged) == 600


def test_a_restarted_monitor_goes_on_from_its_checkpoint_as_if_it_had_read_every_log(tmp_path: Path) -> None:
    # request ids are keyed the same way in every process, so labels join across a restart
    out = subprocess.run([sys.executable, "-c", "from mlsd.monitoring.online import stable_hash; "
                          "print(stable_hash('q1'))"], capture_output=True, text=True, check=True)
    assert int(out.stdout) == stable_hash("q1")
    rng = np.random.default_rng(4)
    profile = DatasetProfile.build({"x": rng.normal(0, 1, 5_000), "prediction": rng.uniform(0, 0.2, 5_000)},
                                   {"c": rng.choice(["a", "b"], 5_000)})
    config = MonitorConfig(window_s=100, label_delay_s=10)
    logs, labels, out_dir = tmp_path / "logs", tmp_path / "labels", tmp_path / "out"
    logs.mkdir()
    labels.mkdir()

    def append(name: str, lines: list[bytes]) -> None:
        with open(name, "ab") as handle:
            handle.write(b"".join(line + b"\n" for line in lines))

    def requests(first: int, last: int) -> list[bytes]:
        return [encode_record(_record(i, float(i), float(rng.normal()), "champion", 0.1)) for i in range(first, last)]

    def answers(first: int, last: int, watermark: float) -> list[bytes]:
        return [json.dumps({"request_id": f"q{i}", "label": float(i % 3 == 0)}).encode()
                for i in range(first, last)] + [json.dumps({"watermark_s": watermark}).encode()]

    append(str(logs / "features-1-a.jsonl"), requests(0, 150))
    append(str(labels / "labels-1-a.jsonl"), answers(0, 60, 70.0))
    first = MonitorPasses(OnlineMonitor(profile, config), logs, labels, out_dir, checkpoint_s=3600)
    first.step()
    first.checkpoint()  # as the service does after its last pass
    # the restarted service: a new log of its own; labels of requests counted before the restart arrive
    append(str(logs / "features-2-b.jsonl"), requests(150, 330))
    append(str(labels / "labels-2-b.jsonl"), answers(60, 330, 400.0))
    resumed = MonitorPasses(OnlineMonitor(profile, config), logs, labels, out_dir)
    assert resumed.resume()
    assert resumed.monitor.records == 150  # not re-read
    resumed.step()
    scratch = MonitorPasses(OnlineMonitor(profile, config), logs, labels, tmp_path / "scratch")
    scratch.step()
    for key in ("records", "labels", "late_records", "future_records", "windows"):
        assert resumed.monitor.state()[key] == scratch.monitor.state()[key], key
    # windows [0, 100), [100, 200), [200, 300) have their labels (the last one waits for the watermark)
    assert sum(w["labels"]["all"]["rows"] for w in resumed.monitor.state()["windows"]) == 300
    # a checkpoint that no longer describes the logs or the monitor is not used
    other = DatasetProfile.build({"x": rng.normal(1, 1, 5_000)})
    assert not MonitorPasses(OnlineMonitor(other, config), logs, labels, out_dir).resume()
    (logs / "features-1-a.jsonl").write_bytes(b"")
    assert not MonitorPasses(OnlineMonitor(profile, config), logs, labels, out_dir).resume()
    (out_dir / CHECKPOINT).write_bytes(b"not a pickle")
    assert not MonitorPasses(OnlineMonitor(profile, config), logs, labels, out_dir).resume()
    (out_dir / CHECKPOINT).write_bytes(pickle.dumps(["not", "a", "checkpoint"]))
    assert not MonitorPasses(OnlineMonitor(profile, config), logs, labels, out_dir).resume()
