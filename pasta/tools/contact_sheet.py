"""A contact sheet of generated images: one tile per prompt, its images side by side, the prompt under them, and
under each image what the judge read differently from the request (red) or "ok" (green)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _wrap(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> list[str]:
    """Greedy word wrap to a pixel width."""
    lines, line = [], ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if draw.textlength(trial, font=font) <= width or not line:
            line = trial
        else:
            lines.append(line)
            line = word
    return lines + ([line] if line else [])


def contact_sheet(rows: list[dict], title: str, path: Path, cell: int = 80, tiles_per_row: int = 4) -> Path:
    """One tile per prompt: its images upscaled (nearest) side by side, the prompt under them, and under each image
    the attributes the classifier read differently from the request (red) or "ok" (green)."""
    font, small, big = _font(13), _font(11), _font(16)
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    n_img = max(len(r["images"]) for r in rows)
    gap, pad = 4, 14
    tile_w = n_img * cell + (n_img - 1) * gap
    line_h, small_h = 16, 13
    prompt_lines = [_wrap(scratch, r["prompt"], font, tile_w) for r in rows]
    max_prompt_lines = max(len(p) for p in prompt_lines)
    max_err_lines = max(max((len(e) for e in r["errors"]), default=0) for r in rows) or 1
    tile_h = cell + 4 + max_prompt_lines * line_h + max_err_lines * small_h + 6
    cols = min(tiles_per_row, len(rows))
    n_rows = (len(rows) + cols - 1) // cols
    header_lines = title.split("\n")
    header_h = pad + len(header_lines) * 20 + 6
    width = pad + cols * (tile_w + pad)
    height = header_h + n_rows * (tile_h + pad) + pad
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for k, line in enumerate(header_lines):
        draw.text((pad, pad + 20 * k), line, fill=(0, 0, 0), font=big)
    for t, row in enumerate(rows):
        x0 = pad + (t % cols) * (tile_w + pad)
        y0 = header_h + (t // cols) * (tile_h + pad)
        for j, image in enumerate(row["images"]):
            x = x0 + j * (cell + gap)
            sheet.paste(image.resize((cell, cell), Image.NEAREST), (x, y0))
            errors = row["errors"][j] or ["ok"]
            for k, err in enumerate(errors):
                colour = (0, 130, 0) if err == "ok" else (200, 0, 0)
                draw.text((x, y0 + cell + 4 + max_prompt_lines * line_h + k * small_h), err, fill=colour, font=small)
        for k, line in enumerate(prompt_lines[t]):
            draw.text((x0, y0 + cell + 3 + k * line_h), line, fill=(20, 20, 20), font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path
