"""download_omniglot against a local HTTP server on 127.0.0.1 (never the internet)."""

import functools
import http.server
import threading
import zipfile

import pytest

from metalearn.data import download_omniglot
from metalearn.errors import DatasetError


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """Serve ``tmp_path / "site"`` on 127.0.0.1; yields ``(folder, base_url)``."""
    site = tmp_path / "site"
    site.mkdir()
    handler = functools.partial(QuietHandler, directory=str(site))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        yield site, f"http://127.0.0.1:{httpd.server_address[1]}/python"
        httpd.shutdown()
        thread.join()


def write_zip(path, member: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(member, b"x")


def test_download_writes_both_archives_under_root_omniglot(server, tmp_path):
    site, url = server
    for name in ("images_background", "images_evaluation"):
        write_zip(site / "python" / f"{name}.zip", f"{name}/a.png")
    folder = download_omniglot(tmp_path / "data", base_url=url)
    assert folder == tmp_path / "data" / "omniglot"
    for name in ("images_background", "images_evaluation"):
        assert (folder / f"{name}.zip").read_bytes() == (
            site / "python" / f"{name}.zip"
        ).read_bytes()
    assert sorted(p.name for p in folder.iterdir()) == [
        "images_background.zip",
        "images_evaluation.zip",
    ]


def test_existing_archives_are_kept_unless_overwrite(server, tmp_path):
    site, url = server
    for name in ("images_background", "images_evaluation"):
        write_zip(site / "python" / f"{name}.zip", "new")
    target = tmp_path / "data" / "omniglot" / "images_background.zip"
    write_zip(target, "old")
    download_omniglot(tmp_path / "data", base_url=url)
    assert zipfile.ZipFile(target).namelist() == ["old"]
    download_omniglot(tmp_path / "data", base_url=url, overwrite=True)
    assert zipfile.ZipFile(target).namelist() == ["new"]


def test_a_missing_file_on_the_server_names_the_url_and_leaves_no_partial_file(server, tmp_path):
    _, url = server
    with pytest.raises(DatasetError, match=rf"cannot download {url}/images_background\.zip"):
        download_omniglot(tmp_path / "data", base_url=url)
    assert list((tmp_path / "data" / "omniglot").iterdir()) == []


def test_a_response_that_is_not_a_zip_is_rejected(server, tmp_path):
    site, url = server
    (site / "python").mkdir()
    (site / "python" / "images_background.zip").write_text("<html>not found</html>")
    with pytest.raises(DatasetError, match="did not return a zip archive"):
        download_omniglot(tmp_path / "data", base_url=url)
    assert list((tmp_path / "data" / "omniglot").iterdir()) == []
