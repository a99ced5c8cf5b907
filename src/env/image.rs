//! RGB frames on disk: PNG encoding and episode contact sheets, so a person can look at what
//! an agent saw and did (each frame captioned with the action taken on it, in a built-in 3x5
//! pixel font).

use super::RgbImage;
use std::io::Write;
use std::path::Path;

/// Why an image could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("image is {width}x{height} but holds {found} bytes, expected {expected}")]
    Size {
        width: usize,
        height: usize,
        found: usize,
        expected: usize,
    },
    #[error("cannot encode PNG: {0}")]
    Encode(#[from] png::EncodingError),
    #[error("cannot write `{path}`: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("a contact sheet needs at least one frame")]
    NoFrames,
}

impl RgbImage {
    /// A black image.
    pub fn new(width: usize, height: usize) -> RgbImage {
        RgbImage {
            width,
            height,
            pixels: vec![0; width * height * 3],
        }
    }

    /// The pixel at `(x, y)`.
    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.width + x) * 3;
        [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]]
    }

    fn check(&self) -> Result<(), ImageError> {
        let expected = self.width * self.height * 3;
        if self.pixels.len() != expected {
            return Err(ImageError::Size {
                width: self.width,
                height: self.height,
                found: self.pixels.len(),
                expected,
            });
        }
        Ok(())
    }

    /// Copies `other` with its top-left corner at `(x, y)`, clipped to this image.
    pub fn blit(&mut self, other: &RgbImage, x: usize, y: usize) {
        for row in 0..other.height {
            let ty = y + row;
            if ty >= self.height || x >= self.width {
                break;
            }
            let w = other.width.min(self.width - x);
            let src = &other.pixels[row * other.width * 3..(row * other.width + w) * 3];
            let dst_start = (ty * self.width + x) * 3;
            self.pixels[dst_start..dst_start + w * 3].copy_from_slice(src);
        }
    }
}

/// PNG bytes of `image` (8-bit RGB).
pub fn encode_png(image: &RgbImage) -> Result<Vec<u8>, ImageError> {
    image.check()?;
    let mut bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut bytes, image.width as u32, image.height as u32);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&image.pixels)?;
        writer.finish()?;
    }
    Ok(bytes)
}

/// Writes `image` as a PNG file.
pub fn write_png(image: &RgbImage, path: &Path) -> Result<(), ImageError> {
    let bytes = encode_png(image)?;
    let io = |source| ImageError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut file = std::fs::File::create(path).map_err(io)?;
    file.write_all(&bytes).map_err(io)?;
    Ok(())
}

/// Reads a PNG written by [`write_png`] back (8-bit RGB only).
pub fn decode_png(bytes: &[u8]) -> Result<RgbImage, png::DecodingError> {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info()?;
    let size = reader.output_buffer_size().unwrap_or(0);
    let mut buf = vec![0; size];
    let info = reader.next_frame(&mut buf)?;
    buf.truncate(info.buffer_size());
    Ok(RgbImage {
        width: info.width as usize,
        height: info.height as usize,
        pixels: buf,
    })
}

/// Gap between frames on a contact sheet, in pixels.
pub const SHEET_GAP: usize = 4;
/// Contact sheet background.
pub const SHEET_BACKGROUND: [u8; 3] = [255, 255, 255];

/// Lays `frames` out left to right, `columns` per row, on a white sheet with gaps. Frames may
/// differ in size; every slot is as large as the largest frame.
pub fn contact_sheet(frames: &[RgbImage], columns: usize) -> Result<RgbImage, ImageError> {
    if frames.is_empty() {
        return Err(ImageError::NoFrames);
    }
    for f in frames {
        f.check()?;
    }
    let columns = columns.clamp(1, frames.len());
    let rows = frames.len().div_ceil(columns);
    let slot_w = frames.iter().map(|f| f.width).max().unwrap_or(0);
    let slot_h = frames.iter().map(|f| f.height).max().unwrap_or(0);
    let width = columns * slot_w + (columns + 1) * SHEET_GAP;
    let height = rows * slot_h + (rows + 1) * SHEET_GAP;
    let mut sheet = RgbImage {
        width,
        height,
        pixels: SHEET_BACKGROUND.repeat(width * height),
    };
    for (i, frame) in frames.iter().enumerate() {
        let (r, c) = (i / columns, i % columns);
        let x = SHEET_GAP + c * (slot_w + SHEET_GAP);
        let y = SHEET_GAP + r * (slot_h + SHEET_GAP);
        sheet.blit(frame, x, y);
    }
    Ok(sheet)
}

