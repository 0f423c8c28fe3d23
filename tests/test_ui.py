"""The Streamlit UI on a database filled by a real run: ``vitmon simulate`` (the ``mixed``
scenario) into the real broker, ``vitmon reference capture``, then ``vitmon run`` with the demo's
settings. Every page is rendered with Streamlit's AppTest and its figures are compared with
SQL on the same database; then ``vitmon ui`` is served and each page is loaded in headless
Chromium (Selenium), asserting visible content and saving screenshots.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from uuid import uuid4

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from monitor.devstack.demo import DEMO_SETTINGS
from monitor.devstack.processes import free_port, wait_http
from monitor.store import migrate
from tests.support import VITMON, make_topics, monitor_env, query, run_cli, start_monitor
from ui.links import format_time
from ui.views.common import pct

APP = str(Path(__file__).parents[1] / "ui" / "app.py")
MODEL, BASELINE, CANARY = "vit-tiny-digits", "2026.11.1", "2026.11.2"
START = "2026-11-01T00:00:00Z"
SCREENSHOTS = Path(os.environ.get("VITMON_TEST_ARTIFACTS", "build/test-artifacts")) / "ui"
CAM = "camera_id=cam-03"  # the camera whose firmware breaks in the mixed scenario


@pytest.fixture(scope="module")
def filled(broker, fresh_db_url: str, tmp_path_factory) -> Iterator[dict]:
    """One hour of the ``mixed`` scenario (six 10-minute windows) through the real monitor."""
    tmp = tmp_path_factory.mktemp("ui")
    samples = tmp / "samples"
    topics = make_topics(lambda: f"ui{uuid4().hex[:8]}", "confluent-kafka", broker.bootstrap)
    env = monitor_env(broker.bootstrap, fresh_db_url, topics, "confluent-kafka",
                      VITMON_CONFIG=str(DEMO_SETTINGS), VITMON_WINDOWS__SIZE_S="600",
                      VITMON_SLICES__ATTRIBUTES="[camera_id, region, device, group]",
                      VITMON_UI__SAMPLES__ALLOW=json.dumps([samples.as_uri() + "/"]))
    sim = run_cli(env, "simulate", "--scenario", "mixed", "--rate", "5", "--duration", "3600",
                  "--as-fast-as-possible", "--start", START, "--bootstrap", broker.bootstrap,
                  "--predictions-topic", topics.predictions, "--labels-topic", topics.labels,
                  "--no-progress", "--manifest", str(tmp / "manifest.json"),
                  "--sample-store", str(samples), timeout=600)
    assert sim.returncode == 0, sim.stderr
    migrate.upgrade(fresh_db_url)
    ref = run_cli(env, "reference", "capture", "--model", MODEL, "--version", BASELINE,
                  "--from", START, "--to", "2026-11-01T00:07:00Z", timeout=300)
    assert ref.returncode == 0, ref.stderr
    # all of it is on the topics (the simulator has exited): 1 s idle only times the flush
    monitor = start_monitor(env, "--exit-when-idle", "1", log=tmp / "monitor.log")
    assert monitor.wait(timeout=900) == 0, (tmp / "monitor.log").read_text()[-3000:]
    yield {"url": fresh_db_url, "env": env, "samples": samples}


@pytest.fixture(scope="module")
def ui_process(filled: dict, tmp_path_factory) -> Iterator[tuple[int, subprocess.Popen, Path]]:
    """``vitmon ui`` on the filled database, started and not waited for: it boots while the
    AppTest tests run (``served`` waits until it answers)."""
    port = free_port()
    log = tmp_path_factory.mktemp("served") / "ui.log"
    env = {**filled["env"], "VITMON_CONFIG": str(DEMO_SETTINGS)}
    proc = subprocess.Popen([VITMON, "ui", "--host", "127.0.0.1", "--port", str(port)], env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)
    try:
        yield port, proc, log
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture
def app_env(filled: dict, ui_process, chromium_starting,
            monkeypatch: pytest.MonkeyPatch) -> dict:
    """The environment ``vitmon ui`` would have, and no cached state from another test (and
    the served UI and Chromium starting meanwhile, for the Chromium tests)."""
    for key in [k for k in os.environ if k.startswith("VITMON_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("VITMON_DATABASE_URL", filled["url"])
    monkeypatch.setenv("VITMON_CONFIG", str(DEMO_SETTINGS))
    monkeypatch.setenv("VITMON_UI__SAMPLES__ALLOW", filled["env"]["VITMON_UI__SAMPLES__ALLOW"])
    # the monitor's consumer group: the On-call page shows that group's committed offsets
    monkeypatch.setenv("VITMON_KAFKA__GROUP", filled["env"]["VITMON_KAFKA__GROUP"])
    st.cache_data.clear()
    st.cache_resource.clear()
    return filled


def render(page: str, **params: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update({"page": page, **params})
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metric(at: AppTest, label: str) -> list[str]:
    return [m.value for m in at.metric if m.label == label]


def text_of(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "error", "success", "title",
                                  "subheader") for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def frames(at: AppTest) -> list:
    return [d.value for d in at.dataframe]


def counts(url: str, where: str = "true", **params) -> tuple[int, int, int]:
    """(predictions, labelled ok predictions, correct) from SQL, for the figures pages show."""
    row = query(url, "SELECT count(*), count(l.label) FILTER (WHERE NOT p.is_error), "
                     "count(*) FILTER (WHERE l.label = p.pred AND NOT p.is_error) "
                     f"FROM predictions p LEFT JOIN labels l USING (event_id) WHERE {where}",
                **params)[0]
    return int(row[0]), int(row[1]), int(row[2])


# -- AppTest: every page, numbers checked against the database --------------------------------
def test_overview_matches_database(app_env: dict) -> None:
    at = render("overview")
    n, labelled, correct = counts(app_env["url"])
    assert metric(at, "Inferences") == [f"{n:,}"]
    assert metric(at, "Accuracy (labelled)") == [pct(correct / labelled)]
    firing = query(app_env["url"], "SELECT count(*) FROM alerts WHERE state = 'firing' "
                   "AND labels->>'model' = :m", m=MODEL)[0][0]
    assert metric(at, "Alerts firing") == [str(firing)]
    assert [t.value for t in at.title] == [f"Overview · {MODEL}"]


def test_oncall_lists_every_alert_and_the_newest_window(app_env: dict) -> None:
    at = render("oncall")
    by_state = dict(query(app_env["url"], "SELECT state, count(*) FROM alerts GROUP BY 1"))
    assert by_state, "the mixed scenario's incidents raise alerts"
    alerts_table = next(df for df in frames(at) if "delivery" in df.columns)
    shown = alerts_table["state"].value_counts().to_dict()
    assert shown == {s: min(n, 500) for s, n in by_state.items()}  # the newest 500 of each
    newest = query(app_env["url"], "SELECT window_start_ms, n FROM findings WHERE detector = "
                   "'traffic' AND model_version = :v AND slice = 'all' AND subject = '' "
                   "ORDER BY window_start_ms DESC LIMIT 1", v=BASELINE)[0]
    assert f"{newest.n:,} events" in text_of(at)
    lag = next(df for df in frames(at) if "committed" in df.columns)
    assert lag["lag"].max() == 0  # the monitor ran until idle: nothing left to read


def test_drift_deep_link_opens_the_window(app_env: dict) -> None:
    url = app_env["url"]
    row = query(url, "SELECT detector, window_start_ms, score, threshold FROM findings "
                "WHERE slice = :s AND model_version = :v AND subject = '' AND status = 'alert' "
                "ORDER BY (detector LIKE '%drift') DESC, window_start_ms LIMIT 1",
                s=CAM, v=BASELINE)
    assert row, f"{CAM} alerts in the mixed scenario"
    det, window, score, threshold = row[0]
    at = render("drift", model=MODEL, version=BASELINE, slice=CAM, detector=det,
                window=format_time(window))
    assert [s.value for s in at.selectbox if s.label == "Slice"] == [CAM]
    assert [s.value for s in at.selectbox if s.label == "Detector"] == [det]
    verdict = at.error[0].value
    assert f"{det} in alert since" in verdict
    assert f"score **{score:.4g}** vs threshold **{threshold:.4g}**" in verdict
    assert at.query_params["window"] == format_time(window)  # the view stays addressable


def test_oncall_opens_on_incidents_with_infra_panels(app_env: dict) -> None:
    at = render("oncall")
    table = next(df for df in frames(at) if "cause" in df.columns)
    alerts = next(df for df in frames(at) if "delivery" in df.columns)
    assert (table["alerts"] >= 1).all() and len(table) < len(alerts)  # incidents group alerts
    n_incidents = query(app_env["url"], "SELECT count(*) FROM incidents WHERE model = :m",
                        m=MODEL)[0][0]
    assert len(table) == min(n_incidents, 50)  # the alert engine's incidents, one row each
    # the mixed scenario scripts three incidents, and the page shows three (issue 12): the broken
    # camera (baseline), the us-east latency spike (SLO burn: every version) and the bad canary,
    # whose comparisons failing on several unrelated slices join one incident (the version is
    # the cause) with its drift
    rows = query(app_env["url"], "SELECT model_version, slice, detectors FROM incidents "
                 "WHERE model = :m ORDER BY id", m=MODEL)
    by_version = {r.model_version: r for r in rows}
    assert len(rows) == 3 and set(by_version) == {BASELINE, CANARY, "*"}, rows
    assert by_version[BASELINE].slice == CAM
    assert "version_health" in by_version[CANARY].detectors
    assert "slo_burn_rate" in by_version["*"].detectors
    assert by_version["*"].slice == "region=us-east"
    # the broken camera (cam-03 in us-east on edge-gpu) drifts in the baseline; the bad canary
    # is its own incident(s)
    cam = table[table["cause"].str.contains("drift") & (table["version"] == BASELINE)]
    assert len(cam) >= 1, table[["cause", "version", "explains"]]
    assert (table["version"] == CANARY).any()
    labels = [e.label for e in at.expander if e.label != "Every alert"]
    assert labels and all(" · since 2026-11-01 " in label for label in labels), labels
    text = text_of(at)
    assert "Latency/GPU moved with it:" in text and "**Evidence:**" in text
    assert "GPU memory, utilisation, cold starts and errors" in text
    assert "**GPU memory (MB)**" in text and "**Cold starts (share of events)**" in text
    assert "Newest window: GPU memory p95" in text
    # an incident's link opens the page with that incident expanded first
    key = cam.iloc[0]["open"].split("incident=")[1].split("&")[0]
    opened = render("oncall", incident=key)
    first = opened.expander[0]
    assert first.proto.expanded and cam.iloc[0]["cause"].split(" · ")[1] in first.label


P_COLUMNS = ("p raw", "p corrected")


@pytest.mark.parametrize(("page", "params", "how"), [
    ("drift", {"slice": CAM, "detector": "feature_drift"},
     ("Bonferroni over the configured slices", "alpha spending over the window's looks")),
    ("versions", {"version": CANARY}, ("Holm over this comparison's metrics", "alpha spending")),
    ("fairness", {}, ("Bonferroni over the audit's comparisons",)), ("slices", {}, ())])
def test_every_p_value_says_raw_or_corrected_and_by_what(app_env: dict, page: str, params: dict,
                                                         how: tuple[str, ...]) -> None:
    """Issue 12: no bare "p"/"p_value" column anywhere; every table with p-values is followed
    by a note saying which are raw and how the corrected ones were corrected."""
    at = render(page, **params)
    text = text_of(at)
    p_tables = 0
    for df in frames(at):
        bare = [c for c in df.columns if str(c).lower() in ("p", "p_value", "p-value", "pvalue")
                or str(c).lower().startswith(("p adj", "p_adj"))]
        assert not bare, (page, list(df.columns))
        p_tables += any(c in P_COLUMNS for c in df.columns)
    if page in ("drift", "versions", "fairness"):
        assert p_tables, f"the {page} page of the mixed scenario shows p-values"
    if p_tables:
        assert "**p corrected**" in text, text
    for words in how:
        assert words in text, (page, words)
    assert not re.search(r"\bp = [\d.]", text)  # a bare "p = 0.01" in a verdict


def test_drift_page_of_the_broken_camera_shows_thumbnails(app_env: dict) -> None:
    window = query(app_env["url"], "SELECT window_start_ms FROM findings WHERE slice = :s AND "
                   "model_version = :v AND detector = 'feature_drift' AND subject = '' AND "
                   "status = 'alert' ORDER BY window_start_ms LIMIT 1", s=CAM, v=BASELINE)[0][0]
    at = render("drift", model=MODEL, version=BASELINE, slice=CAM, detector="feature_drift",
                window=format_time(window))
    text = text_of(at)
    assert "**Reference inputs** · 2026.11.1 · captured" in text and "**Window inputs**" in text
    images = at.get("image")  # one st.image per side: reference beside window
    assert [len(e.proto.imgs) >= 2 for e in images] == [True, True], text
    files = sorted(p.name for p in app_env["samples"].rglob("*.png"))
    assert files, "the simulator wrote its frames to the sample store"


def test_slices_table_matches_database(app_env: dict) -> None:
    url = app_env["url"]
    at = render("slices", version=BASELINE)
    table = next(df for df in frames(at) if "coverage" in df.columns)
    cam = table[table["slice"] == CAM].iloc[0]
    n, labelled, correct = counts(url, "p.model_version = :v AND :s = ANY(prediction_slices(p.slice_ids))",
                                  v=BASELINE, s=CAM)
    assert (cam["predictions"], cam["labelled"]) == (n, labelled)
    assert cam["accuracy"] == pct(correct / labelled)
    overall = table[table["slice"] == "all"].iloc[0]
    assert overall["predictions"] == counts(url, "p.model_version = :v", v=BASELINE)[0]
    assert len(at.get("vega_lite_chart")) >= 2  # interval chart and heat map


def test_fairness_audit_equals_the_cli_report(app_env: dict, tmp_path: Path) -> None:
    end = "2026-11-01T01:00:00Z"
    at = render("fairness", version=BASELINE, **{"from": START, "to": end})
    out = tmp_path / "audit.csv"
    cli = run_cli(app_env["env"], "fairness", "report", "--model", MODEL, "--version", BASELINE,
                  "--from", START, "--to", end, "--format", "csv", "--out", str(out))
    assert cli.returncode == 0, cli.stderr
    with out.open() as fh:
        expected = sorted((r["group"], r["metric"], int(r["n"])) for r in csv.DictReader(fh)
                          if r["kind"] == "comparison")
    assert expected, "group B is compared with group A"
    table = next(df for df in frames(at) if "difference 95 % CI" in df.columns)
    assert sorted(zip(table["group"], table["metric"], table["n"].astype(int))) == expected
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Download HTML report", "Download CSV"]


def test_versions_side_by_side(app_env: dict) -> None:
    at = render("versions", version=CANARY)
    per_version = {v: counts(app_env["url"], "p.model_version = :v", v=v)[0]
                   for v in (BASELINE, CANARY)}
    assert metric(at, "Predictions") == [f"{per_version[BASELINE]:,}", f"{per_version[CANARY]:,}"]
    assert f"`{CANARY}` · canary" in text_of(at)


def test_empty_database_explains_what_is_missing(db_url_factory, monkeypatch) -> None:
    url = db_url_factory()
    migrate.upgrade(url)
    monkeypatch.setenv("VITMON_DATABASE_URL", url)
    st.cache_data.clear()
    st.cache_resource.clear()
    at = render("drift")
    assert "No data yet" in at.info[0].value
    assert not at.get("vega_lite_chart")


def test_password_gates_every_page(app_env: dict, monkeypatch) -> None:
    monkeypatch.setenv("VITMON_UI__PASSWORD", "s3cret")
    at = render("overview")
    assert not at.title or at.title[0].value == "vitmon"
    assert not at.metric and not at.dataframe
    at.text_input[0].input("wrong")
    at.button[0].click().run()
    assert at.error[0].value == "Wrong password." and not at.metric
    at.text_input[0].input("s3cret")
    at.button[0].click().run()
    assert metric(at, "Inferences")


# -- the served UI in a real browser ------------------------------------------------------------
PAGES = {  # page -> (query, text that must be visible)
    "overview": ({}, "Most affected slices"),
    "oncall": ({}, "SLO burn rates"),
    "incidents": ({"page": "oncall"}, " · since 2026-11-01 "),  # an incident's heading
    "drift": ({"slice": CAM, "detector": "feature_drift"}, CAM),
    "slices": ({}, "Heat map over two attributes"),
    "fairness": ({}, "Groups against their reference group"),
    "versions": ({"version": CANARY}, "baseline vs canary"),
}


@pytest.fixture(scope="module")
def served(ui_process) -> str:
    port, _, log = ui_process
    assert wait_http(f"http://127.0.0.1:{port}/_stcore/health", 60), log.read_text()
    return f"http://127.0.0.1:{port}"


def _start_chromium(user_data_dir: Path) -> object:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert binary and driver, "install Debian's chromium and chromium-driver (make debian)"
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--hide-scrollbars", "--window-size=1600,1200", f"--user-data-dir={user_data_dir}"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=opts)


@pytest.fixture(scope="module")
def chromium_starting(tmp_path_factory) -> Iterator[Future]:
    """Headless Chromium being started on a thread (1 s to ~20 s on the shared machine): it
    starts while the AppTest tests run; ``browser`` waits for it (and raises its error)."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chromium")
    future = pool.submit(_start_chromium, tmp_path_factory.mktemp("chromium"))
    try:
        yield future
    finally:
        pool.shutdown(wait=True)
        if future.exception() is None:
            future.result().quit()


