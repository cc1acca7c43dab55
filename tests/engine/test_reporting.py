"""Publishing the run report: one metric the report cannot hold must not cost the whole report."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from types import SimpleNamespace

from engine.reporting import publish_report, report_prefix
from engine.run_record import RunRecord, StepRecord
from engine.storage.local import LocalStorage


def runner_for(root: Path) -> SimpleNamespace:
    return SimpleNamespace(config=SimpleNamespace(secrets=lambda: []), spec=SimpleNamespace(charts=()),
                           chart_frames={}, storage=LocalStorage(str(root)), spark=None)


def test_a_metric_the_report_cannot_hold_is_shown_as_text(spark, tmp_path, caplog):
    """A DataFrame among the metrics made the report's deep copy fail (CONTEXT_ONLY_VALID_ON_DRIVER): no report
    at all, and a warning naming neither the step nor the key."""
    frame = spark.range(2)
    step = StepRecord(name="blocks", transform="block_trades", status="success",
                      metrics={"frame": frame, "symbols": {"b", "a"}, "count": 3, "day": dt.date(2024, 1, 5)})
    record = RunRecord(run_id="r1", pipeline="plgtest", date="2024-01-05", spec_file="s.yaml",
                       storage_root=str(tmp_path), status="success", steps=[step])
    runner = runner_for(tmp_path)
    with caplog.at_level(logging.WARNING, logger="tickflow.report"):
        where = publish_report(record, runner, runner.storage, None)
    assert where is not None and Path(where).exists()
    report = json.loads((tmp_path / report_prefix(record) / "report.json").read_text())
    metrics = report["steps"][0]["metrics"]
    assert metrics["count"] == 3 and metrics["day"] == "2024-01-05"  # what the report writes stays as it is
    assert metrics["frame"] == repr(frame) and metrics["symbols"] in ("{'a', 'b'}", "{'b', 'a'}")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and all("of step 'blocks' as text" in w for w in warnings)
    assert any("metric 'frame'" in w and "DataFrame" in w for w in warnings)
    assert not any("could not be written" in w for w in warnings)


def test_a_report_the_storage_refuses_is_kept_beside_the_log(azurite, tmp_path, caplog):
    """Azure storage gone at the end of a run (often why it failed): the report was lost with it."""
    from engine.config import AzureConfig, Config, StorageConfig
    from engine.storage.azure_access import RetrySettings
    from engine.storage.azure_blob import AzureBlobStorage
    from tests.azurite import ACCOUNT, ACCOUNT_KEY

    config = Config(azure=AzureConfig(storage_account=ACCOUNT, access_key=ACCOUNT_KEY, endpoint=azurite.endpoint,
                                      container="gone"),
                    storage=StorageConfig(cache_dir=str(tmp_path / "cache")), base_dir=tmp_path)
    storage = AzureBlobStorage.from_config("az://gone/wh", config, retry=RetrySettings(total=0))
    step = StepRecord(name="ingest", transform="ingest_raw", status="failed", metrics={"lines_read": 12})
    record = RunRecord(run_id="r2", pipeline="preprocess", date="2024-01-05", spec_file="s.yaml",
                       storage_root="az://gone/wh", status="failed", steps=[step])
    log_file = tmp_path / "logs" / "preprocess_2024-01-05.log"
    log_file.parent.mkdir()
    log_file.write_text("the run's log\n")
    with caplog.at_level(logging.WARNING, logger="tickflow.report"):
        where = publish_report(record, runner_for(tmp_path), storage, log_file)
    folder = log_file.parent / "report_preprocess_2024-01-05_r2"
    assert where == str(folder / "report.html") and Path(where).exists()
    report = json.loads((folder / "report.json").read_text())
    assert report["report_html"] == where and report["steps"][0]["metrics"] == {"lines_read": 12}
    warning = next(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "could not be published to az://gone/wh/_reports/preprocess/2024-01-05/r2" in warning
    assert "container 'gone' does not exist" in warning and f"kept at {where}" in warning
    assert ACCOUNT_KEY not in warning