/// Frames per row on an episode contact sheet.
pub const EPISODE_COLUMNS: usize = 8;

/// Writes an episode's frames, in order, as one contact sheet PNG.
pub fn write_episode_sheet(frames: &[RgbImage], path: &Path) -> Result<(), ImageError> {
    write_png(&contact_sheet(frames, EPISODE_COLUMNS)?, path)
}

/// Writes each frame as `<stem>_<NNN>.png` in `dir`; returns the paths written.
pub fn write_frames(
    frames: &[RgbImage],
    dir: &Path,
    stem: &str,
) -> Result<Vec<std::path::PathBuf>, ImageError> {
    frames
        .iter()
        .enumerate()
        .map(|(i, frame)| {
            let path = dir.join(format!("{stem}_{i:03}.png"));
            write_png(frame, &path).map(|()| path)
        })
        .collect()
}

/// Glyphs of the caption font: 3x5 pixels, rows top to bottom, `#` set. Letters are drawn
/// upper-case; a character without a glyph is drawn as `?`.
const GLYPHS: &[(char, [&str; 5])] = &[
    ('A', [".#.", "#.#", "###", "#.#", "#.#"]),
    ('B', ["##.", "#.#", "##.", "#.#", "##."]),
    ('C', [".##", "#..", "#..", "#..", ".##"]),
    ('D', ["##.", "#.#", "#.#", "#.#", "##."]),
    ('E', ["###", "#..", "##.", "#..", "###"]),
    ('F', ["###", "#..", "##.", "#..", "#.."]),
    ('G', [".##", "#..", "#.#", "#.#", ".##"]),
    ('H', ["#.#", "#.#", "###", "#.#", "#.#"]),
    ('I', ["###", ".#.", ".#.", ".#.", "###"]),
    ('J', ["..#", "..#", "..#", "#.#", ".#."]),
    ('K', ["#.#", "#.#", "##.", "#.#", "#.#"]),
    ('L', ["#..", "#..", "#..", "#..", "###"]),
    ('M', ["#.#", "###", "###", "#.#", "#.#"]),
    ('N', ["##.", "#.#", "#.#", "#.#", "#.#"]),
    ('O', [".#.", "#.#", "#.#", "#.#", ".#."]),
    ('P', ["##.", "#.#", "##.", "#..", "#.."]),
    ('Q', [".#.", "#.#", "#.#", "##.", ".##"]),
    ('R', ["##.", "#.#", "##.", "#.#", "#.#"]),
    ('S', [".##", "#..", ".#.", "..#", "##."]),
    ('T', ["###", ".#.", ".#.", ".#.", ".#."]),
    ('U', ["#.#", "#.#", "#.#", "#.#", "###"]),
    ('V', ["#.#", "#.#", "#.#", "#.#", ".#."]),
    ('W', ["#.#", "#.#", "###", "###", "#.#"]),
    ('X', ["#.#", "#.#", ".#.", "#.#", "#.#"]),
    ('Y', ["#.#", "#.#", ".#.", ".#.", ".#."]),
    ('Z', ["###", "..#", ".#.", "#..", "###"]),
    ('0', ["###", "#.#", "#.#", "#.#", "###"]),
    ('1', [".#.", "##.", ".#.", ".#.", "###"]),
    ('2', ["##.", "..#", ".#.", "#..", "###"]),
    ('3', ["##.", "..#", ".#.", "..#", "##."]),
    ('4', ["#.#", "#.#", "###", "..#", "..#"]),
    ('5', ["###", "#..", "##.", "..#", "##."]),
    ('6', [".##", "#..", "###", "#.#", "###"]),
    ('7', ["###", "..#", ".#.", ".#.", ".#."]),
    ('8', ["###", "#.#", "###", "#.#", "###"]),
    ('9', ["###", "#.#", "###", "..#", "##."]),
    (' ', ["...", "...", "...", "...", "..."]),
    ('-', ["...", "...", "###", "...", "..."]),
    (':', ["...", ".#.", "...", ".#.", "..."]),
    ('.', ["...", "...", "...", "...", ".#."]),
    ('?', ["##.", "..#", ".#.", "...", ".#."]),
];

