"""Reading images safely: clear errors for unreadable, truncated and oversized files, and
conversion of every PIL mode (L, LA, RGBA, P, CMYK, I;16, I, F) to the requested one."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

#: Decompression-bomb guard: images with more pixels than this are refused (PIL's own default
#: warns at 89.5 Mpx and errors at twice that; we refuse at the warning level).
DEFAULT_MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485

#: White, used as the background when an alpha channel is flattened.
WHITE = (255, 255, 255)


class BadImageError(ValueError):
    """An image file that cannot be used; the message names the file and the fix."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        super().__init__(
            f"{path}: {reason}. Replace or remove the file, or train with "
            "--on-bad-image skip to skip such files (each is logged and counted)."
        )


def open_image(path: str | Path, mode: str = "RGB", *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open ``path`` fully decoded and converted to ``mode`` ("RGB" or "L")."""
    path = Path(path)
    if not path.is_file():
        raise BadImageError(path, "file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.width * img.height > max_pixels:
                    raise BadImageError(
                        path, f"{img.width}×{img.height} pixels exceeds the decompression-bomb limit "
                        f"of {max_pixels} pixels (raise max_pixels if the image is genuine)"
                    )
                img.load()  # decode now: truncated files fail here, not in a worker later
                return convert_mode(img, mode)
    except BadImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise BadImageError(path, f"refused as a decompression bomb ({err})") from err
    except UnidentifiedImageError as err:
        raise BadImageError(path, "not a readable image (unknown or corrupt format)") from err
    except (OSError, SyntaxError, ValueError) as err:
        raise BadImageError(path, f"cannot be decoded ({err}); the file may be truncated") from err


def convert_mode(img: Image.Image, mode: str) -> Image.Image:
    """Convert any PIL mode to ``mode``: alpha is composited over white, 16/32-bit and float
    images are rescaled to 8 bits by their own range, palettes are expanded."""
    if mode not in ("RGB", "L"):
        raise ValueError(f"image mode must be 'RGB' or 'L', got {mode!r}")
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        img = _rescale_to_8bit(img)
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, WHITE + (255,))
        img = Image.alpha_composite(background, rgba).convert("RGB")
    return img if img.mode == mode else img.convert(mode)


def _rescale_to_8bit(img: Image.Image) -> Image.Image:
    array = np.asarray(img, dtype=np.float64)
    low, high = float(array.min()), float(array.max())
    scale = 255.0 / (high - low) if high > low else 0.0
    return Image.fromarray(((array - low) * scale).round().astype(np.uint8), mode="L")
