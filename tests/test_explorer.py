"""sample.py as artists run it (subprocesses, real files) and its explorer page in a real headless browser."""

import base64
import os
import shutil
import socket
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from jaxgan import sampling, trained
from jaxgan.errors import UserError

from conftest import ROOT, run_script
from test_cli import error_line

ARTIFACTS = os.environ.get("JAXGAN_TEST_ARTIFACTS", os.path.join(ROOT, "test-artifacts"))


def pixels(path: str) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_seeds_to_a_directory_with_provenance_that_makes_each_picture_again(trained_workdir, tmp_path):
    out = str(tmp_path / "pictures") + os.sep
    made = run_script("sample.py", "--workdir", trained_workdir, "--seeds", "3,17,42", "--labels", "7,2",
                      "--truncation", "0.7", "--upscale", "2", "--out", out, devices=2)
    assert made.returncode == 0, made.stderr
    assert sorted(os.listdir(out)) == ["grid.png"] + [f"seed{s:04d}_{label}.png" for s in (3, 17, 42)
                                                      for label in (2, 7)]
    picture = os.path.join(out, "seed0017_7.png")
    assert pixels(picture).shape == (56, 56)  # 28 px upscaled twice
    assert pixels(os.path.join(out, "grid.png")).shape == (2 * 58 + 2, 3 * 58 + 2)  # a row per label
    text = Image.open(picture).text
    assert (text["seed"], text["label"], text["truncation"], text["workdir"]) == ("17", "7", "0.7", trained_workdir)

    # The same picture from a one-seed command on one device, and again from its provenance.
    alone = str(tmp_path / "alone.png")
    assert run_script("sample.py", "--workdir", trained_workdir, "--seeds", "17", "--labels", "7",
                      "--truncation", "0.7", "--upscale", "2", "--out", alone).returncode == 0
    again = run_script("sample.py", "--from-image", picture)
    assert again.returncode == 0, again.stderr
    for path in (alone, os.path.join(out, "seed0017_7_again.png")):
        with open(path, "rb") as a, open(picture, "rb") as b:
            assert a.read() == b.read()


def test_walks_and_morphs_as_gif_and_mp4(trained_workdir, tmp_path):
    walk = str(tmp_path / "walk.gif")
    made = run_script("sample.py", "--workdir", trained_workdir, "--interpolate", "3,17", "--frames", "7",
                      "--labels", "4", "--out", walk)
    assert made.returncode == 0, made.stderr
    with Image.open(walk) as gif:
        assert gif.n_frames == 7
        gif.seek(6)
        last = np.asarray(gif.convert("L"))
    seed_17 = trained.load(trained_workdir).seed_images([17], [4])
    np.testing.assert_array_equal(last, sampling.to_uint8(seed_17)[0, ..., 0])  # the walk ends at seed 17's picture

    morph = str(tmp_path / "morph.mp4")
    made = run_script("sample.py", "--workdir", trained_workdir, "--interpolate-labels", "1,8", "--seeds", "42",
                      "--frames", "10", "--upscale", "4", "--out", morph)
    assert made.returncode == 0, made.stderr
    import imageio.v3 as iio

    with warnings.catch_warnings():  # imageio runs ffmpeg by fork + exec: no Python in the child
        warnings.filterwarnings("ignore", "os.fork", RuntimeWarning)
        video = iio.imread(morph, plugin="FFMPEG")
    assert video.shape == (10, 112, 112, 3)


