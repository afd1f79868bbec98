//! The captcha image adapter: draws an answer with a built-in 5×7 bitmap font, jitter and noise, as a PNG; and a development-only answer outbox.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use kith_domain::ports::{CaptchaRenderer, Random};
use kith_domain::{DomainError, DomainResult};

/// Image width in pixels.
pub const WIDTH: u32 = 160;
/// Image height in pixels.
pub const HEIGHT: u32 = 56;
/// Each font pixel becomes a SCALE × SCALE block.
const SCALE: i32 = 4;
/// Horizontal room per glyph (5 font columns plus spacing).
const ADVANCE: i32 = 28;

/// The 5×7 glyphs of [`kith_domain::captcha::ANSWER_ALPHABET`]: one byte per row, the low five
/// bits left to right.
const GLYPHS: [(u8, [u8; 7]); 32] = [
    (b'A', [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11]),
    (b'B', [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E]),
    (b'C', [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E]),
    (b'D', [0x1E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1E]),
    (b'E', [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F]),
    (b'F', [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10]),
    (b'G', [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F]),
    (b'H', [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11]),
    (b'J', [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C]),
    (b'K', [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11]),
    (b'L', [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F]),
    (b'M', [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11]),
    (b'N', [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11]),
    (b'P', [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10]),
    (b'Q', [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D]),
    (b'R', [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11]),
    (b'S', [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E]),
    (b'T', [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04]),
    (b'U', [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E]),
    (b'V', [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04]),
    (b'W', [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A]),
    (b'X', [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11]),
    (b'Y', [0x11, 0x11, 0x0A, 0x04, 0x04, 0x04, 0x04]),
    (b'Z', [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F]),
    (b'2', [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F]),
    (b'3', [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E]),
    (b'4', [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02]),
    (b'5', [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E]),
    (b'6', [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E]),
    (b'7', [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08]),
    (b'8', [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E]),
    (b'9', [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C]),
];

fn glyph(symbol: u8) -> Option<&'static [u8; 7]> {
    GLYPHS
        .iter()
        .find(|(s, _)| *s == symbol.to_ascii_uppercase())
        .map(|(_, rows)| rows)
}

/// A uniform-enough draw in `0..n` for noise (the bias of a 64-bit modulo is negligible here).
fn below(random: &dyn Random, n: u32) -> i32 {
    i32::try_from(random.next_u64() % u64::from(n.max(1))).unwrap_or(0)
}

/// An RGB canvas.
struct Canvas {
    pixels: Vec<u8>,
}

impl Canvas {
    fn new(background: [u8; 3]) -> Self {
        let n = (WIDTH * HEIGHT) as usize;
        Self {
            pixels: background.repeat(n),
        }
    }

    fn put(&mut self, x: i32, y: i32, color: [u8; 3]) {
        let (Ok(x), Ok(y)) = (u32::try_from(x), u32::try_from(y)) else {
            return;
        };
        if x >= WIDTH || y >= HEIGHT {
            return;
        }
        let i = ((y * WIDTH + x) * 3) as usize;
        self.pixels[i..i + 3].copy_from_slice(&color);
    }

