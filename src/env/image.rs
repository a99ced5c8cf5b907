//! RGB frames on disk: PNG encoding and episode contact sheets, so a person can look at what
//! an agent saw and did.

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