@pytest.fixture(scope="module")
def browser(chromium_starting: Future) -> object:
    return chromium_starting.result(timeout=180)


def load(chrome, url: str) -> str:
    """Load ``url``, wait until the script has finished running, return the visible text."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    chrome.get(url)
    WebDriverWait(chrome, 90).until(lambda d: d.find_elements(By.CSS_SELECTOR, "h1"))
    idle_polls = []  # on a loaded machine a script run can start right after a quiet poll

    def settled(d) -> bool:
        idle = (not d.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]')
                and not d.find_elements(By.CSS_SELECTOR, '[data-testid="stSkeleton"]'))
        idle_polls.append(idle)
        return idle_polls[-2:] == [True, True]  # idle on two polls a second apart

    WebDriverWait(chrome, 120, poll_frequency=1).until(settled)
    return chrome.find_element(By.TAG_NAME, "body").text


@pytest.mark.parametrize("page", list(PAGES))
def test_page_in_chromium(served: str, browser, page: str) -> None:
    from urllib.parse import urlencode

    params, expected = PAGES[page]
    body = load(browser, f"{served}/?{urlencode({'page': page, **params})}")
    assert expected in body
    assert MODEL in body
    assert not re.search(r"Traceback|Error running app", body)
    assert "postgresql" not in body  # the sidebar no longer shows the database URL
    if page == "oncall":
        assert "GPU memory (MB)" in body and "Cold starts (share of events)" in body
    if page == "drift":  # which p-values are raw, which corrected and by what (issue 12)
        assert "p raw" in body and "p corrected" in body
        assert "Bonferroni over the configured slices" in body and "alpha spending" in body
    if page == "drift":  # the broken camera's inputs, reference beside window, really loaded
        assert "Reference inputs" in body and "Window inputs" in body
        loaded = browser.execute_script(
            "return [...document.querySelectorAll('[data-testid=\"stImage\"] img')]"
            ".filter(i => i.complete && i.naturalWidth > 0).length")
        assert loaded >= 4, loaded
    height = browser.execute_script(
        "return document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    browser.set_window_size(1600, min(max(int(height) + 80, 900), 8000))
    if page == "incidents":  # the incidents section alone, for docs/ui.md
        browser.set_window_size(1600, 1300)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(SCREENSHOTS / f"{page}.png"))
    if os.environ.get("VITMON_UI_SCREENSHOTS"):  # docs/screenshots.sh: the images in docs/ui.md
        shutil.copy(SCREENSHOTS / f"{page}.png",
                    Path(os.environ["VITMON_UI_SCREENSHOTS"]) / f"ui-{page}.png")


def test_vitmon_ui_fails_with_one_line_without_database() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VITMON_")}
    env["VITMON_DATABASE_URL"] = "postgresql://nobody@127.0.0.1:1/none"
    out = subprocess.run([VITMON, "ui", "--port", str(free_port())], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "VITMON_DATABASE_URL" in out.stderr