    /// A straight line (Bresenham), `thickness` pixels tall.
    fn line(&mut self, from: (i32, i32), to: (i32, i32), thickness: i32, color: [u8; 3]) {
        let (mut x, mut y) = from;
        let dx = (to.0 - x).abs();
        let dy = -(to.1 - y).abs();
        let sx = if x < to.0 { 1 } else { -1 };
        let sy = if y < to.1 { 1 } else { -1 };
        let mut err = dx + dy;
        loop {
            for t in 0..thickness {
                self.put(x, y + t, color);
            }
            if (x, y) == to {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    fn png(&self) -> DomainResult<Vec<u8>> {
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, WIDTH, HEIGHT);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let fail = |e: png::EncodingError| DomainError::Internal(format!("captcha png: {e}"));
        let mut writer = encoder.write_header().map_err(fail)?;
        writer.write_image_data(&self.pixels).map_err(fail)?;
        writer.finish().map_err(fail)?;
        Ok(out)
    }
}

fn light(random: &dyn Random) -> [u8; 3] {
    [0; 3].map(|_: u8| 215 + below(random, 40) as u8)
}

fn dark(random: &dyn Random) -> [u8; 3] {
    [0; 3].map(|_: u8| below(random, 110) as u8)
}

fn mid(random: &dyn Random) -> [u8; 3] {
    [0; 3].map(|_: u8| 80 + below(random, 100) as u8)
}

/// Renders captchas as 160×56 PNGs: each symbol from a built-in 5×7 font scaled ×4, with its
/// own colour, height, slant and per-pixel jitter, over speckled background, crossed by lines.
///
/// It is pure computation (about a millisecond), so it runs inline. The domain sees only the
/// [`CaptchaRenderer`] port: the image format is a presentation choice the rules do not need.
#[derive(Debug, Clone, Copy, Default)]
pub struct BitmapCaptchaRenderer;

impl CaptchaRenderer for BitmapCaptchaRenderer {
    fn render(&self, answer: &str, random: &dyn Random) -> DomainResult<Vec<u8>> {
        let symbols = answer.as_bytes();
        let text_width = i32::try_from(symbols.len()).unwrap_or(0) * ADVANCE;
        if symbols.is_empty() || text_width > WIDTH as i32 {
            return Err(DomainError::Internal(format!(
                "captcha answer of {} symbols does not fit",
                symbols.len()
            )));
        }
        let mut canvas = Canvas::new(light(random));
        for _ in 0..(WIDTH * HEIGHT / 6) {
            let (x, y) = (below(random, WIDTH), below(random, HEIGHT));
            canvas.put(x, y, light(random).map(|c| c.saturating_sub(25)));
        }
        let left = (WIDTH as i32 - text_width) / 2 + below(random, 5) - 2;
        for (i, &symbol) in symbols.iter().enumerate() {
            let rows = glyph(symbol)
                .ok_or_else(|| DomainError::Internal("captcha answer outside the font".into()))?;
            let color = dark(random);
            let x0 = left + i32::try_from(i).unwrap_or(0) * ADVANCE + below(random, 5);
            let y0 = 6 + below(random, (HEIGHT as i32 - 7 * SCALE - 10).max(1) as u32);
            // Slant: each font row shifts by -1, 0 or +1 pixels.
            let slant = below(random, 3) - 1;
            for (r, bits) in rows.iter().enumerate() {
                let r = i32::try_from(r).unwrap_or(0);
                for c in 0..5 {
                    if bits & (0x10 >> c) == 0 {
                        continue;
                    }
                    let bx = x0 + c * SCALE + (r - 3) * slant;
                    let by = y0 + r * SCALE;
                    for dy in 0..SCALE {
                        for dx in 0..SCALE {
                            // A few holes and a ragged edge keep clean segmentation away.
                            if below(random, 10) == 0 {
                                continue;
                            }
                            canvas.put(bx + dx, by + dy, color);
                        }
                    }
                }
            }
        }
        for _ in 0..4 {
            let from = (0, below(random, HEIGHT));
            let to = (WIDTH as i32 - 1, below(random, HEIGHT));
            canvas.line(from, to, 1 + below(random, 2), mid(random));
        }
        for _ in 0..250 {
            let (x, y) = (below(random, WIDTH), below(random, HEIGHT));
            canvas.put(x, y, dark(random));
        }
        canvas.png()
    }
}

/// Wraps a renderer and appends each answer it draws to a file, one JSON line
/// `{"answer": "…"}` each, so black-box tests can solve captchas.
///
/// DEVELOPMENT ONLY: whoever reads the file can pass every captcha. It is built only when
/// `KITH_CAPTCHA_TEST_OUTBOX` is set, and start-up logs a warning when it is.
#[derive(Debug, Clone)]
pub struct AnswerOutbox<R> {
    inner: R,
    path: Arc<PathBuf>,
    lock: Arc<Mutex<()>>,
}

impl<R> AnswerOutbox<R> {
    /// Records the answers `inner` draws into `path` (created if missing).
    pub fn new(inner: R, path: impl Into<PathBuf>) -> Self {
        Self {
            inner,
            path: Arc::new(path.into()),
            lock: Arc::new(Mutex::new(())),
        }
    }
}

impl<R: CaptchaRenderer> CaptchaRenderer for AnswerOutbox<R> {
    fn render(&self, answer: &str, random: &dyn Random) -> DomainResult<Vec<u8>> {
        let png = self.inner.render(answer, random)?;
        let mut line = serde_json::json!({ "answer": answer }).to_string();
        line.push('\n');
        let _guard = self
            .lock
            .lock()
            .map_err(|_| DomainError::Internal("captcha outbox lock poisoned".into()))?;
        // A few bytes to a local file: cheap enough to do inline, and only in development.
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path.as_path())
            .and_then(|mut f| f.write_all(line.as_bytes()))
            .map_err(|e| {
                tracing::warn!(path = %self.path.display(), error = %e, "captcha outbox write failed");
                DomainError::Unavailable("captcha outbox is not writable".into())
            })?;
        Ok(png)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use kith_domain::captcha::{draw_answer, ANSWER_ALPHABET};
    use kith_domain::memory::SeqRandom;

    use super::*;

    fn decode(png_bytes: &[u8]) -> (png::OutputInfo, Vec<u8>) {
        let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        (info, buf)
    }

    #[test]
    fn every_symbol_of_the_alphabet_has_a_glyph() {
        for &s in ANSWER_ALPHABET {
            let rows = glyph(s).unwrap_or_else(|| panic!("no glyph for {}", s as char));
            assert!(rows.iter().all(|r| *r < 0x20));
            assert!(rows.iter().map(|r| r.count_ones()).sum::<u32>() >= 9);
        }
        let distinct: std::collections::HashSet<_> = GLYPHS.iter().map(|(_, r)| r).collect();
        assert_eq!(distinct.len(), GLYPHS.len(), "two symbols share a glyph");
        assert!(glyph(b'O').is_none() && glyph(b'0').is_none());
    }

    #[test]
    fn renders_a_valid_png_with_ink_where_the_text_is() {
        let r = SeqRandom::new(1);
        let answer = draw_answer(&r);
        let png_bytes = BitmapCaptchaRenderer.render(&answer, &r).unwrap();
        assert!(png_bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
        let (info, pixels) = decode(&png_bytes);
        assert_eq!((info.width, info.height), (WIDTH, HEIGHT));
        assert_eq!(info.color_type, png::ColorType::Rgb);
        let is_dark = |i: usize| pixels[i * 3..i * 3 + 3].iter().all(|c| *c < 110);
        let dark = (0..(WIDTH * HEIGHT) as usize)
            .filter(|&i| is_dark(i))
            .count();
        // Five glyphs of at least 9 font pixels, 16 image pixels each, minus ~10 % holes.
        assert!(dark > 5 * 9 * 16 * 8 / 10, "only {dark} dark pixels");
        assert!(
            dark < (WIDTH * HEIGHT / 2) as usize,
            "{dark} dark pixels: unreadable"
        );
    }

    #[test]
    fn the_image_depends_on_the_answer_and_the_noise() {
        let a1 = BitmapCaptchaRenderer
            .render("AAAAA", &SeqRandom::new(9))
            .unwrap();
        let a2 = BitmapCaptchaRenderer
            .render("AAAAA", &SeqRandom::new(9))
            .unwrap();
        let b = BitmapCaptchaRenderer
            .render("BBBBB", &SeqRandom::new(9))
            .unwrap();
        let a3 = BitmapCaptchaRenderer
            .render("AAAAA", &SeqRandom::new(10))
            .unwrap();
        assert_eq!(a1, a2, "deterministic for one random sequence");
        assert_ne!(decode(&a1).1, decode(&b).1);
        assert_ne!(decode(&a1).1, decode(&a3).1);
    }

    #[test]
    fn answers_outside_the_font_are_refused() {
        let r = SeqRandom::new(1);
        assert!(BitmapCaptchaRenderer.render("", &r).is_err());
        assert!(BitmapCaptchaRenderer.render("A0", &r).is_err());
        assert!(BitmapCaptchaRenderer.render("AAAAAAA", &r).is_err());
    }

    #[test]
    fn the_outbox_records_each_answer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("captcha.jsonl");
        let outbox = AnswerOutbox::new(BitmapCaptchaRenderer, &path);
        let r = SeqRandom::new(2);
        outbox.render("ABCDE", &r).unwrap();
        outbox.render("23456", &r).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "{\"answer\":\"ABCDE\"}\n{\"answer\":\"23456\"}\n");
        let broken = AnswerOutbox::new(BitmapCaptchaRenderer, dir.path().join("no/dir/x"));
        assert!(matches!(
            broken.render("ABCDE", &r),
            Err(DomainError::Unavailable(_))
        ));
    }
}
