"""Image reading/writing on the real images in ../shared/data/images (plus synthetic edge cases)."""

import cv2
import numpy as np
import pytest

from posrec.errors import PosrecError
from posrec.io.atomic import atomic_write, check_not_input
from posrec.io.images import IMAGE_EXTS, read_image, write_image


@pytest.fixture(scope="module")
def astronaut(shared_data):
    return read_image(shared_data / "images" / "astronaut.png")


def _one_line_error(fn, *args) -> str:
    with pytest.raises(PosrecError) as info:
        fn(*args)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_greyscale_becomes_three_channels(shared_data):
    path = shared_data / "images" / "camera.png"
    img = read_image(path)
    assert img.shape == (512, 512, 3) and img.dtype == np.uint8
    grey = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert grey.ndim == 2  # the file really is single-channel
    assert all(np.array_equal(img[:, :, c], grey) for c in range(3))


def test_rgb_order(shared_data, astronaut):
    bgr = cv2.imread(str(shared_data / "images" / "astronaut.png"))
    assert astronaut.shape == (512, 512, 3)
    assert np.array_equal(astronaut, bgr[:, :, ::-1])


def test_alpha_is_composited_over_white(astronaut, tmp_path):
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    rgba[:, :256, 3] = 0  # left half transparent
    path = tmp_path / "astronaut_rgba.png"
    cv2.imwrite(str(path), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED).shape[2] == 4
    img = read_image(path)
    assert img.shape == (512, 512, 3)
    assert np.all(img[:, :256] == 255)
    assert np.array_equal(img[:, 256:], astronaut[:, 256:])


def test_16_bit(shared_data, tmp_path):
    grey = cv2.imread(str(shared_data / "images" / "camera.png"), cv2.IMREAD_UNCHANGED)
    path = tmp_path / "camera16.png"
    cv2.imwrite(str(path), grey.astype(np.uint16) * 257)  # 16-bit version of the same photo
    img = read_image(path)
    assert img.dtype == np.uint8 and np.array_equal(img[:, :, 0], grey)


def test_one_pixel(tmp_path):
    path = tmp_path / "one.png"
    cv2.imwrite(str(path), np.array([[[30, 20, 10]]], np.uint8))  # BGR on disk
    img = read_image(path)
    assert img.shape == (1, 1, 3) and img[0, 0].tolist() == [10, 20, 30]


def test_very_large_image(tmp_path):
    # Synthetic: no 8000x6000 photo in the shared data. Checks no pixel limit gets in the way.
    big = np.zeros((6000, 8000, 3), np.uint8)
    big[::50] = 255
    path = tmp_path / "big.jpg"
    assert cv2.imwrite(str(path), big)
    del big
    img = read_image(path)
    assert img.shape == (6000, 8000, 3)


def test_bad_inputs_are_one_line_errors(tmp_path):
    assert "not found" in _one_line_error(read_image, tmp_path / "missing.png")
    assert "directory" in _one_line_error(read_image, tmp_path)
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert "empty" in _one_line_error(read_image, tmp_path / "empty.jpg")
    (tmp_path / "text.png").write_text("not an image")
    assert "cannot read" in _one_line_error(read_image, tmp_path / "text.png")
    (tmp_path / "noise.jpg").write_bytes(b"\xff\xd8\xff" + bytes(range(256)) * 4)
    assert "cannot read" in _one_line_error(read_image, tmp_path / "noise.jpg")


def test_write_image_round_trip(astronaut, tmp_path):
    out = tmp_path / "new" / "a.png"
    write_image(out, astronaut)
    assert np.array_equal(read_image(out), astronaut)
    write_image(tmp_path / "a.jpg", astronaut)
    assert np.abs(read_image(tmp_path / "a.jpg").astype(int) - astronaut).mean() < 3
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.jpg", "a.png", "new"]
    assert "use one of" in _one_line_error(write_image, tmp_path / "a.xyz", astronaut)
    with pytest.raises(ValueError):
        write_image(tmp_path / "b.png", astronaut.astype(np.float32))
    assert ".png" in IMAGE_EXTS and ".jpg" in IMAGE_EXTS


def test_atomic_write_keeps_old_file_on_error(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(target, "w") as f:
            f.write("half of the new")
            raise RuntimeError("crash")
    assert target.read_text() == "old"
    with atomic_write(target, "w") as f:
        f.write("new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    assert "directory" in _one_line_error(lambda: atomic_write(tmp_path).__enter__())


def test_check_not_input(tmp_path):
    src = tmp_path / "in.mp4"
    src.write_bytes(b"x")
    link = tmp_path / "link.mp4"
    link.symlink_to(src)
    check_not_input(tmp_path / "out.mp4", src, None)
    assert "refusing to overwrite" in _one_line_error(check_not_input, src, src)
    assert "refusing to overwrite" in _one_line_error(check_not_input, link, src)
    assert "refusing to overwrite" in _one_line_error(check_not_input, tmp_path / "." / "in.mp4", src)


def test_jpeg_exif_orientation_is_applied(tmp_path):
    # Synthetic: none of the shared photos carries an EXIF rotation. Pillow comes with torchvision.
    Image = pytest.importorskip("PIL.Image")
    img = np.zeros((40, 80, 3), np.uint8)
    img[:, :40] = 255  # landscape, left half white
    pil = Image.fromarray(img)
    exif = pil.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    pil.save(tmp_path / "rotated.jpg", exif=exif)
    out = read_image(tmp_path / "rotated.jpg")
    assert out.shape == (80, 40, 3)  # portrait, as a photo viewer shows it
    assert out[0].mean() > 200 and out[-1].mean() < 50  # the white half is now on top
