"""Which dates a run covers: strict date parsing, job dates from tracker rows, catch-up candidates, and the
raw root check of a catch-up."""

from __future__ import annotations

import datetime as dt
import uuid
from types import SimpleNamespace

import pytest

from engine.dates import (
    candidate_dates,
    check_raw_folders,
    job_dates,
    no_new_raw_dates,
    no_upstream_dates,
    parse_date,
    previous_trading_day,
    trading_days,
)
from engine.errors import ConfigError
from engine.storage.local import LocalStorage


def _rows(*pairs: tuple[str, str]) -> list[SimpleNamespace]:
    return [SimpleNamespace(job_id=job_id, status=status) for job_id, status in pairs]


ROWS = _rows(("preprocess_2024-01-04", "success"), ("preprocess_2024-01-05", "failed"),
             ("preprocess_2024-01-08", "stale"), ("preprocess_2024-01-09", "running"),
             ("preprocess.ingest_2024-01-10", "failed"), ("preprocessing_2024-01-11", "success"),
             ("preprocess_notadate", "success"))


def test_job_dates_filter_by_pipeline_and_status():
    assert job_dates(ROWS, "preprocess", ("success",)) == [dt.date(2024, 1, 4)]
    assert job_dates(ROWS, "preprocess") == [dt.date(2024, 1, d) for d in (4, 5, 8, 9)]


def test_upstream_catch_up_offers_every_date_the_upstream_job_has_a_row_for(tmp_path):
    # the guard then refuses those whose upstream job is not 'success' (exit 3) rather than they go unmentioned
    offered = candidate_dates({"upstream": "preprocess"}, LocalStorage(tmp_path), ROWS)
    assert offered == [dt.date(2024, 1, d) for d in (4, 5, 8, 9)]
    assert candidate_dates({}, LocalStorage(tmp_path), ROWS) is None


def test_an_upstream_catch_up_without_upstream_jobs_says_so():
    """Not just "no new input dates": the upstream pipeline has never run here, or runs under another name."""
    assert candidate_dates({"upstream": "preproces"}, None, ROWS) == []  # type: ignore[arg-type]
    assert no_upstream_dates("preproces") == "no job of upstream pipeline 'preproces' is recorded in the job tracker"
    assert no_upstream_dates("p", dt.date(2024, 1, 1), dt.date(2024, 1, 31)) == (
        "no job of upstream pipeline 'p' from 2024-01-01 to 2024-01-31 is recorded in the job tracker")
    assert no_upstream_dates("p", tracker="SQLite /x/t.sqlite table job_tracker") == (
        "no job of upstream pipeline 'p' is recorded in the job tracker (SQLite /x/t.sqlite table job_tracker)")


def test_raw_catch_up_offers_the_date_folders(tmp_path):
    for rel in ("csv/2024-01-04", "json/2024-01-05", "csv/notes"):
        (tmp_path / rel).mkdir(parents=True)
    offered = candidate_dates({"raw_folders": ["csv", "json"]}, LocalStorage(tmp_path), [])
    assert offered == [dt.date(2024, 1, 4), dt.date(2024, 1, 5)]


@pytest.mark.parametrize("text", ["20240104", "2024-W01-4", "2024-1-4", "2024-02-30"])
def test_only_yyyy_mm_dd_dates_parse(text):
    with pytest.raises(ValueError, match="expected YYYY-MM-DD"):
        parse_date(text)


@pytest.mark.parametrize("text", ["0001-01-01", "1899-12-31"])
def test_a_date_before_1900_is_out_of_range(text):
    """0001-01-01 has no previous trading day: an OverflowError traceback in run, validate and plan."""
    with pytest.raises(ValueError, match=f"'{text}' is out of range; expected a date from 1900-01-01 to 9999-12-31"):
        parse_date(text)
    assert parse_date("1900-01-01") == dt.date(1900, 1, 1) and parse_date("9999-12-31") == dt.date.max