/// Caption glyphs are drawn this many times their 3x5 size.
pub const CAPTION_SCALE: usize = 2;
/// Horizontal advance of one caption character (glyph plus a one-pixel gap), in pixels.
pub const CAPTION_ADVANCE: usize = 4 * CAPTION_SCALE;
/// Height of the caption strip under a frame.
pub const CAPTION_HEIGHT: usize = 7 * CAPTION_SCALE;
pub const CAPTION_INK: [u8; 3] = [0, 0, 0];

fn glyph(c: char) -> &'static [&'static str; 5] {
    let c = c.to_ascii_uppercase();
    GLYPHS
        .iter()
        .find(|(g, _)| *g == c)
        .or_else(|| GLYPHS.iter().find(|(g, _)| *g == '?'))
        .map(|(_, rows)| rows)
        .expect("the font has `?`")
}

/// Draws `text` with its top-left corner at `(x, y)`, `scale` pixels per font pixel,
/// clipped to the image.
pub fn draw_text(image: &mut RgbImage, text: &str, x: usize, y: usize, scale: usize, ink: [u8; 3]) {
    for (k, c) in text.chars().enumerate() {
        let gx = x + k * 4 * scale;
        for (row, bits) in glyph(c).iter().enumerate() {
            for (col, bit) in bits.bytes().enumerate() {
                if bit != b'#' {
                    continue;
                }
                for dy in 0..scale {
                    for dx in 0..scale {
                        let (px, py) = (gx + col * scale + dx, y + row * scale + dy);
                        if px < image.width && py < image.height {
                            let i = (py * image.width + px) * 3;
                            image.pixels[i..i + 3].copy_from_slice(&ink);
                        }
                    }
                }
            }
        }
    }
}

/// `frame` over a white strip holding `caption` (cut to the frame's width) in `ink`.
pub fn captioned(frame: &RgbImage, caption: &str, ink: [u8; 3]) -> RgbImage {
    let mut out = RgbImage {
        width: frame.width,
        height: frame.height + CAPTION_HEIGHT,
        pixels: SHEET_BACKGROUND.repeat(frame.width * (frame.height + CAPTION_HEIGHT)),
    };
    out.blit(frame, 0, 0);
    let fits = frame.width.saturating_sub(1) / CAPTION_ADVANCE;
    let text: String = caption.chars().take(fits).collect();
    draw_text(
        &mut out,
        &text,
        1,
        frame.height + CAPTION_SCALE,
        CAPTION_SCALE,
        ink,
    );
    out
}

