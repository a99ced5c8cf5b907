//! VisualSokoban frames: 16x16-pixel tiles per cell, drawn procedurally by this module, with a
//! distinct dominant colour per cell type so that a small vision model can tell them apart.

use super::game::Level;
use crate::env::RgbImage;
use std::sync::OnceLock;

/// Pixels per cell side (gym-sokoban's tile size).
pub const TILE: usize = 16;

/// Palette.
pub const WALL_BRICK: [u8; 3] = [150, 70, 40];
pub const WALL_MORTAR: [u8; 3] = [90, 90, 90];
pub const FLOOR_RGB: [u8; 3] = [225, 225, 215];
pub const TARGET_RGB: [u8; 3] = [220, 30, 40];
pub const BOX_RGB: [u8; 3] = [230, 180, 40];
pub const BOX_EDGE: [u8; 3] = [120, 80, 20];
pub const BOX_ON_TARGET_RGB: [u8; 3] = [60, 190, 70];
pub const PLAYER_RGB: [u8; 3] = [40, 90, 230];

type Tile = [[u8; 3]; TILE * TILE];
/// A tile as row-major RGB bytes, ready to copy row by row.
type TileBytes = [u8; TILE * TILE * 3];

/// The tile bytes for each rendering code 0..=6.
fn tiles() -> &'static [TileBytes; 7] {
    static TILES: OnceLock<[TileBytes; 7]> = OnceLock::new();
    TILES.get_or_init(|| {
        tile_pixels().map(|t| {
            let mut bytes = [0u8; TILE * TILE * 3];
            for (i, px) in t.iter().enumerate() {
                bytes[i * 3..i * 3 + 3].copy_from_slice(px);
            }
            bytes
        })
    })
}

/// The tile for each rendering code 0..=6, as pixels.
fn tile_pixels() -> [Tile; 7] {
    {
        let wall = draw(|x, y| {
            // Bricks 8 wide, 4 high, every other course offset by half a brick.
            let offset = if (y / 4) % 2 == 0 { 0 } else { 4 };
            if y % 4 == 3 || (x + offset) % 8 == 7 {
                WALL_MORTAR
            } else {
                WALL_BRICK
            }
        });
        let floor = draw(|_, _| FLOOR_RGB);
        let target = draw(|x, y| if diamond(x, y) { TARGET_RGB } else { FLOOR_RGB });
        let crate_with = |fill: [u8; 3]| {
            draw(move |x, y| {
                let edge = x <= 1 || y <= 1 || x >= TILE - 2 || y >= TILE - 2;
                let cross = (x == y || x + y == TILE - 1) && (2..TILE - 2).contains(&x);
                if edge || cross {
                    BOX_EDGE
                } else {
                    fill
                }
            })
        };
        let player_on = |under: &Tile| {
            let mut t = *under;
            for y in 0..TILE {
                for x in 0..TILE {
                    if person(x, y) {
                        t[y * TILE + x] = PLAYER_RGB;
                    }
                }
            }
            t
        };
        let player = player_on(&floor);
        let player_on_target = player_on(&target);
        [
            wall,
            floor,
            target,
            crate_with(BOX_ON_TARGET_RGB),
            crate_with(BOX_RGB),
            player,
            player_on_target,
        ]
    }
}

fn draw(f: impl Fn(usize, usize) -> [u8; 3]) -> Tile {
    let mut t = [[0; 3]; TILE * TILE];
    for y in 0..TILE {
        for x in 0..TILE {
            t[y * TILE + x] = f(x, y);
        }
    }
    t
}

/// A diamond outline around the tile centre.
fn diamond(x: usize, y: usize) -> bool {
    let d = (x as isize * 2 - 15).abs() + (y as isize * 2 - 15).abs();
    (10..=14).contains(&d)
}

/// A person: round head over a body, inside the middle of the tile.
fn person(x: usize, y: usize) -> bool {
    let (cx, cy) = (x as isize * 2 - 15, y as isize * 2);
    let head = cx * cx + (cy - 9) * (cy - 9) <= 25;
    let body = (7..=12).contains(&y) && cx.abs() <= 7 - (12 - y as isize).min(2);
    let legs = (13..=14).contains(&y) && (cx.abs() >= 1 && cx.abs() <= 5);
    head || body || legs
}

/// The frame of `level`: `rows * 16` by `cols * 16` pixels.
pub fn render_rgb(level: &Level) -> RgbImage {
    let tiles = tiles();
    let width = level.cols * TILE;
    let mut pixels = vec![0u8; width * level.rows * TILE * 3];
    for (i, code) in level.render_codes().into_iter().enumerate() {
        let tile = &tiles[code.min(6) as usize];
        let (r, c) = (i / level.cols, i % level.cols);
        for y in 0..TILE {
            let row_start = ((r * TILE + y) * width + c * TILE) * 3;
            pixels[row_start..row_start + TILE * 3]
                .copy_from_slice(&tile[y * TILE * 3..(y + 1) * TILE * 3]);
        }
    }
    RgbImage {
        width,
        height: level.rows * TILE,
        pixels,
    }
}

/// The frames of an episode: the start, then one frame after each push-or-move action.
pub fn episode_frames(start: &Level, actions: &[super::game::Dir]) -> Vec<RgbImage> {
    let mut game = super::game::Game::new(start.clone(), usize::MAX);
    let mut frames = vec![render_rgb(game.level())];
    for &dir in actions {
        game.step(super::game::Action::Push(dir));
        frames.push(render_rgb(game.level()));
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_are_distinct_and_placed_per_cell() {
        let t = tiles();
        for a in 0..7 {
            for b in a + 1..7 {
                assert_ne!(t[a][..], t[b][..], "tiles {a} and {b} are identical");
            }
        }
        let level = Level::from_picture(&["#####", "#P_X#", "#*_O#", "#####"]).unwrap();
        let img = render_rgb(&level);
        assert_eq!((img.width, img.height), (80, 64));
        assert_eq!(img.pixels.len(), 80 * 64 * 3);
        // Centre pixels: floor at (1,2), box at (1,3) interior, box on target at (2,1) interior.
        assert_eq!(img.pixel(2 * 16 + 8, 16 + 8), FLOOR_RGB);
        assert_eq!(img.pixel(3 * 16 + 8, 16 + 4), BOX_RGB);
        assert_eq!(img.pixel(16 + 8, 2 * 16 + 4), BOX_ON_TARGET_RGB);
        // The player is drawn over the floor; on a target the diamond shows around it.
        assert_eq!(img.pixel(16 + 7, 16 + 4), PLAYER_RGB);
        assert_eq!(img.pixel(3 * 16 + 1, 2 * 16 + 7), TARGET_RGB);
        let on_target = Level::from_picture(&["#####", "#_SX#", "#*__#", "#####"]).unwrap();
        let img2 = render_rgb(&on_target);
        assert_eq!(img2.pixel(2 * 16 + 7, 16 + 4), PLAYER_RGB);
        assert_eq!(img2.pixel(2 * 16 + 1, 16 + 7), TARGET_RGB);
        let frames = episode_frames(&level, &[super::super::game::Dir::Right]);
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0], img);
        assert_eq!(frames[1].pixel(2 * 16 + 7, 16 + 4), PLAYER_RGB);
        // Walls carry both brick and mortar.
        let wall: Vec<[u8; 3]> = (0..16).map(|x| img.pixel(x, 3)).collect();
        assert!(wall.contains(&WALL_MORTAR));
        assert!(img.pixel(0, 0) == WALL_BRICK);
    }
}
