"""A pixels model's request may carry PNG files (base64) in an ``image`` column: decoded
into exactly the pixels training read, and refused by row when unreadable or mis-sized."""

from __future__ import annotations

import base64

import numpy as np
import pandas as pd
import pytest

from components.io.serving import RequestRefused, check_image_source, images_as_pixels
from tests.helpers.serving import png_base64


def test_png_images_decode_into_the_pixel_columns_training_reads():
    pixels = np.random.default_rng(0).integers(0, 256, size=(3, 16)).astype(np.float64)
    request = pd.DataFrame(
        {"image_base64": [png_base64(row) for row in pixels], "id": ["a", "b", "c"]}, index=[5, 6, 7]
    )
    decoded = images_as_pixels(request, canvas_size=4, max_rows=10)
    assert list(decoded.index) == [5, 6, 7] and decoded["id"].tolist() == ["a", "b", "c"]
    np.testing.assert_array_equal(decoded.filter(like="px_").to_numpy(), pixels)
    assert list(decoded.filter(like="px_").columns) == [f"px_{i:04d}" for i in range(16)]
    as_data_url = request.assign(image_base64=["data:image/png;base64," + png_base64(row) for row in pixels])
    pd.testing.assert_frame_equal(images_as_pixels(as_data_url, 4, 10), decoded)


def test_unreadable_and_mis_sized_images_are_refused_by_row():
    good, large = png_base64(np.zeros(16)), png_base64(np.zeros(25))
    corrupt = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(40)).decode()  # a PNG header, then nothing
    request = pd.DataFrame({"image_base64": [good, "not an image", large, corrupt, png_base64(np.zeros(4))]})
    with pytest.raises(RequestRefused) as refused:
        images_as_pixels(request, canvas_size=4, max_rows=10)
    assert refused.value.message == (
        "request refused: column image_base64: rows 1, 3 are not base64 PNG or JPEG images; "
        "column image_base64: rows 2 (5x5), 4 (2x2) are not 4x4 (data.canvas_size)"
    )


def test_an_image_model_opens_no_path_a_request_names_unless_allowed_and_inside_its_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    by_path = pd.DataFrame({"image": ["raw/a.png", "/etc/passwd", "raw/../../x.png"]})
    with pytest.raises(RequestRefused, match=r"serving.image_paths is false: no paths"):
        check_image_source(by_path, "image", paths_allowed=False)
    with pytest.raises(RequestRefused, match="column image: rows 1, 2 name files outside the server's directory"):
        check_image_source(by_path, "image", paths_allowed=True)
    check_image_source(by_path.head(1), "image", paths_allowed=True)  # inside: read
    check_image_source(pd.DataFrame({"image_base64": ["..."]}), "image", paths_allowed=False)  # files, not paths
