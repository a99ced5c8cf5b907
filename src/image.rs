//! The RGB frame type shared by the environments that render pixels and the models that read
//! them; a leaf, so neither side depends on the other.

use serde::{Deserialize, Serialize};

/// An RGB image, row-major, 3 bytes per pixel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RgbImage {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}