@pytest.mark.parametrize("arguments, message", [
    (["--seeds", "1", "--truncation", "nan"], "--truncation nan must be a finite number >= 0"),
    (["--interpolate", "3,17", "--frames", "0", "--out", "w.gif"], "--frames 0 must be a whole number 2..10000"),
    (["--seeds", "1", "--upscale", "0"], "--upscale 0 must be a whole number 1..32"),
    (["--seeds", "1", "--num", "4"], "--num and --seeds both say how many images"),
    (["--seeds", "1", "--out", "x.gif"], "is the animation of --interpolate"),
    (["--variations", "4", "--strength", "2"], "--strength 2.0 must be between 0 and 1"),
    (["--serve", "--port", "70000"], "--port 70000 must be 0..65535"),
    (["--from-image", "x.png", "--seeds", "3"], "--from-image makes the picture as it was made; drop --seeds"),
])
def test_bad_values_are_one_clear_line_before_loading_anything(trained_workdir, arguments, message):
    process = subprocess.run([sys.executable, "sample.py", "--workdir", trained_workdir, *arguments], cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
    assert process.returncode == 2 and "Traceback" not in process.stderr
    assert message in error_line(process)


def test_clear_errors_that_need_the_run(trained_workdir, tmp_path):
    plain = str(tmp_path / "plain.png")
    Image.new("RGB", (4, 4)).save(plain)
    cases = [(["--workdir", trained_workdir, "--interpolate", "3", "--out", str(tmp_path / "w.gif")],
              "--interpolate needs two or more seeds"),
             (["--workdir", trained_workdir, "--interpolate-labels", "zebra,1", "--out", str(tmp_path / "m.gif")],
              "unknown class 'zebra'"),
             (["--from-image", plain], "carries no jaxgan provenance")]
    for arguments, message in cases:
        process = run_script("sample.py", *arguments)
        assert process.returncode == 1 and "Traceback" not in process.stderr
        assert message in error_line(process)
    assert sorted(os.listdir(tmp_path)) == ["plain.png"]  # nothing written


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def explorer(trained_workdir):
    """A `sample.py --serve` process on a free loopback port; yields its URL."""
    port = free_port()
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    server = subprocess.Popen([sys.executable, "sample.py", "--workdir", trained_workdir, "--serve", "--port",
                               str(port)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    line = server.stdout.readline()  # printed once the generator is compiled and the port is bound
    assert line.startswith("Exploring step"), server.stderr.read() if server.poll() is not None else line
    yield f"http://127.0.0.1:{port}/", port
    server.terminate()
    server.wait(timeout=30)


def test_the_page_in_a_headless_browser_matches_sample_py_and_a_busy_port_is_a_clear_error(
        trained_workdir, explorer, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and chromedriver, "the page test needs Debian's chromium and chromium-driver: run `make test`"
    url, port = explorer
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1000,900", f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(chromedriver), options=options)
    try:
        browser.get(url + "?style=3&seed=5&psi=0.80")
        wait = WebDriverWait(browser, 30)
        loaded = "const i = document.getElementById(arguments[0]); return i.complete && i.naturalWidth > 0;"
        wait.until(lambda b: b.execute_script(loaded, "main"))
        first = browser.find_element(By.ID, "main").get_attribute("src")
        assert "seed=5" in first and "style=3" in first

        Select(browser.find_element(By.ID, "style")).select_by_visible_text("8")
        browser.find_element(By.ID, "next").click()
        wait.until(lambda b: "seed=6" in b.find_element(By.ID, "main").get_attribute("src")
                   and b.execute_script(loaded, "main"))
        assert "style=8&seed=6&psi=0.80" in browser.current_url  # the URL holds the state

        # The picture the browser shows, byte for byte as it received it.
        shown = browser.execute_async_script(
            "const done = arguments[0];"
            "fetch(document.getElementById('main').src).then(r => r.arrayBuffer()).then(b => {"
            "  let s = ''; new Uint8Array(b).forEach(c => s += String.fromCharCode(c)); done(btoa(s)); });")
        shown_path = tmp_path / "shown.png"
        shown_path.write_bytes(base64.b64decode(shown))
        expected = str(tmp_path / "expected.png")
        assert run_script("sample.py", "--workdir", trained_workdir, "--seeds", "6", "--labels", "8",
                          "--truncation", "0.8", "--out", expected).returncode == 0
        np.testing.assert_array_equal(pixels(str(shown_path)), pixels(expected))
        assert not np.array_equal(pixels(str(shown_path)), pixels_of_url(browser, first, tmp_path))

        # Clicking two pictures shows the walk between them.
        browser.find_element(By.ID, "main").click()
        browser.find_elements(By.CSS_SELECTOR, "#neighbours img")[2].click()
        wait.until(lambda b: b.execute_script(loaded, "walk"))
        assert "from=6&to=9" in browser.find_element(By.ID, "walk").get_attribute("src")
        assert browser.current_url.endswith("style=8&seed=6&psi=0.80&walk=6-9")
        assert browser.find_element(By.ID, "error").text == ""
        os.makedirs(ARTIFACTS, exist_ok=True)
        browser.save_screenshot(os.path.join(ARTIFACTS, "explorer.png"))
    finally:
        browser.quit()

    busy = run_script("sample.py", "--workdir", trained_workdir, "--serve", "--port", str(port))
    assert busy.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in error_line(busy)


def pixels_of_url(browser, url: str, tmp_path) -> np.ndarray:
    """The pixels of the PNG at `url`, fetched by the browser."""
    data = browser.execute_async_script(
        "const done = arguments[1];"
        "fetch(arguments[0]).then(r => r.arrayBuffer()).then(b => {"
        "  let s = ''; new Uint8Array(b).forEach(c => s += String.fromCharCode(c)); done(btoa(s)); });", url)
    path = tmp_path / "fetched.png"
    path.write_bytes(base64.b64decode(data))
    return pixels(str(path))


SAMPLE_FLAGS = ("--num", "--seed", "--seeds", "--labels", "--truncation", "--upscale", "--frames", "--strength",
                "--variations", "--interpolate", "--interpolate-labels", "--fps", "--step")
HOSTILE_SAMPLE_VALUES = st.one_of(
    st.sampled_from(["nan", "inf", "-inf", "-1", "0", "1", "2", "0.5", "1e400", str(2 ** 32), str(10 ** 30), "",
                     "3-1", "0-3", "1,2", "7,x", "²", "٣", "ink", "0x10", "1_0", " 4", "9,9,9"]),
    st.integers(-2 ** 40, 2 ** 40).map(str), st.floats().map(str), st.text(max_size=5))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # imageio's fork warning is not at stake here
@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flags=st.lists(st.tuples(st.sampled_from(SAMPLE_FLAGS), HOSTILE_SAMPLE_VALUES), min_size=1, max_size=3))
def test_hostile_sample_arguments_give_a_clear_error_or_pictures(trained_workdir, flags, tmp_path_factory):
    """In process, as sample.py's main runs them: argparse errors (exit 2) or UserError, else valid pictures."""
    import sample

    out = str(tmp_path_factory.mktemp("hostile"))
    argv = ["--workdir", trained_workdir, *[item for pair in flags for item in pair]]
    try:
        args = sample.parse_args(argv + ["--out", os.path.join(out, "x.npy")])
    except SystemExit as e:
        assert e.code == 2
        event("refused by the argument checks")
        return
    try:
        images, _ = sample.make_images(args, explorer_gan(trained_workdir, args.step))
    except UserError as e:
        assert str(e) and "\n" not in str(e)
        event("refused with the run at hand")
        return
    event("pictures")
    assert images.ndim == 4 and images.shape[1:] == (28, 28, 1) and np.all(np.abs(images) <= 1)
    assert os.listdir(out) == []  # nothing is written before the pictures exist


_loaded = {}


def explorer_gan(workdir: str, step):
    """trained.load, once per (workdir, step) for the property test (loading compiles)."""
    if (workdir, step) not in _loaded:
        _loaded[workdir, step] = trained.load(workdir, step)
    return _loaded[workdir, step]