# -- a raw catch-up whose folders are nowhere under the raw root ------------------------------------------------
def test_a_raw_catch_up_without_any_of_its_folders_is_a_config_error(tmp_path):
    """A missing or mistyped raw root must not read as "no new input dates" (exit 0 forever): exit 2, naming
    the raw root and the folders looked for."""
    for root in (tmp_path / "nowhere", tmp_path / "empty"):
        (tmp_path / "empty" / "csvv").mkdir(parents=True, exist_ok=True)  # a folder, but not one of the spec's
        with pytest.raises(ConfigError) as info:
            check_raw_folders("preprocess", LocalStorage(root), ["csv", "json"])
        assert str(info.value) == (f"preprocess: no raw folder csv/ or json/ under the raw root (local folder "
                                   f"{root}); check [storage] raw_root (or TICKFLOW_STORAGE_RAW_ROOT)")
        assert info.value.exit_code == 2
    with pytest.raises(ConfigError, match=r"no raw folder csv/, json/ or xml/ under"):
        check_raw_folders("p", LocalStorage(tmp_path / "nowhere"), ["csv", "json", "xml"])
    (tmp_path / "empty" / "json").mkdir()  # one folder, even without any date yet, is enough
    check_raw_folders("preprocess", LocalStorage(tmp_path / "empty"), ["csv", "json"])
    assert (no_new_raw_dates(LocalStorage(tmp_path / "empty"), ["csv", "json"])
            == f"no new input dates in csv/ and json/ under local folder {tmp_path / 'empty'}")


@pytest.mark.parametrize("mode", ["staged", "direct"])
def test_an_azure_raw_root_without_the_folders_is_a_config_error_too(azurite, tmp_path, mode):
    from azure.storage.blob import ContainerClient

    from engine.config import AzureConfig, Config, StorageConfig
    from engine.storage.factory import open_storage
    from tests.azurite import ACCOUNT, ACCOUNT_KEY

    container = "t" + uuid.uuid4().hex[:20]
    client = ContainerClient(azurite.endpoint, container,
                             credential={"account_name": ACCOUNT, "account_key": ACCOUNT_KEY})
    client.create_container()
    config = Config(azure=AzureConfig(storage_account=ACCOUNT, container=container, access_key=ACCOUNT_KEY,
                                      endpoint=azurite.endpoint),
                    storage=StorageConfig(mode=mode, cache_dir=str(tmp_path / "cache")), base_dir=tmp_path)
    raw = open_storage(f"az://{container}/raw", config)
    client.upload_blob("raw/csvv/2024-01-04/NYSE/part-00000.txt", b"x\n")  # not one of the spec's folders
    with pytest.raises(ConfigError) as info:
        check_raw_folders("preprocess", raw, ["csv", "json"])
    message = str(info.value)
    assert message.startswith(f"preprocess: no raw folder csv/ or json/ under the raw root ({raw.describe()})")
    assert f"account={ACCOUNT} container={container}" in message and "/raw" in message
    assert ACCOUNT_KEY not in message and ACCOUNT_KEY[:12] not in message
    client.upload_blob("raw/json/2024-01-05/NYSE/part-00000.txt", b"x\n")
    check_raw_folders("preprocess", raw, ["csv", "json"])
    assert candidate_dates({"raw_folders": ["csv", "json"]}, raw, []) == [dt.date(2024, 1, 5)]
    assert ACCOUNT_KEY not in no_new_raw_dates(raw, ["csv", "json"])
    client.close()


def test_trading_days_skip_weekends_and_the_configured_holidays():
    d = dt.date
    # 2024-12-25 (Wed) and 2025-01-01 (Wed) closed; 2024-12-28/29 and 2025-01-04/05 a weekend
    holidays = (d(2024, 12, 25), d(2025, 1, 1))
    assert trading_days(d(2024, 12, 23), d(2025, 1, 6), holidays) == [
        d(2024, 12, 23), d(2024, 12, 24), d(2024, 12, 26), d(2024, 12, 27), d(2024, 12, 30), d(2024, 12, 31),
        d(2025, 1, 2), d(2025, 1, 3), d(2025, 1, 6)]
    assert len(trading_days(d(2024, 12, 23), d(2025, 1, 6))) == 11  # without holidays: every weekday
    assert previous_trading_day(d(2024, 12, 26), holidays) == d(2024, 12, 24)
    assert previous_trading_day(d(2025, 1, 6), holidays) == d(2025, 1, 3)  # Monday -> Friday
    # a Monday holiday after a weekend: Tuesday's previous trading day is the Friday before
    assert previous_trading_day(d(2024, 1, 16), (d(2024, 1, 15),)) == d(2024, 1, 12)