/// Writes an episode's frames with a caption under each (what the agent did on that frame)
/// as one contact sheet PNG. `captions[i]` belongs to `frames[i]`: text and ink colour.
pub fn write_captioned_sheet(
    frames: &[RgbImage],
    captions: &[(String, [u8; 3])],
    path: &Path,
) -> Result<(), ImageError> {
    let tiles: Vec<RgbImage> = frames
        .iter()
        .zip(captions.iter().map(Some).chain(std::iter::repeat(None)))
        .map(|(f, c)| match c {
            Some((text, ink)) => captioned(f, text, *ink),
            None => captioned(f, "", CAPTION_INK),
        })
        .collect();
    write_episode_sheet(&tiles, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solid(w: usize, h: usize, rgb: [u8; 3]) -> RgbImage {
        RgbImage {
            width: w,
            height: h,
            pixels: rgb.repeat(w * h),
        }
    }

    #[test]
    fn png_round_trip() {
        let mut img = solid(5, 3, [10, 20, 30]);
        img.pixels[3] = 200;
        let bytes = encode_png(&img).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(decode_png(&bytes).unwrap(), img);
    }

    #[test]
    fn episode_files_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let frames: Vec<RgbImage> = (0..10).map(|i| solid(3, 2, [i, i, i])).collect();
        let sheet = dir.path().join("episode.png");
        write_episode_sheet(&frames, &sheet).unwrap();
        let back = decode_png(&std::fs::read(&sheet).unwrap()).unwrap();
        // 8 columns x 2 rows of 3x2 frames with 4-pixel gaps.
        assert_eq!((back.width, back.height), (8 * 3 + 9 * 4, 2 * 2 + 3 * 4));
        assert_eq!(back.pixel(4 + 7 * 7, 4), [7, 7, 7]);
        assert_eq!(back.pixel(4, 4 + 6), [8, 8, 8]);
        let paths = write_frames(&frames[..2], dir.path(), "step").unwrap();
        assert!(paths[1].ends_with("step_001.png"));
        let one = decode_png(&std::fs::read(&paths[1]).unwrap()).unwrap();
        assert_eq!(one, frames[1]);
        let err = write_png(&frames[0], &dir.path().join("missing/x.png")).unwrap_err();
        assert!(err.to_string().contains("missing/x.png"));
    }

    #[test]
    fn captions_are_drawn_under_the_frame() {
        // 24 pixels hold (24 - 1) / 8 = 2 characters.
        let frame = solid(24, 8, [9, 9, 9]);
        let out = captioned(&frame, "L1", [200, 0, 0]);
        assert_eq!((out.width, out.height), (24, 8 + CAPTION_HEIGHT));
        assert_eq!(out.pixel(3, 3), [9, 9, 9]);
        // `L` at x = 1: its left column is set on every glyph row, its top-right is not.
        let top = 8 + CAPTION_SCALE;
        assert_eq!(out.pixel(1, top), [200, 0, 0]);
        assert_eq!(out.pixel(1, top + 5 * CAPTION_SCALE - 1), [200, 0, 0]);
        assert_eq!(out.pixel(1 + 2 * CAPTION_SCALE, top), SHEET_BACKGROUND);
        // `1` starts one advance later; its top-middle pixel is set, its top-left is not.
        let x1 = 1 + CAPTION_ADVANCE;
        assert_eq!(out.pixel(x1 + CAPTION_SCALE, top), [200, 0, 0]);
        assert_eq!(out.pixel(x1, top), SHEET_BACKGROUND);
        // Text past the frame's width is cut, never drawn outside.
        let long = captioned(&frame, "WWWWWWWW", CAPTION_INK);
        assert_eq!(long.pixel(1 + CAPTION_ADVANCE, top), CAPTION_INK);
        assert_eq!(long.pixel(1 + 2 * CAPTION_ADVANCE, top), SHEET_BACKGROUND);
        assert_eq!(glyph('z'), glyph('Z'));
        assert_eq!(glyph('~'), glyph('?'));
    }

    #[test]
    fn sheet_layout() {
        let frames = vec![
            solid(2, 2, [1, 1, 1]),
            solid(2, 2, [2, 2, 2]),
            solid(2, 2, [3, 3, 3]),
        ];
        let sheet = contact_sheet(&frames, 2).unwrap();
        // 2 columns, 2 rows: 2*2 + 3*4 = 16 wide, 16 high.
        assert_eq!((sheet.width, sheet.height), (16, 16));
        assert_eq!(sheet.pixel(4, 4), [1, 1, 1]);
        assert_eq!(sheet.pixel(10, 4), [2, 2, 2]);
        assert_eq!(sheet.pixel(4, 10), [3, 3, 3]);
        assert_eq!(sheet.pixel(10, 10), SHEET_BACKGROUND);
        assert_eq!(sheet.pixel(0, 0), SHEET_BACKGROUND);
        assert!(matches!(contact_sheet(&[], 3), Err(ImageError::NoFrames)));
        let bad = RgbImage {
            width: 2,
            height: 2,
            pixels: vec![0; 5],
        };
        assert!(matches!(encode_png(&bad), Err(ImageError::Size { .. })));
    }
}
