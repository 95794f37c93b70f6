"""How long the explorer page waits for a picture: time of `GET /image.png` for fresh seeds.

python benchmarks/explorer_latency.py --workdir runs/textures [--requests 50]

Starts the page's server in this process on a free loopback port (as `sample.py --serve` does: the
generator compiled once at start-up), asks for `--requests` pictures of new seeds one after the
other, as a visitor clicking "Next" would, and prints the median and 90th-percentile time from
request to the last byte of the PNG, and the same for a 24-frame walk GIF.
"""

import argparse
import os
import statistics
import sys
import threading
import time
import urllib.request

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def timed_get(url: str) -> float:
    """Milliseconds from sending GET `url` to its last byte."""
    started = time.perf_counter()
    with urllib.request.urlopen(url) as response:
        response.read()
    return 1000 * (time.perf_counter() - started)


def summary(times: list[float]) -> str:
    ordered = sorted(times)
    percentile_90 = ordered[int(0.9 * (len(ordered) - 1))]
    return f"median {statistics.median(ordered):.0f} ms, 90th percentile {percentile_90:.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()

    import http.server

    import jax

    from jaxgan import explorer, trained

    started = time.perf_counter()
    gan = trained.load(args.workdir)
    page = explorer.Explorer(gan)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), explorer.make_handler(page))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"{args.workdir}: step {gan.step}, {gan.image_shape[0]}x{gan.image_shape[1]}x{gan.image_shape[2]} "
          f"pictures, {len(gan.class_names)} styles; loaded and compiled in {time.perf_counter() - started:.1f} s "
          f"on {jax.devices()[0].device_kind}")
    base = f"http://127.0.0.1:{server.server_address[1]}"
    style = f"style={urllib.request.quote(gan.class_names[0])}&" if gan.class_names else ""
    pictures = [timed_get(f"{base}/image.png?{style}seed={1000 + i}&psi=0.8") for i in range(args.requests)]
    walks = [timed_get(f"{base}/walk.gif?{style}from={i}&to={i + 1}&psi=0.8")
             for i in range(max(3, args.requests // 10))]
    print(f"picture ({args.requests} seeds): {summary(pictures)}")
    print(f"walk GIF, {explorer.WALK_FRAMES} frames ({len(walks)} walks): {summary(walks)}")
    server.shutdown()


if __name__ == "__main__":
    main()
