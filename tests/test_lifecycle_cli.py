"""Operating a system from the command line: models, promote, rollback, status, features, materialize,
the promotion guard, MLflow's pyfunc API, and one clear line with a non-zero exit for each user mistake."""

from __future__ import annotations

import json
import math
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from mlsd.cli import main
from mlsd.datasets.marketplace import AdMarketplace, click_log
from mlsd.registry import CHALLENGER, CHAMPION, Lineage, ModelRegistry
from mlsd.registry.mlflow_registry import GUARD_TAG
from mlsd.registry.promotion import promote
from mlsd.systems.ads.run import AdsRun, model_name

NAME = model_name("marketplace")


class _Constant:
    """A model that saves to a directory (all promotion needs)."""

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "constant.json").write_text("{}")


def _register(registry: ModelRegistry, name: str, n: int) -> list[str]:
    lineage = Lineage("data", {}, "code")
    return [registry.register(name, _Constant(), params={}, metrics={"valid_auc": 0.5 + i / 10}, lineage=lineage,
                              run_name=f"m{i}").version for i in range(n)]


@pytest.fixture(scope="module")
def ads_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("ads-cli")
    # the generated marketplace has a click model to learn (synthetic_clicks are noise: the guard refuses them)
    AdsRun(home, clicks=click_log(AdMarketplace(0), 40_000, days=4.0), dataset="marketplace",
           models=("lgbm", "logreg"), progress=False, flat_datasets=False).run()
    return home


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- the promotion guard and the champion history ----------------------------------------------------------
def test_guard_refuses_a_version_no_better_than_the_baseline(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    v1, v2, v3 = _register(registry, "m", 3)
    done = promote(registry, "m", {v1: 0.49, v2: 0.62, v3: 0.5}, baseline=0.5, baseline_name="chance")
    assert done.champion == v2
    assert done.challenger is None
    assert set(done.refused) == {v1, v3}
    assert 'chance (0.5000)' in done.refused[v1]
    assert registry.describe("m", v1).tags[GUARD_TAG].startswith("validation score 0.4900")
    assert registry.describe("m", v2).tags[GUARD_TAG] == "passed"
    assert "refused" in done.describe()


def test_guard_refusing_everything_moves_no_alias(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    v1, v2 = _register(registry, "m", 2)
    promote(registry, "m", {v1: 0.7, v2: 0.6})
    done = promote(registry, "m", {v1: 0.4, v2: 0.45}, baseline=0.5)
    assert done.champion is None
    assert registry.version_for("m", CHAMPION) == v1  # where it was
    with pytest.raises(Exception, match="no version promoted"):
        _ = done.chosen


def test_rollback_walks_the_champion_history(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    v1, v2, v3 = _register(registry, "m", 3)
    for version in (v1, v2, v2, v3):
        registry.set_alias("m", CHAMPION, version)
    registry.set_alias("m", CHALLENGER, v1)  # not a champion move
    assert registry.champion_history("m") == [v1, v2, v3]
    assert registry.rollback("m") == (v3, v2)
    assert registry.rollback("m") == (v2, v1)
    with pytest.raises(Exception, match="no previous champion"):
        registry.rollback("m")
    assert registry.version_for("m", CHAMPION) == v1


# -- the lifecycle commands on a trained home ------------------------------------------------------------
def test_models_promote_rollback(ads_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = str(ads_home)
    code, out, _ = _run(capsys, "models", "ads", "--home", home)
    assert code == 0
    assert f"{NAME}  (served)" in out
    assert re.search('v\\d+\\s+lgbm', out)
    assert re.search('v\\d+\\s+logreg', out)
    assert 'valid_auc' in out
    assert 'test_auc' in out
    assert 'lineage: data' in out
    assert re.search(r"test_auc 0\.\d{4} \[0\.\d{4}, 0\.\d{4}\]", out)  # with its interval
    code, out, _ = _run(capsys, "models", "ads", "--home", home, "--json")
    models = json.loads(out)
    versions = {v["version"]: v for v in models[0]["versions"]}
    champion = next(v for v, info in versions.items() if "champion" in info["aliases"])
    other = next(v for v in versions if v != champion)

    code, out, _ = _run(capsys, "promote", "ads", other, "--home", home)
    assert code == 0
    assert f'champion -> v{other}' in out
    assert 'poll interval' in out
    assert ModelRegistry(ads_home).version_for(NAME, CHAMPION) == other
    code, out, _ = _run(capsys, "rollback", "ads", "--home", home)
    assert code == 0
    assert f'champion v{other} -> v{champion}' in out
    assert ModelRegistry(ads_home).version_for(NAME, CHAMPION) == champion

    code, _, err = _run(capsys, "promote", "ads", "99", "--home", home)
    assert code == 2
    assert 'has no version 99' in err
    assert err.count('\n') == 1
    code, _, err = _run(capsys, "promote", "ads", other, "--home", home, "--model", "nope")
    assert code == 2
    assert "no registered model 'nope'" in err


def test_pyfunc_flavour_scores_like_mlsd(ads_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow.pyfunc
    import pandas as pd

    # as a user points MLflow at a registry; not mlflow.set_tracking_uri, which sets the variable for the
    # rest of the process (every later registry and `mlsd serve` child would use this home's database)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{ads_home / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    pipeline, _ = ModelRegistry(ads_home).load(NAME)
    inputs = model.metadata.metadata["mlsd_inputs"]
    assert inputs == list(pipeline.encoder.columns)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({c: rng.integers(0, 50, 20) for c in inputs})
    scores = np.asarray(model.predict(frame))
    assert scores.shape == (20,)
    assert np.all((scores >= 0) & (scores <= 1))
    np.testing.assert_allclose(scores, pipeline.predict({c: frame[c].to_numpy() for c in inputs}))
    with pytest.raises(Exception, match="missing input column"):
        model.predict(frame.drop(columns=[inputs[0]]))


def test_status_features_materialize(ads_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = str(ads_home)
    code, out, _ = _run(capsys, "status", "ads", "--home", home, "--json")
    state = json.loads(out)
    assert code == 0
    assert state['trained']
    assert state['champion']['model'] == NAME
    assert state['serving'] is None
    assert state['monitor'] is None
    code, out, _ = _run(capsys, "features", "ads", "--home", home, "--json")
    views = {v["view"]: v for v in json.loads(out)}
    assert code == 0
    assert views['click_context']['kind'] == 'on-demand'
    ip = views["ip_clicks"]
    assert ip['online_rows'] > 0
    assert ip['lag_s'] == 0
    assert ip['materialized_until'] == ip['source_newest']
    code, out, _ = _run(capsys, "materialize", "ads", "--home", home, "--views", "ip_clicks",
                        "--until", "2030-01-01T00:00:00")
    assert code == 0
    assert 'ip_clicks:' in out
    assert 'materialized until 2030-01-01 00:00:00 UTC' in out
    code, out, _ = _run(capsys, "features", "ads", "--home", home, "--json")
    assert {v["view"]: v for v in json.loads(out)}["ip_clicks"]["materialized_until"].startswith("2030-01-01")
    code, _, err = _run(capsys, "materialize", "ads", "--home", home, "--views", "nope")
    assert code == 2
    assert 'unknown view(s) nope' in err
    code, _, err = _run(capsys, "materialize", "ads", "--home", home, "--until", "yesterday")
    assert code == 2
    assert '--until: not an ISO date/time' in err


# -- failing loudly ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [["serve", "ads"], ["report", "ads"], ["replay", "ads"], ["models", "ads"],
                                  ["status", "ads"], ["features", "ads"], ["rollback", "ads"],
                                  ["promote", "ads", "1"]])
def test_a_missing_home_is_an_error_and_is_not_created(argv: list[str], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "typo"
    code, _, err = _run(capsys, *argv, "--home", str(home))
    assert code == 2
    assert err.startswith('mlsd: error: no such home')
    assert err.count('\n') == 1
    assert not home.exists()


@pytest.mark.parametrize("argv", [["serve", "ads"], ["report", "ads"], ["replay", "ads"], ["models", "ads"]])
def test_an_untrained_home_is_one_line(argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, *argv, "--home", str(tmp_path))
    assert code == 2
    assert 'is not trained in' in err
    assert 'mlsd run ads' in err
    assert err.count('\n') == 1
    assert list(tmp_path.iterdir()) == []  # nothing written (no token, no registry)


def test_replay_with_no_server(ads_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, _, err = _run(capsys, "replay", "ads", "--home", str(ads_home), "--port", str(port))
    assert code == 2
    assert f'no service answers on 127.0.0.1:{port}' in err
    assert err.count('\n') == 1


def test_data_directory_missing_or_incomplete(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    code, _, err = _run(capsys, "run", "ads", "--data", str(tmp_path / "nowhere"), "--home", str(home))
    assert code == 2
    assert 'does not exist' in err
    assert not home.exists()
    (tmp_path / "data").mkdir()
    code, _, err = _run(capsys, "run", "listings", "--data", str(tmp_path / "data"), "--home", str(home))
    assert code == 2
    assert 'is incomplete' in err
    assert 'missing:' in err
    assert 'train-item-views.csv' in err
    assert 'Official source' in err
    assert not home.exists()


def test_no_data_directory_says_so_first(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLSD_DATA_DIR", raising=False)
    code, out, err = _run(capsys, "run", "pymk", "--home", str(tmp_path / "h"))
    assert out.splitlines()[0].startswith("mlsd run pymk: no data directory")
    assert code == 2
    assert 'no data directory: pass --data DIR' in err


def test_version_and_help_show_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert re.match('mlsd \\d+\\.\\d+', capsys.readouterr().out)
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = capsys.readouterr().out
    assert '(default: 8000)' in text
    assert '(default: 127.0.0.1)' in text
    assert '--verbose' in text


# -- a running service: the URL when it answers, status, and a rollback it follows --------------------------------
@pytest.mark.slow
def test_service_announces_when_it_answers_and_follows_a_rollback(ads_home: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    registry = ModelRegistry(ads_home)
    champion = registry.version_for(NAME, CHAMPION)
    other = registry.version_for(NAME, CHALLENGER)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen([sys.executable, "-m", "mlsd.cli", "serve", "ads", "--home", str(ads_home),
                               "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env)
    try:
        assert server.stdout is not None
        line = ""
        while "answering on" not in line:
            line = server.stdout.readline()
            assert line, server.stderr.read() if server.stderr else "server exited"
        # the line comes once /healthz answers, never before
        health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read())
        assert f'http://127.0.0.1:{port}' in line
        assert health['model_version'] == champion
        code, out, _ = _run(capsys, "status", "ads", "--home", str(ads_home), "--json")
        assert json.loads(out)["serving"]["url"] == f"http://127.0.0.1:{port}"
        code, out, err = _run(capsys, "serve", "ads", "--home", str(ads_home), "--port", str(port))
        assert code == 2
        assert 'already answers' in err

        assert _run(capsys, "promote", "ads", other, "--home", str(ads_home))[0] == 0
        assert _run(capsys, "rollback", "ads", "--home", str(ads_home))[0] == 0
        assert _run(capsys, "promote", "ads", other, "--home", str(ads_home))[0] == 0
        started = time.monotonic()
        while health["model_version"] != other:
            assert time.monotonic() - started < 15, "the service did not follow within its poll interval"
            time.sleep(0.5)
            health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read())
        assert _run(capsys, "rollback", "ads", "--home", str(ads_home))[0] == 0
        while health["model_version"] != champion:
            assert time.monotonic() - started < 30, "the service did not follow the rollback"
            time.sleep(0.5)
            health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read())
    finally:
        server.terminate()
        server.communicate(timeout=20)  # drains and closes both pipes
    assert not (ads_home / "serving.json").exists()


def test_plan_sizes_a_load_from_measurements(ads_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "plan", "ads", "--home", str(ads_home), "--qps", "2000", "--entities", "1000000",
                        "--requests", "60", "--json")
    assert code == 0
    result = json.loads(out)
    measured, needs = result["measured"], result["needs"]
    assert measured["answered_200"] == measured["requests"] == 60
    assert 0 < measured["cpu_ms_per_request"] < 1000
    assert measured["log_bytes_per_request"] > 100  # a record holds every candidate's features
    assert measured["redis_bytes_per_entity_row"] > 0
    assert measured["train_rows_per_s"] > 0  # recorded by the champion's run
    # from the JSON's 3-decimal figure, within 0.002 cores of the unrounded one the plan sized with
    cores = 2000 * measured["cpu_ms_per_request"] / 1e3 / 0.6
    assert needs["cores"] in {math.ceil(cores - 0.002), math.ceil(cores + 0.002)}
    assert needs["feature_log_gb_per_day"] == pytest.approx(2000 * 86_400 * measured["log_bytes_per_request"] / 1e9,
                                                            abs=0.01)
    code, _, err = _run(capsys, "plan", "ads", "--home", str(ads_home), "--qps", "0", "--entities", "10")
    assert code == 2
    assert "--qps" in err


def test_serve_engine_flags_are_checked(ads_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "serve", "ads", "--home", str(ads_home), "--replicas", "2")
    assert code == 2
    assert "--replicas is for --engine ray" in err
    code, _, err = _run(capsys, "serve", "ads", "--home", str(ads_home), "--engine", "ray", "--workers", "2")
    assert code == 2
    assert "--workers is for the embedded server" in err
    code, _, err = _run(capsys, "run", "pymk", "--engine", "ray", "--home", str(ads_home.parent / "pymk-ray"))
    assert code == 2
    assert "embedded engine only (--engine ray: ads, recs)" in err
